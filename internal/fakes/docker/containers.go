package docker

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Ready is what the stand-in writes as the sidecar bundle's ready file:
// what bottle's own `bottle sidecars` writes once every sidecar listens,
// here with no listener, as the emulated bundle runs none.
const Ready = `{"pid":1,"listeners":{}}`

// bundleStateDir is where bottle mounts a bottle's state directory in its
// sidecar bundle.
const bundleStateDir = "/state"

// containerSpec describes the options of docker create and docker run.
var containerSpec = optSpec{
	bools: []string{"detach", "disable-content-trust", "help", "init", "interactive", "no-healthcheck", "oom-kill-disable",
		"privileged", "publish-all", "quiet", "read-only", "rm", "sig-proxy", "tty", "use-api-socket"},
	short: map[string]string{"a": "attach", "c": "cpu-shares", "d": "detach", "e": "env", "h": "hostname", "i": "interactive",
		"l": "label", "m": "memory", "P": "publish-all", "p": "publish", "q": "quiet", "t": "tty", "u": "user", "v": "volume", "w": "workdir"},
}

// newContainer records a container as docker create does, pulling its
// image when missing. Images of the bottle.local registry, which does not
// resolve, cannot be pulled: they must have been built.
func (d *daemon) newContainer(w *world, opts options, pos []string) (*container, error) {
	if len(pos) == 0 {
		return nil, errors.New("requires at least 1 argument")
	}
	ref := pos[0]
	name := opts.last("name")
	if c := w.container(name); name != "" && c != nil && c.Name == name {
		return nil, daemonf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, c.ID)
	}
	if w.image(ref) == nil {
		fmt.Fprintf(d.stderr, "Unable to find image '%s' locally\n", normalizeRef(ref))
		if strings.HasPrefix(ref, "bottle.local/") {
			return nil, daemonf("Get \"https://bottle.local/v2/\": dial tcp: lookup bottle.local: no such host")
		}
		w.Images = append(w.Images, &image{ID: "sha256:" + hashID("image", normalizeRef(ref)), Refs: []string{normalizeRef(ref)},
			Labels: map[string]string{}, Created: time.Now().UTC()})
		fmt.Fprintf(d.stderr, "Status: Downloaded newer image for %s\n", normalizeRef(ref))
	}
	id := w.newID("container", name)
	if name == "" {
		name = "fake_" + id[:8]
	}
	c := &container{ID: id, Name: name, Image: ref, Cmd: pos[1:], Labels: parseLabels(opts["label"]), Env: opts["env"],
		Networks: map[string]string{}, ReadOnly: opts.has("read-only"), Status: "created", Created: time.Now().UTC()}
	if e, ok := opts["entrypoint"]; ok && e[len(e)-1] != "" {
		c.Entrypoint = []string{e[len(e)-1]}
	}
	for _, spec := range opts["mount"] {
		m, err := parseMount(spec)
		if err != nil {
			return nil, err
		}
		c.Mounts = append(c.Mounts, m)
	}
	for _, spec := range opts["volume"] {
		// SRC:DST[:OPTS], a bind mount when SRC is a path and a named
		// volume otherwise, or DST alone, an anonymous volume.
		parts := strings.Split(spec, ":")
		switch {
		case len(parts) == 1:
			c.Mounts = append(c.Mounts, mount{Type: "volume", Target: parts[0]})
		case filepath.IsAbs(parts[0]):
			c.Mounts = append(c.Mounts, mount{Type: "bind", Source: parts[0], Target: parts[1], ReadOnly: slices.Contains(parts[2:], "ro")})
		default:
			c.Mounts = append(c.Mounts, mount{Type: "volume", Source: parts[0], Target: parts[1], ReadOnly: slices.Contains(parts[2:], "ro")})
		}
	}
	nets := append(slices.Clone(opts["network"]), opts["net"]...)
	if len(nets) == 0 {
		nets = []string{"bridge"}
	}
	aliases := append(slices.Clone(opts["network-alias"]), opts["net-alias"]...)
	for i, nn := range nets {
		n := w.network(nn)
		if n == nil {
			return nil, daemonf("network %s not found", nn)
		}
		if len(nets) > 1 && n.Name == "none" {
			// runconfig/errors.go:11@v27.5.1 of moby.
			return nil, daemonf("container cannot be connected to multiple networks with one of the networks in private (none) mode")
		}
		addr := w.freeAddress(n)
		if ip := opts.last("ip"); i == 0 && ip != "" {
			if err := w.checkAddress(n, ip); err != nil {
				return nil, err
			}
			addr = ip
		}
		c.Networks[n.Name] = addr
		if i == 0 && len(aliases) > 0 {
			if n.Builtin {
				return nil, daemonf("network-scoped alias is supported only for containers in user defined networks")
			}
			c.Aliases = map[string][]string{n.Name: aliases}
		}
	}
	// The daemon creates the named volumes a container mounts and are
	// missing, and an anonymous one for each volume mount without a source.
	for i, m := range c.Mounts {
		if m.Type != "volume" {
			continue
		}
		labels := map[string]string{}
		if m.Source == "" {
			c.Mounts[i].Source = w.newID("volume", "")
			labels[anonymousLabel] = ""
		}
		if _, err := w.newVolume(c.Mounts[i].Source, "", nil, labels); err != nil {
			return nil, err
		}
	}
	w.Containers = append(w.Containers, c)
	return c, nil
}

// parseMount reads a --mount value as one line of CSV, as the docker CLI
// does (opts/mount.go:26 at docker/cli v27.5.1); a bind mount's source
// must exist, as the daemon insists.
func parseMount(spec string) (mount, error) {
	m := mount{Type: "volume"}
	fields, err := csv.NewReader(strings.NewReader(spec)).Read()
	if err != nil {
		return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: %v", spec, err)
	}
	for _, field := range fields {
		k, v, hasValue := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "src", "source":
			m.Source = v
		case "dst", "destination", "target":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasValue || v == "true" || v == "1"
		}
	}
	if m.Target == "" {
		return m, fmt.Errorf("invalid argument %q for \"--mount\" flag: target is required", spec)
	}
	if m.Type == "bind" {
		if _, err := os.Stat(m.Source); err != nil {
			return m, daemonf("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
		}
	}
	return m, nil
}

func (d *daemon) create(args []string) int {
	opts, pos, err := parseOptions(args, containerSpec)
	if err != nil {
		return d.usage("create", err)
	}
	return d.world(func(w *world) error {
		c, err := d.newContainer(w, opts, pos)
		if err != nil {
			return err
		}
		fmt.Fprintln(d.stdout, c.ID)
		return nil
	})
}

// containerExit is the exit status of a container's command run attached:
// FAKE_DOCKER_CONTAINER_EXIT, default 0.
func (d *daemon) containerExit() (int, error) {
	s := d.getenv("FAKE_DOCKER_CONTAINER_EXIT")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("FAKE_DOCKER_CONTAINER_EXIT=%q is not a status from 0 to 255", s)
	}
	return n, nil
}

// run creates and starts a container. Attached, its command "runs" (see
// attach) and run exits with its status; with --detach run prints the
// container's ID and it keeps running.
func (d *daemon) run(args []string) int {
	opts, pos, err := parseOptions(args, containerSpec)
	if err != nil {
		return d.usage("run", err)
	}
	code, err := d.containerExit()
	if err != nil {
		fmt.Fprintf(d.stderr, "fake docker: %v\n", err)
		return exitFake
	}
	var werr error
	var id string
	rc := d.world(func(w *world) error {
		c, err := d.newContainer(w, opts, pos)
		if err == nil {
			id = c.ID
			err = d.startContainer(w, c)
		}
		if err != nil {
			werr = err
			return nil
		}
		if opts.has("detach") {
			fmt.Fprintln(d.stdout, c.ID)
		}
		return nil
	})
	if werr != nil {
		// run reports the daemon's errors with its own prefix and status.
		var fe *fakeErr
		if errors.As(werr, &fe) {
			fmt.Fprintf(d.stderr, "fake docker: %v\n", fe.err)
			return exitFake
		}
		fmt.Fprintf(d.stderr, "docker: %s.\n", strings.TrimSuffix(werr.Error(), "."))
		return 125
	}
	if rc != exitOK || opts.has("detach") {
		return rc
	}
	return d.attach(id, code, opts.has("rm"))
}

// start starts containers and prints their names; with --attach it
// starts one, whose command "runs" (see attach), and exits with its
// status.
func (d *daemon) start(args []string) int {
	opts, names, err := parseOptions(args, optSpec{bools: []string{"attach", "interactive"}, short: map[string]string{"a": "attach", "i": "interactive"}, interspersed: true})
	if err != nil || len(names) == 0 {
		return d.usage("start", errors.Join(err, errors.New("\"docker start\" requires at least 1 argument")))
	}
	attach := opts.has("attach")
	if attach && len(names) > 1 {
		fmt.Fprintln(d.stderr, "Error: you cannot start and attach multiple containers at once")
		return exitError
	}
	code, err := d.containerExit()
	if err != nil {
		fmt.Fprintf(d.stderr, "fake docker: %v\n", err)
		return exitFake
	}
	var id string
	rc := d.world(func(w *world) error {
		var failed []string
		for _, name := range names {
			c := w.container(name)
			var err error
			if c == nil {
				err = daemonf("No such container: %s", name)
			} else {
				err = d.startContainer(w, c)
			}
			var fe *fakeErr
			if errors.As(err, &fe) {
				return err
			}
			if err != nil {
				fmt.Fprintln(d.stderr, err)
				failed = append(failed, name)
				continue
			}
			if attach {
				id = c.ID
				return nil
			}
			fmt.Fprintln(d.stdout, name)
		}
		if len(failed) > 0 {
			fmt.Fprintf(d.stderr, "Error: failed to start containers: %s\n", strings.Join(failed, ", "))
			return &exitErr{exitError}
		}
		return nil
	})
	if rc != exitOK || !attach {
		return rc
	}
	return d.attach(id, code, false)
}

// attach follows a started container's command to its end and returns
// its exit status. The command exits at once with code; bottle guest (see
// guestOf) first waits for its sidecar sockets, as the real one does,
// and fails with status 125 if they do not come.
func (d *daemon) attach(id string, code int, autoRemove bool) int {
	var g *guest
	rc := d.world(func(w *world) error {
		if c := w.container(id); c != nil && c.Status == "running" {
			g = guestOf(c)
		}
		return nil
	})
	if rc != exitOK {
		return rc
	}
	if g != nil {
		var err error
		if code, err = d.runGuest(id, g, code); err != nil {
			return exitFake
		}
	}
	return d.world(func(w *world) error {
		c := w.container(id)
		if c == nil {
			// Removed while it ran: killed.
			return &exitErr{137}
		}
		if c.Status == "running" {
			c.Status, c.ExitCode = "exited", code
		}
		if autoRemove {
			w.removeContainer(c)
		}
		return &exitErr{c.ExitCode}
	})
}

// startContainer starts c; a sidecar bundle (see isBundle) becomes ready,
// or not, as FAKE_DOCKER_NO_READY says.
func (d *daemon) startContainer(w *world, c *container) error {
	if c.Status == "running" {
		return nil
	}
	for _, nn := range slices.Sorted(maps.Keys(c.Networks)) {
		if w.network(nn) == nil {
			return daemonf("network %s not found", nn)
		}
	}
	c.Status, c.ExitCode, c.Started = "running", 0, time.Now().UTC()
	src, config, ok := isBundle(c)
	if !ok {
		return nil
	}
	mode := d.getenv("FAKE_DOCKER_NO_READY")
	switch mode {
	case "":
	case "1", "hang":
		return nil
	case "exit":
		c.Status, c.ExitCode = "exited", 1
		c.Logs += "bottle: sidecars: egress: listen: bind: address already in use (FAKE_DOCKER_NO_READY=exit)\n"
		return nil
	default:
		return &fakeErr{fmt.Errorf("FAKE_DOCKER_NO_READY=%q: want 1, hang or exit", mode)}
	}
	sockets, err := listenSockets(filepath.Join(src, strings.TrimPrefix(config, bundleStateDir+"/")), config)
	if err == nil {
		err = w.listen(c, sockets)
	}
	if err != nil {
		c.Status, c.ExitCode = "exited", 1
		c.Logs += "bottle: sidecars: " + err.Error() + "\n"
		return nil
	}
	tmp := filepath.Join(src, ".sidecars.ready.fake")
	if err := os.WriteFile(tmp, []byte(Ready), 0o600); err != nil {
		return &fakeErr{fmt.Errorf("write the bundle's ready file: %w", err)}
	}
	if err := os.Rename(tmp, filepath.Join(src, "sidecars.ready")); err != nil {
		return &fakeErr{fmt.Errorf("write the bundle's ready file: %w", err)}
	}
	c.Logs += "ready\n"
	return nil
}

// listenSockets reads a bundle's configuration (at path on the host, at
// inside in the bundle) and returns the unix socket each sidecar listens
// on: the address of each section's "listen".
func listenSockets(path, inside string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: open %s: no such file or directory", inside)
	}
	var cfg struct {
		Sidecars map[string]struct {
			Listen struct{ Network, Address string } `json:"listen"`
		} `json:"sidecars"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("sidecar config %s: %v", inside, err)
	}
	out := map[string]string{}
	for name, sc := range cfg.Sidecars {
		if sc.Listen.Network == "unix" && sc.Listen.Address != "" {
			out[name] = sc.Listen.Address
		}
	}
	return out, nil
}

// listen makes c's sockets, by sidecar name, as the bundle's sidecars
// do: one in a volume mount is recorded in the volume, where bottle guest
// finds it; one in a bind mount is not followed; one in a read-only mount,
// or outside every mount of a read-only container, cannot be made.
func (w *world) listen(c *container, sockets map[string]string) error {
	made := map[*volume]map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(sockets)) {
		sock := sockets[name]
		m, rel := mountOf(c, sock)
		if m == nil && c.ReadOnly || m != nil && m.ReadOnly {
			return fmt.Errorf("%s: listen unix %s: bind: read-only file system", name, sock)
		}
		if m == nil || m.Type != "volume" {
			continue
		}
		v := w.volume(m.Source)
		if v == nil {
			return fmt.Errorf("%s: listen unix %s: bind: no such file or directory", name, sock)
		}
		if made[v] == nil {
			made[v] = map[string]string{}
		}
		made[v][rel] = c.ID
	}
	for v, socks := range made {
		if v.Sockets == nil {
			v.Sockets = map[string]string{}
		}
		maps.Copy(v.Sockets, socks)
	}
	return nil
}

// mountOf returns the mount of c in which p lies, the innermost one, and
// p's path relative to the mount's target.
func mountOf(c *container, p string) (*mount, string) {
	var best *mount
	rel := ""
	for i, m := range c.Mounts {
		r, ok := strings.CutPrefix(p, strings.TrimSuffix(m.Target, "/")+"/")
		if ok && (best == nil || len(m.Target) > len(best.Target)) {
			best, rel = &c.Mounts[i], r
		}
	}
	return best, rel
}

// isBundle reports whether c runs bottle's sidecar bundle: its command is
// `sidecars --config /state/...` and it has a bind mount at /state, whose
// source it returns with the configuration's path.
func isBundle(c *container) (src, config string, ok bool) {
	if len(c.Cmd) < 3 || c.Cmd[0] != "sidecars" || c.Cmd[1] != "--config" || !strings.HasPrefix(c.Cmd[2], bundleStateDir+"/") {
		return "", "", false
	}
	for _, m := range c.Mounts {
		if m.Type == "bind" && m.Target == bundleStateDir {
			return m.Source, c.Cmd[2], true
		}
	}
	return "", "", false
}

// rm removes containers. With --force a running one goes too and a
// missing one is no error: docker (since 20.10) says so on stderr and
// exits 0, whatever else it removed.
func (d *daemon) rm(args []string) int {
	opts, names, err := parseOptions(args, optSpec{bools: []string{"force", "link", "volumes"}, short: map[string]string{"f": "force", "l": "link", "v": "volumes"}, interspersed: true})
	if err != nil || len(names) == 0 {
		return d.usage("rm", errors.Join(err, errors.New("\"docker rm\" requires at least 1 argument")))
	}
	force := opts.has("force")
	return d.world(func(w *world) error {
		var errs []error
		for _, name := range names {
			c := w.container(name)
			switch {
			case c == nil && force:
				// The CLI prints a missing container and goes on
				// (cli/command/container/rm.go:70-72@v27.5.1 of docker/cli).
				fmt.Fprintf(d.stderr, "Error response from daemon: No such container: %s\n", name)
			case c == nil:
				errs = append(errs, daemonf("No such container: %s", name))
			case c.Status == "running" && !force:
				errs = append(errs, daemonf("cannot remove container \"/%s\": container is running: stop the container before removing or force remove", c.Name))
			default:
				w.removeContainer(c)
				if opts.has("volumes") {
					w.removeAnonymousVolumes(c)
				}
				fmt.Fprintln(d.stdout, name)
			}
		}
		return errors.Join(errs...)
	})
}

func (d *daemon) logs(args []string) int {
	opts, names, err := parseOptions(args, optSpec{bools: []string{"details", "follow", "timestamps"}, short: map[string]string{"f": "follow", "n": "tail", "t": "timestamps"}, interspersed: true})
	if err != nil || len(names) != 1 {
		return d.usage("logs", errors.Join(err, errors.New("\"docker logs\" requires exactly 1 argument")))
	}
	return d.world(func(w *world) error {
		c := w.container(names[0])
		if c == nil {
			return daemonf("No such container: %s", names[0])
		}
		lines := strings.SplitAfter(c.Logs, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if n, err := strconv.Atoi(opts.last("tail")); err == nil && n >= 0 && n < len(lines) {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprint(d.stdout, strings.Join(lines, ""))
		return nil
	})
}

// ps lists containers; docker's list JSON has these keys, sorted.
func (d *daemon) ps(args []string) int {
	opts, _, err := parseOptions(args, optSpec{bools: []string{"all", "latest", "no-trunc", "quiet", "size"},
		short: map[string]string{"a": "all", "f": "filter", "l": "latest", "n": "last", "q": "quiet", "s": "size"}, interspersed: true})
	if err != nil {
		return d.usage("ps", err)
	}
	fs, err := filters(opts["filter"], "label", "name", "id", "status")
	if err != nil {
		fmt.Fprintln(d.stderr, err)
		return exitError
	}
	noTrunc := opts.has("no-trunc")
	return d.world(func(w *world) error {
		var rows []map[string]string
		cs := slices.Clone(w.Containers)
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].Created.After(cs[j].Created) })
		for _, c := range cs {
			if !opts.has("all") && c.Status != "running" && len(fs["status"]) == 0 {
				continue
			}
			if !matchLabels(c.Labels, fs["label"]) || !anyMatch(fs["name"], func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) ||
				!anyMatch(fs["id"], func(v string) bool { return strings.HasPrefix(c.ID, v) }) ||
				!anyMatch(fs["status"], func(v string) bool { return v == c.Status }) {
				continue
			}
			rows = append(rows, c.row(noTrunc))
		}
		return d.printRows(rows, opts, "ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")
	})
}

// anyMatch is true when there is no filter value or one matches.
func anyMatch(values []string, f func(string) bool) bool {
	return len(values) == 0 || slices.ContainsFunc(values, f)
}

func (c *container) row(noTrunc bool) map[string]string {
	cmd := strings.Join(append(slices.Clone(c.Entrypoint), c.Cmd...), " ")
	if !noTrunc && len([]rune(cmd)) > 20 {
		cmd = string([]rune(cmd)[:19]) + "…"
	}
	since := humanDuration(time.Since(c.Created))
	status := map[string]string{"created": "Created", "running": "Up " + since, "exited": fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, since)}[c.Status]
	var srcs []string
	volumes := 0
	for _, m := range c.Mounts {
		srcs = append(srcs, m.Source)
		if m.Type == "volume" {
			volumes++
		}
	}
	return map[string]string{
		"Command": strconv.Quote(cmd), "CreatedAt": listTime(c.Created), "ID": trunc(c.ID, noTrunc), "Image": c.Image,
		"Labels": labelString(c.Labels), "LocalVolumes": strconv.Itoa(volumes), "Mounts": strings.Join(srcs, ","), "Names": c.Name,
		"Networks": strings.Join(slices.Sorted(maps.Keys(c.Networks)), ","), "Ports": "", "RunningFor": since + " ago",
		"Size": "0B", "State": c.Status, "Status": status,
	}
}

// inspectContainer is the part of the API's container JSON that bottle
// and scripts read.
func (w *world) inspectContainer(c *container) map[string]any {
	argv := append(slices.Clone(c.Entrypoint), c.Cmd...)
	path, args := "", []string{}
	if len(argv) > 0 {
		path, args = argv[0], argv[1:]
	}
	pid := 0
	if c.Status == "running" {
		pid = 4242
	}
	var mounts []map[string]any
	for _, m := range c.Mounts {
		if m.Type == "volume" {
			mounts = append(mounts, map[string]any{"Type": m.Type, "Name": m.Source, "Source": mountpoint(m.Source), "Destination": m.Target,
				"Driver": "local", "Mode": "z", "RW": !m.ReadOnly, "Propagation": ""})
			continue
		}
		mounts = append(mounts, map[string]any{"Type": m.Type, "Source": m.Source, "Destination": m.Target, "Mode": "", "RW": !m.ReadOnly, "Propagation": "rprivate"})
	}
	nets := map[string]any{}
	for name, addr := range c.Networks {
		nid := ""
		if n := w.network(name); n != nil {
			nid = n.ID
		}
		nets[name] = map[string]any{"IPAddress": addr, "Aliases": c.Aliases[name], "NetworkID": nid}
	}
	imageID := ""
	if im := w.image(c.Image); im != nil {
		imageID = im.ID
	}
	return map[string]any{
		"Id": c.ID, "Created": c.Created.Format(time.RFC3339Nano), "Path": path, "Args": args, "Name": "/" + c.Name, "Image": imageID,
		"State": map[string]any{"Status": c.Status, "Running": c.Status == "running", "Paused": false, "Restarting": false,
			"OOMKilled": false, "Dead": false, "Pid": pid, "ExitCode": c.ExitCode, "Error": "",
			// Docker's "never" is the zero time.
			"StartedAt": c.Started.Format(time.RFC3339Nano)},
		"Mounts":          mounts,
		"Config":          map[string]any{"Image": c.Image, "Cmd": c.Cmd, "Entrypoint": c.Entrypoint, "Env": c.Env, "Labels": c.Labels},
		"HostConfig":      map[string]any{"NetworkMode": networkMode(c), "ReadonlyRootfs": c.ReadOnly},
		"NetworkSettings": map[string]any{"Networks": nets},
	}
}

// networkMode is the network a container was created on: none if it
// has no network, else the first of them by name.
func networkMode(c *container) string {
	if _, ok := c.Networks["none"]; ok || len(c.Networks) == 0 {
		return "none"
	}
	return slices.Sorted(maps.Keys(c.Networks))[0]
}

package docker

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
	"github.com/bottle-dev/bottle/sidecars/egress"
	"github.com/bottle-dev/bottle/sidecars/pipelock"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// bundleStateDir is where the bundle container sees the state directory.
const bundleStateDir = "/state"

// sidecarConfigFile is the rendered sidecar configuration in the state directory.
const sidecarConfigFile = "sidecars.json"

// guestBinary is where the agent container sees bottle's own binary,
// mounted read-only and run as its entrypoint (bottle guest).
const guestBinary = "/.bottle/bottle"

// guestHomeSeed is where the files rendered for the agent's HOME are,
// read-only, for bottle guest to copy into HOME (--home-seed).
const guestHomeSeed = "/.bottle/home"

// guestWaitSlack is how much longer bottle guest waits for the sockets than
// bottle waits for the bundle's readiness.
const guestWaitSlack = 10 * time.Second

// Configure puts every sidecar's socket in the per-bottle socket volume,
// which the bundle and the agent both mount at sidecars.SandboxSocketDir.
// It refuses mounts over the socket directory or bottle's binary.
func (d *Backend) Configure(p *plan.Plan) error {
	if err := sidecars.CheckReserved(p, sidecars.SandboxSocketDir, path.Dir(guestBinary)); err != nil {
		return err
	}
	return sidecars.Configure(p, sidecars.SandboxSocketDir)
}

// Preflight checks the CLI, the daemon, bottle's static binary and the
// mount sources, without changing anything.
func (d *Backend) Preflight(ctx context.Context, b *backends.Bottle) error {
	if _, err := d.cli(); err != nil {
		return err
	}
	version, arch, err := d.server(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.Progress, "bottle: docker daemon %s (%s)\n", version, arch)
	var errs []error
	if _, err := sidecarBinary(b.Executable, arch); err != nil {
		errs = append(errs, err)
	}
	if b.Plan.Egress.Sidecar == plan.SidecarPipelock {
		if _, err := pipelockBinary(arch); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range b.Plan.Mounts {
		if _, err := os.Stat(m.HostPath); err != nil {
			errs = append(errs, fmt.Errorf("mount source %s does not exist (mount() at %s); create it or change the profile", m.HostPath, m.From))
		}
	}
	return errors.Join(errs...)
}

// pipelockBinary is the host's pipelock, which the bundle image gets a
// copy of: it must be a static linux build for the daemon's architecture
// (on a macOS host, BOTTLE_PIPELOCK names one).
func pipelockBinary(arch string) (string, error) {
	bin, err := pipelock.Find()
	if err != nil {
		return "", err
	}
	if err := backends.CheckStaticProgram(bin, arch, "pipelock", "the sidecar bundle", pipelock.Env); err != nil {
		return "", err
	}
	return bin, nil
}

// Teardown layers: the socket volume last, after both containers.
const (
	layerVolume = iota
	layerContainers
)

// Launch runs a bottle: a socket volume, the sidecar bundle and the agent
// container with no network at all. The bundle's sidecars listen on unix
// sockets in the volume; the agent mounts the volume read-only and runs
// bottle guest as its entrypoint, which relays each socket onto the
// agent's loopback and runs the agent's command. Launch runs the agent
// attached to stdio and tears everything down.
func (d *Backend) Launch(ctx context.Context, b *backends.Bottle, stdio backends.Stdio) (code int, err error) {
	cli, err := d.cli()
	if err != nil {
		return -1, err
	}
	p := b.Plan
	n := namesFor(p.Slug)
	td := &backends.Teardown{}
	defer func() {
		if terr := td.Run(); terr != nil {
			err = errors.Join(err, fmt.Errorf("tear down (run bottle cleanup to finish): %w", terr))
		}
	}()
	_, arch, err := d.server(ctx)
	if err != nil {
		return -1, err
	}
	bin, err := sidecarBinary(b.Executable, arch)
	if err != nil {
		return -1, err
	}
	var plk string
	if p.Egress.Sidecar == plan.SidecarPipelock {
		if plk, err = pipelockBinary(arch); err != nil {
			return -1, err
		}
	}
	cfg, err := srt.Render(p, bundleStateDir, 0o666)
	if err != nil {
		return -1, err
	}
	// The dead man's switch: the sidecars stop when this process dies.
	cfg.Controller = bundleStateDir + "/" + backends.LockFile
	if err := srt.WriteConfig(filepath.Join(b.State.Dir, sidecarConfigFile), cfg); err != nil {
		return -1, err
	}

	// The images and the volume do not depend on each other: make them at
	// once, but build the images one after the other, so that each build's
	// progress and failure are its own.
	var (
		wg             sync.WaitGroup
		bundleTag      string
		imgErr, volErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		in, err := newBundleInputs(bin, hasSidecar(p, plan.SidecarGitGate), plk)
		if err == nil {
			err = d.ensureBundle(ctx, in, b.Progress)
		}
		if err == nil {
			bundleTag = in.tag
			err = d.ensureAgentImage(ctx, p.Backend.Image, b.Progress)
		}
		imgErr = err
	}()
	go func() { defer wg.Done(); volErr = d.createVolume(ctx, p, n, td) }()
	wg.Wait()
	if err := errors.Join(ctx.Err(), imgErr, volErr); err != nil {
		return -1, err
	}
	// Teardown removes only the containers this launch created: a name
	// already in use is another bottle's.
	var created ownedNames
	td.Add(layerContainers, func(ctx context.Context) error {
		if names := created.list(); len(names) > 0 {
			return d.removeContainers(ctx, names...)
		}
		return nil
	})

	// Start the bundle while the agent container is created and started:
	// bottle guest waits for the sockets, which the bundle makes. A bundle
	// that fails to start, or stops before it is ready, ends the launch.
	bundleErr := make(chan error, 1)
	bundleDone := make(chan struct{})
	go func() {
		defer close(bundleDone)
		err := d.startBundle(ctx, cli, b, n, bundleTag)
		created.addUnlessConflict(n.bundle, err)
		bundleErr <- err
	}()
	// However the launch ends, the teardown (deferred earlier, so run
	// later) must know whether the bundle was created.
	defer func() { <-bundleDone }()
	err = d.createAgent(ctx, cli, b, n, bin, stdio)
	created.addUnlessConflict(n.agent, err)
	if err != nil {
		return -1, errors.Join(err, <-bundleErr)
	}
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		err := <-bundleErr
		if err == nil {
			err = d.waitReady(runCtx, b, n)
		}
		if err != nil && runCtx.Err() == nil {
			stop(err)
		}
	}()
	args := []string{"start", "--attach"}
	if stdio.Stdin != nil {
		args = append(args, "--interactive")
	}
	code, err = d.runner().Attach(runCtx, backends.Cmd{Path: cli, Args: append(args, n.agent)}, stdio)
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil {
		return -1, cause
	}
	if err != nil {
		return -1, fmt.Errorf("run the agent: %w", err)
	}
	if code != 0 && ctx.Err() == nil && !d.started(ctx, n.agent) {
		// docker's own failure, not the agent's exit code.
		return -1, fmt.Errorf("the agent container did not start (docker start exited %d; its message is above)", code)
	}
	if ctx.Err() != nil {
		return code, ctx.Err()
	}
	return code, nil
}

// createVolume creates the bottle's socket volume: a tmpfs owned by the
// user the bundle runs as (the invoking user), mode 0755, so that the
// sidecars can make their sockets in it and the agent can reach them.
// A named volume works where a bind mount of a socket does not (Docker
// Desktop's VM) and holds nothing once removed.
func (d *Backend) createVolume(ctx context.Context, p *plan.Plan, n names, td *backends.Teardown) error {
	o := "uid=" + strconv.Itoa(os.Getuid()) + ",gid=" + strconv.Itoa(os.Getgid()) + ",mode=0755,size=1m"
	args := []string{"volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=" + o}
	args = append(append(args, labels(p, "sockets")...), n.volume)
	if _, err := d.out(ctx, args...); err != nil {
		return fmt.Errorf("create the socket volume %s: %w", n.volume, err)
	}
	td.Add(layerVolume, func(ctx context.Context) error { return d.removeVolume(ctx, n.volume) })
	return nil
}

func (d *Backend) removeVolume(ctx context.Context, name string) error {
	if _, err := d.out(ctx, "volume", "rm", "--force", name); err != nil && !notFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// ownedNames are the containers a launch created, for its teardown.
type ownedNames struct {
	mu    sync.Mutex
	names []string
}

// addUnlessConflict records name unless err says that the name was
// already taken, by a container that is not this launch's. A create or
// run that failed for another reason may have left its container behind,
// so it is recorded too.
func (o *ownedNames) addUnlessConflict(name string, err error) {
	if err != nil && strings.Contains(err.Error(), "is already in use") {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.names = append(o.names, name)
}

// list returns the recorded names, sorted.
func (o *ownedNames) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(slices.Values(o.names))
}

// removeContainers removes containers, running or not, in one command.
// docker (20.10 and later) skips a missing one with a message and exit 0;
// any failure is retried one container at a time, so that each is
// reported on its own and a missing one is no error.
func (d *Backend) removeContainers(ctx context.Context, names ...string) error {
	if _, err := d.out(ctx, append([]string{"rm", "--force"}, names...)...); err != nil {
		var errs []error
		for _, n := range names {
			errs = append(errs, d.removeContainer(ctx, n))
		}
		return errors.Join(errs...)
	}
	return nil
}

func (d *Backend) removeContainer(ctx context.Context, name string) error {
	if _, err := d.out(ctx, "rm", "--force", name); err != nil && !notFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// notFound reports whether docker said the object does not exist.
func notFound(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no such") || strings.Contains(msg, "not found")
}

// localRemotePath is the host path of a local git remote, or "".
func localRemotePath(u string) string {
	if p, ok := strings.CutPrefix(u, "file://"); ok {
		u = p
	}
	if filepath.IsAbs(u) {
		return filepath.Clean(u)
	}
	return ""
}

func hasSidecar(p *plan.Plan, name string) bool {
	for _, sc := range p.Sidecars {
		if sc.Name == name {
			return true
		}
	}
	return false
}

// BundleNetworkEnv names the docker network the bundle joins instead of
// the daemon's default one, for hosts whose way out is a network of their
// own (a corporate proxy, an internal registry).
const BundleNetworkEnv = "BOTTLE_BUNDLE_NETWORK"

// startBundle starts the bundle container on the daemon's default network
// (or $BOTTLE_BUNDLE_NETWORK), its only way out. It listens on no TCP
// port, so nothing on that network can reach its sidecars, and a network
// of its own would only add the cost of making and removing one.
func (d *Backend) startBundle(ctx context.Context, cli string, b *backends.Bottle, n names, tag string) error {
	p := b.Plan
	args := []string{"run", "--detach", "--name", n.bundle}
	args = append(args, labels(p, "sidecars")...)
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	args = append(args,
		"--user", uid+":"+gid,
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--mount", bindSpec(b.State.Dir, bundleStateDir, false),
		"--mount", mountSpec("type=volume", "src="+n.volume, "dst="+sidecars.SandboxSocketDir))
	if egress.Intercepts(p) {
		// The bundle's image holds no trusted roots: the egress sidecar
		// verifies intercepted hosts against the host's.
		roots, err := sidecars.HostRoots(os.Getenv)
		if err != nil {
			return err
		}
		args = append(args, "--mount", bindSpec(roots, "/etc/ssl/certs/ca-certificates.crt", true))
	}
	if net := os.Getenv(BundleNetworkEnv); net != "" {
		args = append(args, "--network", net)
	}
	// The git gate's credentials: key files mounted read-only at their
	// host paths, tokens passed by name with their values in the docker
	// CLI's environment, and a passwd entry for the host user, whom ssh
	// insists on finding.
	var tokenEnv []string
	for _, sc := range p.Sidecars {
		if sc.GitGate == nil {
			continue
		}
		passwd := "root:x:0:0:root:/root:/bin/sh\nbottle:x:" + uid + ":" + gid + ":bottle:" + bundleStateDir + ":/bin/sh\n"
		if err := b.State.WriteFile("passwd", []byte(passwd)); err != nil {
			return err
		}
		args = append(args, "--mount", bindSpec(filepath.Join(b.State.Dir, "passwd"), "/etc/passwd", true),
			"--env", "HOME="+bundleStateDir)
		seen := map[string]bool{}
		for _, r := range sc.GitGate.Remotes {
			// A local upstream (a path or file:// URL) is mounted at its
			// host path, so the gate inside the bundle finds it there.
			if local := localRemotePath(r.URL); local != "" && !seen[local] {
				seen[local] = true
				args = append(args, "--mount", bindSpec(local, local, false))
			}
			for _, f := range []string{r.SSHKey, r.KnownHosts} {
				if f != "" && !seen[f] {
					seen[f] = true
					args = append(args, "--mount", bindSpec(f, f, true))
				}
			}
			if r.TokenEnv != "" && !seen["$"+r.TokenEnv] {
				seen["$"+r.TokenEnv] = true
				args = append(args, "--env", r.TokenEnv)
				tokenEnv = append(tokenEnv, r.TokenEnv+"="+os.Getenv(r.TokenEnv))
			}
		}
	}
	args = append(args, tag, "sidecars", "--config", bundleStateDir+"/"+sidecarConfigFile, "--log", bundleStateDir+"/"+srt.LogFile)
	if _, err := d.runner().Output(ctx, backends.Cmd{Path: cli, Args: args, Env: tokenEnv}); err != nil {
		return fmt.Errorf("start the sidecar bundle: %w", err)
	}
	return nil
}

// waitReady waits until the bundle's sidecars all listen, or the bundle
// stops, or the timeout passes.
func (d *Backend) waitReady(ctx context.Context, b *backends.Bottle, n names) error {
	readyTimeout := backends.ReadyTimeout()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if _, err := srt.ReadReady(b.State.Dir); err == nil {
			return nil
		}
		if i%25 == 24 {
			out, err := d.out(ctx, "inspect", "--format", "{{json .State.Running}}", n.bundle)
			if err == nil && strings.TrimSpace(string(out)) == "false" {
				logs, _ := os.ReadFile(filepath.Join(b.State.Dir, srt.LogFile))
				dl, _ := d.out(ctx, "logs", "--tail", "20", n.bundle)
				return fmt.Errorf("the sidecar bundle stopped before it was ready:\n%s%s", logs, dl)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the sidecars were not ready after %s", readyTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// started reports whether a container ever started running.
func (d *Backend) started(ctx context.Context, name string) bool {
	out, err := d.out(ctx, "inspect", "--format", "{{json .State.StartedAt}}", name)
	if err != nil {
		return true // cannot tell: keep the exit code
	}
	var at time.Time
	if s := strings.TrimSpace(string(out)); s == "null" || json.Unmarshal(out, &at) != nil {
		return true
	}
	return at.Year() > 1 // docker's "never" is 0001-01-01T00:00:00Z
}

// protectMounts returns the mounts that keep the plan's protected paths
// from the agent (see backends.Protect): each pinned directory is bound
// writable onto itself, each protected path read-only.
func protectMounts(b *backends.Bottle) ([]string, error) {
	ops, err := backends.Protect(b.Plan, b.State)
	if err != nil {
		return nil, err
	}
	var args []string
	for _, op := range ops {
		args = append(args, "--mount", bindSpec(op.Host, op.Target, op.ReadOnly))
	}
	return args, nil
}

// agentHome is the agent's HOME: a tmpfs of its own, writable by the
// agent's user, so that any image works whatever user it was built for.
const agentHome = "/home/bottle"

// agentLimits bound what the agent can do to the host: no privilege gain
// through setuid files, no capabilities but those the profile asks for
// (docker(cap_add = [...])), and a pids limit that stops a fork bomb at
// the container (docker(pids_limit = ...), plan.DefaultPidsLimit unless
// the profile says).
func agentLimits(be plan.Backend) []string {
	args := []string{"--security-opt", "no-new-privileges", "--cap-drop", "ALL"}
	for _, c := range be.CapAdd {
		args = append(args, "--cap-add", c)
	}
	pids := be.PidsLimit
	if pids <= 0 {
		pids = plan.DefaultPidsLimit // a plan written before the field
	}
	return append(args, "--pids-limit", strconv.FormatInt(pids, 10))
}

// agentIdentity is the agent's user: the invoking user's uid and gid, so
// that what it writes in the workspace belongs to that user, with a
// passwd and group entry of its own (mounted read-only over the image's,
// so that tools that look the user up find a name and HOME) and a private
// tmpfs HOME. A profile's docker(user = ...) replaces the uid and gid and
// keeps the image's passwd; its HOME is then a tmpfs any user can write.
func agentIdentity(b *backends.Bottle) ([]string, error) {
	if u := b.Plan.Backend.User; u != "" {
		return []string{"--user", u, "--tmpfs", agentHome + ":mode=1777"}, nil
	}
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	group := "root:x:0:\n"
	if uid != "0" {
		passwd += "bottle:x:" + uid + ":" + gid + ":bottle agent:" + agentHome + ":/bin/sh\n"
	}
	if gid != "0" {
		group += "bottle:x:" + gid + ":\n"
	}
	if err := b.State.WriteFile("agent-passwd", []byte(passwd)); err != nil {
		return nil, err
	}
	if err := b.State.WriteFile("agent-group", []byte(group)); err != nil {
		return nil, err
	}
	// The state directory is 0700; the files must be readable by the
	// agent's user, which is the owner.
	home := []string{"--tmpfs", agentHome + ":uid=" + uid + ",gid=" + gid + ",mode=0700"}
	if b.Plan.Agent.Home == plan.HomePersistent {
		// Kept between starts in the user's own directory (the
		// evaluator refuses docker(user = ...) with it).
		if err := os.MkdirAll(b.Plan.Agent.HomeDir, 0o700); err != nil {
			return nil, fmt.Errorf("the agent's persistent HOME: %w", err)
		}
		home = []string{"--mount", bindSpec(b.Plan.Agent.HomeDir, agentHome, false)}
	}
	return []string{
		"--user", uid + ":" + gid,
		home[0], home[1],
		"--mount", bindSpec(filepath.Join(b.State.Dir, "agent-passwd"), "/etc/passwd", true),
		"--mount", bindSpec(filepath.Join(b.State.Dir, "agent-group"), "/etc/group", true),
	}, nil
}

// createAgent creates the agent container with no network: bottle's own
// binary, mounted read-only, is its entrypoint (bottle guest), and the
// socket volume is mounted read-only where bottle guest finds the sockets.
// Secrets travel in the docker CLI's environment, so create is where their
// values are needed.
func (d *Backend) createAgent(ctx context.Context, cli string, b *backends.Bottle, n names, bin string, stdio backends.Stdio) error {
	p := b.Plan
	args := []string{"create", "--name", n.agent}
	args = append(args, labels(p, "agent")...)
	args = append(args, "--network", "none", "--interactive")
	if stdio.TTY {
		args = append(args, "--tty")
	}
	cmd, env, err := sidecars.Agent(p, b.Command)
	if err != nil {
		return err
	}
	fws, err := sidecars.Forwards(p, sidecars.SandboxSocketDir)
	if err != nil {
		return err
	}
	args = append(args, "--env", "HOME="+agentHome)
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	// Secrets go by name only: the docker CLI reads each value from its
	// own environment, so no value appears in any process's arguments.
	var secretEnv []string
	for _, s := range p.Secrets {
		args = append(args, "--env", s.Name)
		secretEnv = append(secretEnv, s.Name+"="+b.Secrets[s.Name])
	}
	for _, m := range p.Mounts {
		args = append(args, "--mount", bindSpec(m.HostPath, m.Target, m.ReadOnly))
	}
	protect, err := protectMounts(b)
	if err != nil {
		return err
	}
	args = append(args, protect...)
	args = append(args,
		"--mount", mountSpec("type=volume", "src="+n.volume, "dst="+sidecars.SandboxSocketDir, "readonly"),
		"--mount", bindSpec(bin, guestBinary, true))
	if len(b.HomeFiles) > 0 {
		seed := filepath.Join(b.State.Dir, backends.HomeSeedDir)
		if err := backends.WriteHomeSeed(seed, b.HomeFiles, p.Backend.User != ""); err != nil {
			return err
		}
		args = append(args, "--mount", bindSpec(seed, guestHomeSeed, true))
	}
	args = append(args, "--workdir", p.Agent.Workdir)
	ident, err := agentIdentity(b)
	if err != nil {
		return err
	}
	args = append(args, ident...)
	args = append(args, agentLimits(p.Backend)...)
	profile, err := writeAgentSeccomp(b.State)
	if err != nil {
		return err
	}
	args = append(args, "--security-opt", "seccomp="+profile)
	if p.Backend.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(p.Backend.CPUs, 'f', -1, 64))
	}
	if p.Backend.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(p.Backend.MemoryBytes, 10))
	}
	if p.Backend.Runtime != "" {
		args = append(args, "--runtime", p.Backend.Runtime)
	}
	args = append(args, "--entrypoint", guestBinary, p.Backend.Image)
	guest := sidecars.GuestArgs(fws, cmd)
	// bottle guest waits for the sockets, which the bundle makes while the
	// agent container starts: longer than bottle's own wait, so that a
	// bundle that never gets ready is reported by bottle, with its logs.
	guest = append([]string{guest[0], "--wait", (backends.ReadyTimeout() + guestWaitSlack).String()}, guest[1:]...)
	if len(b.HomeFiles) > 0 {
		guest = append([]string{guest[0], "--home-seed", guestHomeSeed}, guest[1:]...)
	}
	if egress.Intercepts(p) {
		// The egress sidecar publishes its CA next to its socket, before
		// the socket exists, so it is there once bottle guest's wait ends.
		guest = append([]string{guest[0], "--egress-ca", path.Join(sidecars.SandboxSocketDir, egress.CAFile)}, guest[1:]...)
	}
	ids, err := backends.SourceIdentities(p)
	if err != nil {
		return err
	}
	for _, target := range slices.Sorted(maps.Keys(ids)) {
		guest = append([]string{guest[0], "--expect-mount", target + "=" + ids[target]}, guest[1:]...)
	}
	args = append(args, guest...)
	if _, err := d.runner().Output(ctx, backends.Cmd{Path: cli, Args: args, Env: secretEnv}); err != nil {
		return fmt.Errorf("create the agent container: %w", err)
	}
	return nil
}

// mountSpec returns docker's --mount value made of fields ("key=value" or
// a flag such as "readonly"). The docker CLI reads that value as one line
// of CSV (opts/mount.go:26 at docker/cli v27.5.1), so each field is
// quoted as CSV where it needs it: a comma or a quote in a path, which an
// agent can choose for a directory in the workspace, cannot add a field
// such as a second src.
func mountSpec(fields ...string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(fields) // a strings.Builder does not fail
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// bindSpec is the --mount value binding host path src at dst.
func bindSpec(src, dst string, readOnly bool) string {
	fields := []string{"type=bind", "src=" + src, "dst=" + dst}
	if readOnly {
		fields = append(fields, "readonly")
	}
	return mountSpec(fields...)
}

package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/gitgate"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// bundleStateDir is where the bundle container sees the state directory.
const bundleStateDir = "/state"

// sidecarConfigFile is the rendered sidecar configuration in the state directory.
const sidecarConfigFile = "sidecars.json"

// Preflight checks the CLI, the daemon, the sidecar binary and the mount
// sources, without changing anything.
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
	for _, m := range b.Plan.Mounts {
		if _, err := os.Stat(m.HostPath); err != nil {
			errs = append(errs, fmt.Errorf("mount source %s does not exist (mount() at %s); create it or change the profile", m.HostPath, m.From))
		}
	}
	for _, sc := range b.Plan.Sidecars {
		if sc.GitGate == nil {
			continue
		}
		// The gate's credentials are host files and variables, mounted and
		// passed into the bundle: check them here, before anything starts.
		gate, err := gitgate.New(gitgate.Config{Remotes: sc.GitGate.Remotes, StateDir: b.State.Dir, MaxPushBytes: sc.GitGate.MaxPushBytes})
		if err == nil {
			err = gate.Preflight()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if b.Plan.Egress.Sidecar == plan.SidecarPipelock {
		if err := backends.PreflightPipelock(ctx, b.Plan, d.runner()); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, backends.ErrPipelockUnavailable)
		}
	}
	return errors.Join(errs...)
}

// Teardown layers: containers first, all at once, then networks.
const (
	layerNetworks = iota
	layerContainers
)

// Launch creates the bottle's networks, sidecar bundle and agent
// container, runs the agent attached to stdio and tears everything down.
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

	// Images and networks do not depend on each other: prepare them at once.
	var (
		wg                       sync.WaitGroup
		bundleTag                string
		imgErr, agentErr, netErr error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		in, err := newBundleInputs(bin, hasSidecar(p, plan.SidecarGitGate))
		if err == nil {
			err = d.ensureBundle(ctx, in, b.Progress)
		}
		if err == nil {
			bundleTag = in.tag
		}
		imgErr = err
	}()
	go func() { defer wg.Done(); agentErr = d.ensureAgentImage(ctx, p.Backend.Image, b.Progress) }()
	go func() { defer wg.Done(); netErr = d.createNetworks(ctx, p, &n, td) }()
	wg.Wait()
	if err := errors.Join(ctx.Err(), imgErr, agentErr, netErr); err != nil {
		return -1, err
	}

	if err := d.startBundle(ctx, cli, b, n, bundleTag, td); err != nil {
		return -1, err
	}
	// Create the agent's container while the sidecars come up; start it
	// only once they listen.
	created := make(chan error, 1)
	go func() { created <- d.createAgent(ctx, cli, b, n, stdio, td) }()
	readyErr := d.waitReady(ctx, b, n)
	if err := errors.Join(readyErr, <-created); err != nil {
		return -1, err
	}
	args := []string{"start", "--attach"}
	if stdio.Stdin != nil {
		args = append(args, "--interactive")
	}
	code, err = d.runner().Attach(ctx, backends.Cmd{Path: cli, Args: append(args, n.agent)}, stdio)
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

// createNetworks creates the internal and the egress network on free
// subnets derived from the slug; a collision with a bottle created at the
// same moment moves on to the next free subnets.
func (d *Backend) createNetworks(ctx context.Context, p *plan.Plan, n *names, td *backends.Teardown) error {
	specs := []*networkSpec{
		// The internal network: no route out, and no address on the host's
		// side of its bridge, so the host cannot be reached through it.
		{name: n.internal, extra: []string{"--internal", "--opt", "com.docker.network.bridge.inhibit_ipv4=true"}},
		{name: n.egress},
	}
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		var todo []*networkSpec
		for _, s := range specs {
			if !s.created {
				todo = append(todo, s)
			}
		}
		if len(todo) == 0 {
			break
		}
		// Networks already made this launch are among the used subnets.
		used, err := d.usedSubnets(ctx)
		if err != nil {
			return err
		}
		subnets, err := pickSubnets(p.Slug, used, len(todo), attempt*len(todo))
		if err != nil {
			return err
		}
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		for i, s := range todo {
			s.subnet = subnets[i]
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = d.createNetwork(ctx, p, s, td) }()
		}
		wg.Wait()
		lastErr = errors.Join(errs...)
		for _, err := range errs {
			// Only a collision with a bottle created at the same moment
			// is worth another subnet; anything else ends the launch.
			if err != nil && !strings.Contains(err.Error(), "overlap") {
				return lastErr
			}
		}
	}
	if !specs[0].created || !specs[1].created {
		return lastErr
	}
	n.bundleIP = specs[0].subnet.Addr().Next().Next()
	return nil
}

// networkSpec is one of a bottle's networks.
type networkSpec struct {
	name    string
	extra   []string
	subnet  netip.Prefix
	created bool
}

func (d *Backend) createNetwork(ctx context.Context, p *plan.Plan, s *networkSpec, td *backends.Teardown) error {
	args := append([]string{"network", "create", "--driver", "bridge", "--subnet", s.subnet.String()}, s.extra...)
	args = append(append(args, labels(p, "network")...), s.name)
	if _, err := d.out(ctx, args...); err != nil {
		return fmt.Errorf("create network %s: %w", s.name, err)
	}
	s.created = true
	td.Add(layerNetworks, func(ctx context.Context) error { return d.removeNetwork(ctx, s.name) })
	return nil
}

// removeNetwork removes a bottle network, first disconnecting anything
// else that was attached to it (docker refuses to remove a network with
// endpoints).
func (d *Backend) removeNetwork(ctx context.Context, name string) error {
	_, err := d.out(ctx, "network", "rm", name)
	if err == nil || notFound(err) {
		return nil
	}
	err = fmt.Errorf("remove network %s: %w", name, err)
	if !strings.Contains(err.Error(), "active endpoints") {
		return err
	}
	out, ierr := d.out(ctx, "network", "inspect", "--format", "{{json .Containers}}", name)
	if ierr != nil {
		return err
	}
	var eps map[string]struct{ Name string }
	if json.Unmarshal(out, &eps) != nil {
		return err
	}
	for id := range eps {
		d.out(ctx, "network", "disconnect", "--force", name, id)
	}
	if _, err := d.out(ctx, "network", "rm", name); err != nil && !notFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
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

// sidecarAliases are the names the agent reaches the bundle by.
var sidecarAliases = []string{"proxy.internal", "git-gate", "supervise"}

// startBundle renders the sidecar configuration into the state directory
// and starts the bundle container on both networks.
func (d *Backend) startBundle(ctx context.Context, cli string, b *backends.Bottle, n names, tag string, td *backends.Teardown) error {
	p := b.Plan
	// The sidecars listen on the bundle's internal address only, so that
	// nothing on the egress network can reach them.
	cfg, err := backends.SidecarConfig(p, bundleStateDir, func(sc plan.Sidecar) srt.Listen {
		_, port, _ := net.SplitHostPort(sc.Listen.Address)
		return srt.Listen{Network: "tcp", Address: net.JoinHostPort(n.bundleIP.String(), port)}
	})
	if err != nil {
		return err
	}
	if err := srt.WriteConfig(filepath.Join(b.State.Dir, sidecarConfigFile), cfg); err != nil {
		return err
	}
	args := []string{"create", "--name", n.bundle}
	args = append(args, labels(p, "sidecars")...)
	args = append(args, "--network", n.internal, "--ip", n.bundleIP.String())
	for _, a := range sidecarAliases {
		args = append(args, "--network-alias", a)
	}
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	args = append(args,
		"--user", uid+":"+gid,
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		// The bundle joins two networks; it must never route between them.
		"--sysctl", "net.ipv4.ip_forward=0",
		"--mount", "type=bind,src="+b.State.Dir+",dst="+bundleStateDir)
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
		args = append(args, "--mount", "type=bind,src="+filepath.Join(b.State.Dir, "passwd")+",dst=/etc/passwd,readonly",
			"--env", "HOME="+bundleStateDir)
		seen := map[string]bool{}
		for _, r := range sc.GitGate.Remotes {
			// A local upstream (a path or file:// URL) is mounted at its
			// host path, so the gate inside the bundle finds it there.
			if local := localRemotePath(r.URL); local != "" && !seen[local] {
				seen[local] = true
				args = append(args, "--mount", "type=bind,src="+local+",dst="+local)
			}
			for _, f := range []string{r.SSHKey, r.KnownHosts} {
				if f != "" && !seen[f] {
					seen[f] = true
					args = append(args, "--mount", "type=bind,src="+f+",dst="+f+",readonly")
				}
			}
			if r.TokenEnv != "" && !seen["$"+r.TokenEnv] {
				seen["$"+r.TokenEnv] = true
				args = append(args, "--env", r.TokenEnv)
				tokenEnv = append(tokenEnv, r.TokenEnv+"="+os.Getenv(r.TokenEnv))
			}
		}
	}
	args = append(args, tag, "sidecars", "--config", bundleStateDir+"/"+sidecarConfigFile)
	if _, err := d.runner().Output(ctx, backends.Cmd{Path: cli, Args: args, Env: tokenEnv}); err != nil {
		return fmt.Errorf("create the sidecar bundle: %w", err)
	}
	td.Add(layerContainers, func(ctx context.Context) error { return d.removeContainer(ctx, n.bundle) })
	if _, err := d.out(ctx, "network", "connect", n.egress, n.bundle); err != nil {
		return fmt.Errorf("connect the sidecar bundle to the egress network: %w", err)
	}
	if _, err := d.out(ctx, "start", n.bundle); err != nil {
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

// createAgent creates the agent container on the internal network only;
// secrets travel in the docker CLI's environment, so create is where their
// values are needed.
func (d *Backend) createAgent(ctx context.Context, cli string, b *backends.Bottle, n names, stdio backends.Stdio, td *backends.Teardown) error {
	p := b.Plan
	args := []string{"create", "--name", n.agent}
	args = append(args, labels(p, "agent")...)
	args = append(args, "--network", n.internal, "--interactive")
	if stdio.TTY {
		args = append(args, "--tty")
	}
	var siblings []string
	for _, sc := range p.Sidecars {
		switch sc.Name {
		case plan.SidecarGitGate:
			siblings = append(siblings, "git-gate")
		case plan.SidecarSupervise:
			siblings = append(siblings, "supervise")
		}
	}
	cmd, cmdEnv, err := backends.AgentCommand(b)
	if err != nil {
		return err
	}
	env := append(append(backends.ProxyEnv(p, siblings), backends.GitEnv(p)...), cmdEnv...)
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	for _, e := range p.Agent.Env {
		args = append(args, "--env", e.Name+"="+e.Value)
	}
	// Secrets go by name only: the docker CLI reads each value from its
	// own environment, so no value appears in any process's arguments.
	var secretEnv []string
	for _, s := range p.Secrets {
		args = append(args, "--env", s.Name)
		secretEnv = append(secretEnv, s.Name+"="+b.Secrets[s.Name])
	}
	for _, m := range p.Mounts {
		spec := "type=bind,src=" + m.HostPath + ",dst=" + m.Target
		if m.ReadOnly {
			spec += ",readonly"
		}
		args = append(args, "--mount", spec)
	}
	args = append(args, "--workdir", p.Agent.Workdir)
	if p.Backend.User != "" {
		args = append(args, "--user", p.Backend.User)
	}
	if p.Backend.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(p.Backend.CPUs, 'f', -1, 64))
	}
	if p.Backend.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(p.Backend.MemoryBytes, 10))
	}
	if p.Backend.Runtime != "" {
		args = append(args, "--runtime", p.Backend.Runtime)
	}
	args = append(args, agentIsolation...)
	for _, a := range sidecarAliases {
		args = append(args, "--add-host", a+":"+n.bundleIP.String())
	}
	args = append(args, "--entrypoint", "")
	args = append(append(args, p.Backend.Image), cmd...)
	td.Add(layerContainers, func(ctx context.Context) error { return d.removeContainer(ctx, n.agent) })
	if _, err := d.runner().Output(ctx, backends.Cmd{Path: cli, Args: args, Env: secretEnv}); err != nil {
		return fmt.Errorf("create the agent container: %w", err)
	}
	return nil
}

// agentIsolation are the agent container's flags that close what an
// --internal network leaves open, found by probing a Debian 12 daemon
// (20.10) and kept because they are harmless on newer ones:
//
//   - --dns 0.0.0.0: any --dns makes Docker's embedded resolver (127.0.0.11)
//     forward outside names from inside the container's namespace, where
//     there is no route, instead of from the host's (CVE-2024-29018, fixed
//     in Docker 25.0.5, a full DNS tunnel out when the host's resolver is
//     on loopback). Sibling names still resolve, and --add-host puts them
//     in /etc/hosts too.
//   - --cap-drop NET_RAW: without raw sockets the agent cannot hand-build
//     IPv6 link-local or IPv4 packets to the host's side of the bridge.
//   - IPv6 off: no address to reach anything by.
//
// The internal network's bridge has no IPv4 address (inhibit_ipv4), which
// closes the host's services to the agent through the gateway.
var agentIsolation = []string{
	"--dns", "0.0.0.0", "--dns-option", "timeout:1", "--dns-option", "attempts:1",
	"--cap-drop", "NET_RAW",
	"--sysctl", "net.ipv6.conf.all.disable_ipv6=1",
}

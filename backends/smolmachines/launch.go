package smolmachines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/render"
	"github.com/bottle-dev/bottle/sidecars"
	"github.com/bottle-dev/bottle/sidecars/egress"
	bottleguest "github.com/bottle-dev/bottle/sidecars/guest"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// Files in the state directory.
const (
	// sidecarConfigFile is the rendered sidecar configuration.
	sidecarConfigFile = "sidecars.json"
	// smolfileName is the rendered Smolfile.
	smolfileName = "Smolfile"
	// guestStageDir holds the copy of the guest binary shared into the
	// guest, and nothing else.
	guestStageDir = "guest"
	// pausedFile marks a launch paused by BOTTLE_SMOL_TEST_PAUSE.
	pausedFile = "test-paused"
	// controlSocketName is the control channel's socket (see
	// bottleguest.ListenControl), beside the sidecars' sockets.
	controlSocketName = "control.sock"
)

// guestControlSocket is where the guest sees the control socket.
var guestControlSocket = path.Join(guestSocketDir, controlSocketName)

// Launch steps, in order; BOTTLE_SMOL_TEST_PAUSE names one.
var steps = []string{"sidecars", "create", "start", "exec"}

var (
	// sidecarGrace is how long the sidecars get to stop before they are killed.
	sidecarGrace = 5 * time.Second
	// stopGrace is how long the agent gets, after the stop signal went to
	// it over the control channel, before smolvm's exec is killed and the
	// teardown stops the machine under it.
	stopGrace = bottleguest.KillDelay
	// exitCodeWait is how long bottle waits, once smolvm's exec has ended,
	// for bottle guest's exit code to arrive over the control channel.
	exitCodeWait = 2 * time.Second
)

// Teardown layers: the machine first, then the sidecars.
const (
	layerSidecars = iota
	layerMachine
)

// forwards lists the plan's sidecars as bottle guest's forwards, with the
// host socket each one's --mount-socket brings into the guest.
func forwards(p *plan.Plan) (fws []sidecars.Forward, hosts []string, err error) {
	fws, err = sidecars.Forwards(p, guestSocketDir)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fws {
		if f.Socket == guestControlSocket {
			return nil, nil, fmt.Errorf("a sidecar's socket is at %s, where bottle's control socket goes", f.Socket)
		}
	}
	for _, sc := range p.Sidecars {
		if sc.Listen.Network != "unix" {
			return nil, nil, fmt.Errorf("the %s sidecar listens on %s, not on a unix socket", sc.Name, sc.Listen.Network)
		}
		if strings.Contains(sc.Listen.Address, ":") {
			return nil, nil, fmt.Errorf("the %s sidecar's socket path %q holds ':', which smolvm's --mount-socket cannot take; set XDG_STATE_HOME to a path without one", sc.Name, sc.Listen.Address)
		}
		hosts = append(hosts, sc.Listen.Address)
	}
	return fws, hosts, nil
}

// launchSpec is everything Launch runs, worked out before anything starts.
type launchSpec struct {
	name     string
	smolfile []byte
	// create and exec are smolvm's arguments.
	create, exec []string
	// control is the host path of the control socket.
	control string
	// secrets are the agent's secret variables, KEY=VALUE, which go to
	// bottle guest over the control channel and nowhere else.
	secrets []string
}

// buildSpec renders the Smolfile and the smolvm command lines of a
// bottle. stageDir is the host directory holding the guest binary and
// guestMount where the guest sees it; smolfilePath is where the Smolfile
// will be; archive is the image's `docker save` archive (see image.go);
// tty asks for a terminal; lock is what bottle guest applies to the agent
// (see lockdown).
func buildSpec(b *backends.Bottle, stageDir, guestMount, smolfilePath, archive string, tty bool, lock bottleguest.Lockdown) (*launchSpec, error) {
	p := b.Plan
	fws, hosts, err := forwards(p)
	if err != nil {
		return nil, err
	}
	cmd, agentEnv, err := sidecars.Agent(p, b.Command)
	if err != nil {
		return nil, err
	}
	guestBin := path.Join(guestMount, guestBinaryName)
	env := map[string]string{}
	for _, kv := range agentEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	volumes := make([]render.Volume, 0, len(p.Mounts)+1)
	for _, m := range p.Mounts {
		volumes = append(volumes, render.Volume{Host: m.HostPath, Guest: m.Target, ReadOnly: m.ReadOnly})
	}
	volumes = append(volumes, render.Volume{Host: stageDir, Guest: guestMount, ReadOnly: true})
	smolfile, err := render.Smolfile(p, []string{guestBin, "guest", "--idle"}, env, volumes)
	if err != nil {
		return nil, err
	}

	s := &launchSpec{name: machineName(p.Slug), smolfile: smolfile, control: filepath.Join(p.StateDir, controlSocketName)}
	if !filepath.IsAbs(archive) {
		return nil, fmt.Errorf("the image archive %q is not an absolute path, which smolvm would read as a registry reference", archive)
	}
	s.create = []string{"machine", "create", "--name", s.name, "-s", smolfilePath, "--image", archive}
	for i, f := range fws {
		s.create = append(s.create, "--mount-socket", hosts[i]+":"+f.Socket)
	}
	s.create = append(s.create, "--mount-socket", s.control+":"+guestControlSocket)
	s.create = append(s.create, "--label", LabelSlug+"="+p.Slug, "--label", backends.LabelOwner+"="+backends.PlanOwner(p), "--label", LabelDigest+"="+p.Digest)

	s.exec = []string{"machine", "exec", "--name", s.name, "-i"}
	if tty {
		s.exec[len(s.exec)-1] = "-it"
	}
	// Secrets go over the control channel, not smolvm's --secret-env,
	// whose values smolvm's agent passes to crun as `--env K=V` arguments
	// inside the guest (see the package comment).
	for _, sec := range p.Secrets {
		s.secrets = append(s.secrets, sec.Name+"="+b.Secrets[sec.Name])
	}
	args := sidecars.GuestArgs(fws, cmd)
	head := []string{args[0], "--control", guestControlSocket}
	workdir, err := render.SmolWorkdir(p)
	if err != nil {
		return nil, err
	}
	if workdir != "" {
		head = append(head, "--workdir", workdir)
	}
	if !lock.Empty() {
		head = append(head, "--lockdown", lock.String())
	}
	if egress.Intercepts(p) {
		// Launch copies the sidecar's CA into the staged directory.
		head = append(head, "--egress-ca", path.Join(guestMount, egress.CAFile))
	}
	if len(b.HomeFiles) > 0 {
		// Launch writes them into the staged directory; bottle guest
		// copies them into HOME once it is the agent's user.
		head = append(head, "--home-seed", path.Join(guestMount, backends.HomeSeedDir))
	}
	args = append(head, args[1:]...)
	s.exec = append(append(s.exec, "--", guestBin), args...)
	return s, nil
}

// agentHome is the agent's HOME in the guest, a private tmpfs, as in the
// docker backend.
const agentHome = "/home/bottle"

// lockdown is what bottle guest does before the agent runs in the
// microVM: smolvm shares only directories (virtiofs; src/data/storage.rs:98
// at v1.8.1 refuses a file), so the protected paths cannot be mounts of
// their own as in the docker backend, and its workload runs with every
// capability (crates/smolvm-agent/src/oci.rs:505-514 at v1.8.1), which
// would let the agent undo any mount. So bottle guest binds the protected
// paths read-only in a mount namespace of the agent's own, remounts the
// profile's mounts nosuid and nodev, and drops every capability and sets
// no_new_privs before it runs the agent. Missing protected paths get their
// placeholders on the host first (backends.Protect), where the guest sees
// them through the share.
func lockdown(b *backends.Bottle) (bottleguest.Lockdown, error) {
	ops, err := backends.Protect(b.Plan, b.State)
	if err != nil {
		return bottleguest.Lockdown{}, err
	}
	// The agent runs as the invoking user's uid and gid, as in docker,
	// with a private HOME; uid 0 would pass the permission checks that
	// guard /proc/sys, /sys and the guest's disks (closed by DropCaps too).
	l := bottleguest.Lockdown{DropCaps: true, User: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), Home: agentHome}
	for _, m := range b.Plan.Mounts {
		l.NoSuid = append(l.NoSuid, m.Target)
	}
	for _, op := range ops {
		l.Binds = append(l.Binds, bottleguest.Bind{Path: op.Target, ReadOnly: op.ReadOnly})
	}
	return l, nil
}

// Launch starts the host sidecars, creates and boots the microVM, runs the
// agent in it attached to stdio and tears everything down again.
func (s *Backend) Launch(ctx context.Context, b *backends.Bottle, stdio backends.Stdio) (code int, err error) {
	cli, err := s.cli()
	if err != nil {
		return -1, err
	}
	if v := os.Getenv(envTestPause); v != "" && !slices.Contains(steps, v) {
		return -1, fmt.Errorf("%s=%q names no launch step (%s)", envTestPause, v, strings.Join(steps, ", "))
	}
	g, err := guestBinary(b.Executable)
	if err != nil {
		return -1, err
	}
	p := b.Plan
	td := &backends.Teardown{}
	defer func() {
		if terr := td.Run(); terr != nil {
			err = errors.Join(err, fmt.Errorf("tear down (run bottle cleanup to finish): %w", terr))
		}
	}()

	// Render and write everything first, so that a bad plan starts nothing.
	stage := filepath.Join(b.State.Dir, guestStageDir)
	mount := guestDir
	smolfilePath := filepath.Join(b.State.Dir, smolfileName)
	lock, err := lockdown(b)
	if err != nil {
		return -1, err
	}
	archive, err := s.imageArchive(ctx, p.Backend.Image, b.Progress)
	if err != nil {
		return -1, err
	}
	spec, err := buildSpec(b, stage, mount, smolfilePath, archive, stdio.TTY, lock)
	if err != nil {
		return -1, err
	}
	cfg, err := srt.Render(p, b.State.Dir, 0)
	if err != nil {
		return -1, err
	}
	// The dead man's switch: the sidecars stop when this process dies.
	cfg.Controller = filepath.Join(b.State.Dir, backends.LockFile)
	cfgPath := filepath.Join(b.State.Dir, sidecarConfigFile)
	if err := srt.WriteConfig(cfgPath, cfg); err != nil {
		return -1, err
	}
	if err := b.State.WriteFile(smolfileName, spec.smolfile); err != nil {
		return -1, err
	}
	if err := stageGuest(g.path, stage); err != nil {
		return -1, err
	}
	if len(b.HomeFiles) > 0 {
		if err := backends.WriteHomeSeed(filepath.Join(stage, backends.HomeSeedDir), b.HomeFiles, false); err != nil {
			return -1, err
		}
	}

	if err := pause(ctx, b, "sidecars"); err != nil {
		return -1, err
	}
	var names []string
	for _, sc := range p.Sidecars {
		names = append(names, sc.Name)
	}
	fmt.Fprintf(b.Progress, "bottle: starting the sidecars on the host (%s)\n", strings.Join(names, ", "))
	h, err := srt.Launch(ctx, srt.LaunchOptions{Executable: b.Executable, ConfigPath: cfgPath, StateDir: b.State.Dir, ReadyTimeout: backends.ReadyTimeout()})
	if err != nil {
		return -1, err
	}
	td.Add(layerSidecars, func(context.Context) error { return h.Stop(sidecarGrace) })
	if egress.Intercepts(p) {
		// The sidecar published its CA next to its socket in the state
		// directory; the guest finds it in the staged directory.
		ca, err := os.ReadFile(filepath.Join(b.State.Dir, egress.CAFile))
		if err != nil {
			return -1, fmt.Errorf("the egress sidecar's CA: %w", err)
		}
		if err := os.WriteFile(filepath.Join(stage, egress.CAFile), ca, 0o644); err != nil {
			return -1, fmt.Errorf("stage the egress CA: %w", err)
		}
	}
	// smolvm publishes a mounted socket in the guest with mode 0777
	// (crates/smolvm-agent/src/publish_socket.rs:207-211@v1.8.1) and dials
	// the host socket once per guest connection (lines 286-291), so the
	// agent can connect too: the control server serves only the first
	// connection, bottle guest's, made before the agent exists. A close on
	// the host reaches bottle guest as EOF (the relay's shutdown, lines
	// 371-379), which is its dead man's switch.
	ctl, err := bottleguest.ListenControl(spec.control, spec.secrets)
	if err != nil {
		return -1, err
	}
	td.Add(layerSidecars, func(context.Context) error {
		if n := ctl.Refused(); n > 0 {
			fmt.Fprintf(b.Progress, "bottle: refused %d connection(s) to the control socket in the microVM: only bottle guest may use it\n", n)
		}
		return ctl.Close()
	})

	if err := pause(ctx, b, "create"); err != nil {
		return -1, err
	}
	m := &machine{s: s, name: spec.name, progress: b.Progress}
	td.Add(layerMachine, m.remove)
	fmt.Fprintf(b.Progress, "bottle: creating the microVM %s from %s, with no network device\n", spec.name, p.Backend.Image)
	if _, err := s.runner().Output(ctx, backends.Cmd{Path: cli, Args: spec.create}); err != nil {
		return -1, fmt.Errorf("create the microVM %s: %w", spec.name, err)
	}

	if err := pause(ctx, b, "start"); err != nil {
		return -1, err
	}
	m.started = true
	// smolvm pulls the image on the first boot: show its progress.
	start := backends.Cmd{Path: cli, Args: []string{"machine", "start", "--name", spec.name}}
	startCode, err := s.runner().Attach(ctx, start, backends.Stdio{Stdin: strings.NewReader(""), Stdout: b.Progress, Stderr: b.Progress})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil && startCode != 0 {
		err = fmt.Errorf("smolvm exited with %d", startCode)
	}
	if err != nil {
		return -1, fmt.Errorf("start the microVM %s: %w", spec.name, err)
	}

	if err := pause(ctx, b, "exec"); err != nil {
		return -1, err
	}
	return s.runAgent(ctx, cli, spec, ctl, stdio, b.Progress)
}

// runAgent runs smolvm's exec of bottle guest and returns the agent's exit
// code, which bottle guest reports over the control channel.
//
// smolvm's exec passes no signal on to the guest, so a stop (ctx ends)
// goes to the agent over the control channel instead: the signal bottle
// received, else SIGTERM. If the agent has not exited stopGrace later,
// smolvm's exec is killed, and the teardown stops the machine under the
// agent. Without a terminal, smolvm runs in a process group of its own,
// so a Ctrl-C at the terminal reaches bottle (which passes it on) and not
// smolvm (which would die of it). With a terminal smolvm must stay in the
// foreground to read it; the terminal is in raw mode then, and Ctrl-C is
// a key that reaches the agent.
func (s *Backend) runAgent(ctx context.Context, cli string, spec *launchSpec, ctl *bottleguest.ControlServer, stdio backends.Stdio, progress io.Writer) (int, error) {
	execCtx, killExec := context.WithCancel(context.WithoutCancel(ctx))
	defer killExec()
	ended := make(chan struct{})
	defer close(ended)
	// stop passes the stop on to the agent, once, and notes when: from
	// the watcher below, or after smolvm's exec ended if that came first.
	var (
		stopOnce sync.Once
		stopAt   time.Time
		stopSig  syscall.Signal
	)
	stop := func() {
		stopOnce.Do(func() {
			stopAt, stopSig = time.Now(), backends.StopSignal(ctx)
			if err := ctl.Signal(stopSig); err != nil {
				fmt.Fprintf(progress, "bottle: could not pass %v to the agent: %v\n", stopSig, err)
			}
		})
	}
	go func() {
		select {
		case <-ended:
			return
		case <-ctx.Done():
		}
		stop()
		select {
		case <-ended:
		case <-time.After(stopGrace):
			fmt.Fprintf(progress, "bottle: the agent did not exit %v after %v; stopping the microVM\n", stopGrace, stopSig)
			killExec()
		}
	}()
	code, err := s.runner().Attach(execCtx, backends.Cmd{Path: cli, Args: spec.exec, OwnGroup: !stdio.TTY, StopSignal: syscall.SIGKILL}, stdio)
	if err != nil {
		return -1, fmt.Errorf("run the agent: %w", err)
	}
	// The agent's exit code comes over the control channel, soon after
	// smolvm's exec ends. During a stop smolvm's exec may have died of the
	// same signal (with a terminal it shares bottle's process group), and
	// may have died of it before bottle's own signal handling ended ctx,
	// while the agent still runs in the machine: once the stop is under
	// way, now or while bottle waits, the agent gets its grace.
	deadline := time.Now().Add(exitCodeWait)
	for {
		stopping := ctx.Err() != nil
		if stopping {
			stop()
			if d := stopAt.Add(stopGrace); d.After(deadline) {
				deadline = d
			}
		}
		waitCtx, cancel := context.WithDeadline(context.Background(), deadline)
		unwake := func() bool { return false }
		if !stopping {
			unwake = context.AfterFunc(ctx, cancel)
		}
		agent, ok := ctl.ExitCode(waitCtx)
		unwake()
		cancel()
		if ok {
			// After a stop too: the agent exited with a code of its own.
			return agent, nil
		}
		if stopping || ctx.Err() == nil {
			break
		}
		// Woken by a stop that began while bottle waited.
	}
	// bottle guest reported nothing: it never ran (smolvm's own failure,
	// whose code this is), or smolvm died under it.
	if code < 0 {
		err = errors.New("smolvm's exec was killed before the agent's exit code came back")
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return -1, err
	}
	if ctx.Err() != nil {
		return code, ctx.Err()
	}
	return code, nil
}

// pause implements BOTTLE_SMOL_TEST_PAUSE: before step, it marks the
// state directory and waits until ctx ends.
func pause(ctx context.Context, b *backends.Bottle, step string) error {
	if os.Getenv(envTestPause) != step {
		return nil
	}
	if err := b.State.WriteFile(pausedFile, []byte(step+"\n")); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// stageGuest copies the guest binary into dir, the only thing in it, so
// that the guest's read-only share holds neither the state directory nor
// the host's own copy of bottle.
func stageGuest(src, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("stage the guest binary: %w", err)
	}
	// The directory's mode despite the umask: the agent may run as any
	// user in the guest.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("stage the guest binary: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("stage the guest binary: %w", err)
	}
	defer in.Close()
	dst := filepath.Join(dir, guestBinaryName)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("stage the guest binary: %w", err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(0o755)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stage the guest binary %s: %w", src, err)
	}
	return nil
}

// machine is the bottle's microVM, for the teardown.
type machine struct {
	s        *Backend
	name     string
	progress io.Writer
	// started is set once `machine start` was run.
	started bool
}

// remove stops the machine if it was started and deletes it; a machine
// that does not exist is no error.
func (m *machine) remove(ctx context.Context) error {
	fmt.Fprintf(m.progress, "bottle: removing the microVM %s\n", m.name)
	return m.s.removeMachine(ctx, m.name, m.started, m.progress)
}

// removeMachine runs `machine stop` (when stop is set) and `machine delete
// -f`. delete stops a running machine itself, so a failed stop is only
// reported (to warn) and the delete decides.
func (s *Backend) removeMachine(ctx context.Context, name string, stop bool, warn io.Writer) error {
	if stop {
		if _, err := s.out(ctx, "machine", "stop", "--name", name); err != nil && !notFound(err) {
			fmt.Fprintf(warn, "bottle: stop the microVM %s: %v; deleting it anyway\n", name, firstLine(err.Error()))
		}
	}
	if _, err := s.out(ctx, "machine", "delete", "-f", "--name", name); err != nil && !notFound(err) {
		return fmt.Errorf("delete the microVM %s: %w", name, err)
	}
	return nil
}

// Configure puts every sidecar's socket in the bottle's state directory on
// the host, from where smolvm's --mount-socket brings it into the guest at
// sidecars.SandboxSocketDir.
// It refuses mounts over the guest's socket directory or bottle's binary.
func (s *Backend) Configure(p *plan.Plan) error {
	if err := sidecars.CheckReserved(p, guestSocketDir, guestDir); err != nil {
		return err
	}
	return sidecars.Configure(p, p.StateDir)
}

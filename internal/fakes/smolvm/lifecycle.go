//go:build linux

package smolvm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// kv is one environment variable, as smolvm passes them around
// (Vec<(String, String)>).
type kv struct{ k, v string }

// parseEnvSpec is parse_env_spec (src/util.rs:75-99@v1.8.1): "K=V" is kept
// when K is not empty; a bare "K" forwards this process's value of K, if
// set; anything else is dropped.
func (e *env) parseEnvSpec(spec string) (kv, bool) {
	if k, v, ok := strings.Cut(spec, "="); ok {
		return kv{k, v}, k != ""
	}
	if spec == "" {
		return kv{}, false
	}
	v, ok := e.lookupEnv(spec)
	return kv{spec, v}, ok
}

// parseEnvList is parse_env_list (src/util.rs:101-106@v1.8.1).
func (e *env) parseEnvList(specs []string) []kv {
	var out []kv
	for _, s := range specs {
		if p, ok := e.parseEnvSpec(s); ok {
			out = append(out, p)
		}
	}
	return out
}

// applyOverride is apply_env_override (src/cli/vm_common.rs:369-372@v1.8.1).
func applyOverride(env []kv, p kv) []kv {
	env = slicesDeleteFunc(env, func(x kv) bool { return x.k == p.k })
	return append(env, p)
}

func slicesDeleteFunc(env []kv, del func(kv) bool) []kv {
	out := env[:0:0]
	for _, x := range env {
		if !del(x) {
			out = append(out, x)
		}
	}
	return out
}

// mergeOverrides is merge_env_overrides (src/cli/vm_common.rs:358-367@v1.8.1).
func mergeOverrides(base, overrides []kv) []kv {
	env := append([]kv(nil), base...)
	for _, p := range overrides {
		env = applyOverride(env, p)
	}
	return env
}

// runtimeDefaults is resolve_image_runtime_defaults' env
// (src/cli/vm_common.rs:328-356@v1.8.1): the image's Env as the baseline
// (each spec through parse_env_spec), env layered on top by key.
func (e *env) runtimeDefaults(imageEnv []string, env []kv) []kv {
	var resolved []kv
	for _, spec := range imageEnv {
		if p, ok := e.parseEnvSpec(spec); ok {
			resolved = applyOverride(resolved, p)
		}
	}
	return mergeOverrides(resolved, env)
}

// mergeImageEnv is the agent's merge_image_env
// (crates/smolvm-agent/src/main.rs:3283-3300@v1.8.1): image entries whose
// key the request does not set, then the request.
func mergeImageEnv(imageEnv []string, req []kv) []kv {
	keys := map[string]bool{}
	for _, p := range req {
		keys[p.k] = true
	}
	var out []kv
	for _, spec := range imageEnv {
		if k, v, ok := strings.Cut(spec, "="); ok && !keys[k] {
			out = append(out, kv{k, v})
		}
	}
	return append(out, req...)
}

func hasKey(env []kv, k string) bool {
	for _, p := range env {
		if p.k == k {
			return true
		}
	}
	return false
}

// defaultContainerPath is DEFAULT_CONTAINER_PATH
// (crates/smolvm-agent/src/crun.rs:12-17@v1.8.1), also the first entry of
// every OCI spec's env (crates/smolvm-agent/src/oci.rs:494-498@v1.8.1).
const defaultContainerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environ renders env as a process environment the way crun builds one —
// clearenv, then putenv of each entry in order, so a later entry of a key
// replaces an earlier one — and then sets HOME from the guest's
// /etc/passwd for root when it is still unset (crun 1.14.4
// src/libcrun/container.c:3253-3282 for exec, :1143-1160 for the
// container process).
func environ(env []kv) []string {
	idx := map[string]int{}
	var out []string
	for _, p := range env {
		if i, ok := idx[p.k]; ok {
			out[i] = p.k + "=" + p.v
			continue
		}
		idx[p.k] = len(out)
		out = append(out, p.k+"="+p.v)
	}
	if _, ok := idx["HOME"]; !ok {
		out = append(out, "HOME="+rootHome())
	}
	return out
}

// rootHome is uid 0's home directory in the guest view's /etc/passwd,
// which the stand-in's guest view shares with the host.
func rootHome() string {
	b, err := os.ReadFile("/etc/passwd")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 7 && f[2] == "0" {
				return f[5]
			}
		}
	}
	return "/"
}

// secretRefRecord is smolvm_protocol::SecretRef as the record keeps it:
// only the reference, never the value.
type secretRefRecord struct {
	FromEnv  *string `json:"from_env,omitempty"`
	FromFile *string `json:"from_file,omitempty"`
}

// parseCLISecretRefs is parse_cli_secret_refs
// (src/cli/machine.rs:213-252@v1.8.1) for --secret-env GUEST=HOST_VAR and
// --secret-file GUEST=/abs/path. The error is smolvm's message.
func parseCLISecretRefs(secretEnv, secretFile []string) (map[string]secretRefRecord, error) {
	out := map[string]secretRefRecord{}
	add := func(flag, spec string, file bool) error {
		key, value, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("config operation failed: %s: expected KEY=VALUE, got '%s'", flag, spec)
		}
		if key == "" {
			return fmt.Errorf("config operation failed: %s: empty secret name in '%s'", flag, spec)
		}
		r := secretRefRecord{FromEnv: &value}
		if file {
			r = secretRefRecord{FromFile: &value}
			// validate_ref, src/secrets.rs:258-292@v1.8.1, with
			// SecretRefError's text (src/secrets.rs:224-249).
			if !strings.HasPrefix(value, "/") {
				return fmt.Errorf("config operation failed: %s: secret '%s': from_file path '%s' is relative; absolute paths are required", flag, key, value)
			}
		}
		if _, dup := out[key]; dup {
			return fmt.Errorf("config operation failed: %s: secret '%s' specified more than once", flag, key)
		}
		out[key] = r
		return nil
	}
	for _, s := range secretEnv {
		if err := add("--secret-env", s, false); err != nil {
			return nil, err
		}
	}
	for _, s := range secretFile {
		if err := add("--secret-file", s, true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxFromFileBytes is MAX_FROM_FILE_BYTES (src/secrets.rs:40@v1.8.1).
const maxFromFileBytes = 1 << 20

// resolveSecrets is resolve_refs_to_env (src/secrets.rs:468-477@v1.8.1):
// in name order (a BTreeMap), each reference resolved on the host — a
// host variable's value, or a file's content (opened O_NOFOLLOW, at most
// 1 MiB, trailing CR/LF trimmed; src/secrets.rs:100-141, 402-443). A
// failure is "resolve secret 'NAME'" with the failure's short name
// (src/secrets.rs:333-340, 446-453) in smolvm's Config error form.
func (e *env) resolveSecrets(refs map[string]secretRefRecord) ([]kv, error) {
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []kv
	for _, n := range names {
		r := refs[n]
		fail := func(kind string) error {
			return fmt.Errorf("config operation failed: resolve secret '%s': %s", n, kind)
		}
		switch {
		case r.FromEnv != nil:
			v, ok := e.lookupEnv(*r.FromEnv)
			if !ok {
				return nil, fail("env_unset")
			}
			out = append(out, kv{n, v})
		case r.FromFile != nil:
			fd, err := unix.Open(*r.FromFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fail("file_read_failed")
			}
			f := os.NewFile(uintptr(fd), *r.FromFile)
			b, err := io.ReadAll(io.LimitReader(f, maxFromFileBytes+1))
			f.Close()
			if err != nil {
				return nil, fail("file_read_failed")
			}
			if len(b) > maxFromFileBytes {
				return nil, fail("file_too_large")
			}
			out = append(out, kv{n, strings.TrimRight(string(b), "\r\n")})
		default:
			return nil, fail("internal")
		}
	}
	return out, nil
}

// recordEnvWithSecrets is record_env_with_secrets
// (src/cli/vm_common.rs:497-507@v1.8.1): the machine's env, then its
// secret references resolved now.
func (e *env) recordEnvWithSecrets(m *machineRecord) ([]kv, error) {
	env := pairs(m.Env)
	sec, err := e.resolveSecrets(m.SecretRefs)
	if err != nil {
		return nil, err
	}
	return append(env, sec...), nil
}

// pairs splits stored "K=V" strings.
func pairs(specs []string) []kv {
	out := make([]kv, 0, len(specs))
	for _, s := range specs {
		k, v, _ := strings.Cut(s, "=")
		out = append(out, kv{k, v})
	}
	return out
}

func volumesOf(m *machineRecord) []volumeSpec {
	var out []volumeSpec
	for _, s := range m.Mounts {
		rest, ro := s, false
		if head, ok := strings.CutSuffix(s, ":ro"); ok {
			rest, ro = head, true
		}
		host, guest, _ := cutLast(rest, ":")
		out = append(out, volumeSpec{Host: host, Guest: guest, ReadOnly: ro})
	}
	return out
}

func socketsOf(m *machineRecord) []socketSpec {
	var out []socketSpec
	for _, s := range m.MountSockets {
		host, guest, _ := strings.Cut(s, ":")
		out = append(out, socketSpec{Host: host, Guest: guest})
	}
	return out
}

// actualState is VmRecord::actual_state (src/config.rs:777-787@v1.8.1): a
// machine recorded as running whose process (here: the anchor) is gone
// is stopped.
func actualState(m *machineRecord) string {
	if m.State == "running" && !anchorAlive(m) {
		return "stopped"
	}
	return m.State
}

func (e *env) needRoot() bool {
	if os.Geteuid() != 0 {
		fmt.Fprintln(e.stderr, needRootMsg)
		return true
	}
	return false
}

// imageConfigOf returns what the stand-in knows of m's image config: the
// one recovered from a local archive. A registry image's config is never
// known (nothing is pulled), nor is a rootfs directory's (smolvm has none
// either: read_packed_image_config defaults to empty,
// crates/smolvm-agent/src/storage.rs:1296-1299@v1.8.1).
func imageConfigOf(m *machineRecord) *imageConfig {
	if m.ImageConfig != nil {
		return m.ImageConfig
	}
	return &imageConfig{}
}

func (e *env) start(p *parsed, st *store) int {
	name := nameOrDefault(p)
	m, code := e.lookup(st, name)
	if m == nil {
		return code
	}
	// src/cli/vm_common.rs:1245-1250@v1.8.1.
	if actualState(m) == "running" {
		fmt.Fprintf(e.stdout, "Machine '%s' already running (PID: %d)\n", name, fakePID)
		return exitOK
	}
	if e.needRoot() {
		return exitFake
	}
	// src/cli/vm_common.rs:1339-1349@v1.8.1.
	info := ""
	if len(m.Mounts) > 0 {
		info = fmt.Sprintf(" with %d mount(s)", len(m.Mounts))
	}
	if len(m.Ports) > 0 {
		info += fmt.Sprintf(" and %d port mapping(s)", len(m.Ports))
	}
	fmt.Fprintf(e.stderr, "Starting machine '%s'%s...\n", name, info)

	if m.Image == nil && len(m.Entrypoint)+len(m.Cmd) > 0 {
		fmt.Fprintln(e.stderr, "fake smolvm: a machine without an image runs its command in the agent's own root (bare VM, src/cli/vm_common.rs:1551-1574@v1.8.1); this stand-in does not emulate that")
		return exitFake
	}
	if m.Image != nil && !m.InitCompleted && !isLocalRef(*m.Image) && classifyImage(*m.Image) != imageRegistry {
		// A Smolfile `image` is not resolved as a local source at create
		// (only --image is, src/cli/machine.rs:2952-2962@v1.8.1), so start
		// would hand this path to the in-guest pull
		// (src/cli/vm_common.rs:1447-1467@v1.8.1).
		fmt.Fprintf(e.stderr, "fake smolvm: image '%s' is a local path from the Smolfile, which smolvm 1.8.1 leaves to the in-guest registry pull at start; how that fails was not traced\n", *m.Image)
		return exitFake
	}

	// The env handed to guest commands: the record's env and its secrets,
	// resolved now (src/cli/vm_common.rs:1438-1442@v1.8.1).
	execEnv, err := e.recordEnvWithSecrets(m)
	if err != nil {
		return e.errorf("%v", err)
	}

	guestDir := filepath.Join(st.dir, name+".guest")
	ap := &anchorParams{Root: filepath.Join(guestDir, "root"), Scratch: filepath.Join(guestDir, "scratch"), Volumes: volumesOf(m), Sockets: socketsOf(m)}
	for _, d := range []string{ap.Root, ap.Scratch} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return e.fake(err)
		}
	}
	pid, err := startAnchor(ap)
	if err != nil {
		return e.fake(err)
	}
	m.AnchorPID, m.GuestRoot = pid, ap.Root
	m.AnchorStart, _ = procStart(pid)
	if err := st.put(m); err != nil {
		killMachine(m)
		return e.fake(err)
	}
	// A failed start stops the VM (src/cli/vm_common.rs:1481-1484,
	// 1540-1543@v1.8.1); the record keeps its state.
	failed := func(code int) int {
		_ = killMachine(m)
		m.AnchorPID, m.AnchorStart = 0, 0
		if err := st.put(m); err != nil {
			return e.fake(err)
		}
		return code
	}

	if m.Image != nil && !m.InitCompleted && !isLocalRef(*m.Image) {
		// First boot of a registry image: the guest pulls it
		// (src/cli/vm_common.rs:1456-1464@v1.8.1), printing what
		// pull_with_progress prints when no progress event arrives
		// (src/cli/mod.rs:177-227@v1.8.1). Nothing is pulled.
		fmt.Fprintf(e.stderr, "Pulling %s...\n", *m.Image)
		fmt.Fprintf(e.stderr, "Pulling image %s...", *m.Image)
		fmt.Fprintf(e.stderr, "\rPulling image %s... done.                              \n", *m.Image)
	}
	// A staged archive is flattened in the guest on its first use
	// (crates/smolvm-agent/src/storage.rs:865-901@v1.8.1): by the first
	// init command, else by the workload launch.
	flattenOp := "agent operation failed: start background CMD: agent operation failed: run container detached"
	if len(m.Init) > 0 && !m.InitCompleted {
		flattenOp = "agent operation failed: run interactive"
	}
	if m.Image != nil && strings.HasPrefix(*m.Image, localArchivePrefix) && m.ImageConfig == nil {
		archive := filepath.Join(st.dir, "image-archives", strings.TrimPrefix(*m.Image, localArchivePrefix), archiveFileName)
		cfg, err := inspectArchive(archive)
		var fe *flattenError
		switch {
		case errors.As(err, &fe):
			return failed(e.errorf("%s: %s", flattenOp, fe.msg))
		case err != nil:
			fmt.Fprintf(e.stderr, "fake smolvm: %v\n", err)
			return failed(exitFake)
		}
		m.ImageConfig = cfg
	}
	cfg := imageConfigOf(m)

	if !m.InitCompleted && len(m.Init) > 0 {
		if code := e.runInit(m, execEnv, cfg); code != exitOK {
			return failed(code)
		}
	}
	// src/cli/vm_common.rs:1509-1515@v1.8.1: marked before the workload,
	// so a failing command does not re-run init.
	if !m.InitCompleted && (len(m.Init) > 0 || m.Image != nil) {
		m.InitCompleted = true
		if err := st.put(m); err != nil {
			return failed(e.fake(err))
		}
	}

	if m.Image != nil {
		if code := e.launchWorkload(m, execEnv, cfg); code != exitOK {
			return failed(code)
		}
	}
	m.State = "running"
	if err := st.put(m); err != nil {
		return failed(e.fake(err))
	}
	fmt.Fprintf(e.stdout, "Machine '%s' running (PID: %d)\n", name, fakePID)
	return exitOK
}

// runInit runs the machine's init commands on first boot, each as `sh -c
// CMD` in the image with a terminal (src/cli/vm_common.rs:248-291,
// 311-319, 382-399@v1.8.1), joining the guest like an exec. The first to
// fail stops the start.
func (e *env) runInit(m *machineRecord, execEnv []kv, cfg *imageConfig) int {
	fmt.Fprintf(e.stdout, "Running %d init command(s)...\n", len(m.Init))
	// No image_info for a local image (vm_common.rs:1453-1455), and the
	// stand-in has none for a registry image.
	env := e.runtimeDefaults(nil, execEnv)
	if !hasKey(env, "TERM") {
		// with_term_default, src/agent/client.rs:664-669@v1.8.1.
		env = append(env, kv{"TERM", "xterm-256color"})
	}
	env, dir := execLaunch(env, cfg, m.Workdir)
	for i, c := range m.Init {
		code, failMsg, err := e.runGuestCommand(m, []string{"sh", "-c", c}, env, dir, true, true, false)
		if err != nil {
			return e.fake(err)
		}
		if strings.HasPrefix(failMsg, "setup: ") {
			return e.fake(errors.New(failMsg))
		}
		if failMsg != "" {
			fmt.Fprintln(e.stderr, failMsg)
			code = crunFailed
		}
		if code != 0 {
			// format_init_failure, src/cli/vm_common.rs:401-415@v1.8.1:
			// the interactive run's output was already shown.
			return e.errorf("agent operation failed: init: init[%d] failed (exit %d)", i, code)
		}
	}
	return exitOK
}

// crunFailed is the status `crun exec` exits with when its process fails
// before exec (the helper's error leaves main returning -1: crun 1.14.4
// src/libcrun/container.c:3660-3664 and src/crun.c main), which the agent
// reports as the command's exit code.
const crunFailed = 255

// execLaunch finishes an exec's env and working directory as the agent does
// for a process joining the machine's container: ResolvedLaunch::resolve
// merges the image config in (crates/smolvm-agent/src/main.rs:3251-3280@v1.8.1),
// then `crun exec` gets PATH when the env has none
// (crates/smolvm-agent/src/crun.rs:19-32@v1.8.1) and `--cwd` only for a
// set workdir, crun's default being "/".
func execLaunch(env []kv, cfg *imageConfig, workdir *string) ([]kv, string) {
	env = mergeImageEnv(cfg.Env, env)
	if !hasKey(env, "PATH") {
		env = append(env, kv{"PATH", defaultContainerPath})
	}
	dir := cfg.WorkingDir
	if workdir != nil {
		dir = *workdir
	}
	if dir == "" {
		dir = "/"
	}
	return env, dir
}

// launchWorkload starts the machine's persistent workload detached
// (src/workload.rs:49-73@v1.8.1, crates/smolvm-agent/src/main.rs:3386-3642@v1.8.1):
// the record's entrypoint+cmd, else the image's; env is the OCI spec's —
// PATH, TERM, HOME, then the image env under the record env and secrets
// (oci.rs:494-504, main.rs:3283-3300); workdir the record's, else the
// image's, else "/" (main.rs:3320). The agent starts it with `crun create`
// + `crun start`, whose stderr it discards (crun.rs:177-189), so a command
// crun cannot find or execute fails the start with an empty reason
// (main.rs:3565-3577, wrapped by client.rs:1694-1699 and workload.rs:69-72).
func (e *env) launchWorkload(m *machineRecord, execEnv []kv, cfg *imageConfig) int {
	const op = "agent operation failed: start background CMD: agent operation failed: run container detached"
	argv := append(append([]string(nil), m.Entrypoint...), m.Cmd...)
	if len(argv) == 0 {
		argv = append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	}
	if len(argv) == 0 {
		if !isLocalRef(*m.Image) {
			// The image's own ENTRYPOINT/CMD would run; the stand-in never
			// has a registry image's config, so it runs nothing.
			return exitOK
		}
		return e.errorf("%s: no command given and image '%s' defines no entrypoint or cmd", op, *m.Image)
	}
	env := []kv{{"PATH", defaultContainerPath}, {"TERM", "xterm-256color"}}
	launchEnv := mergeImageEnv(cfg.Env, execEnv)
	if !hasKey(launchEnv, "HOME") {
		env = append(env, kv{"HOME", rootHome()})
	}
	env = append(env, launchEnv...)
	dir := cfg.WorkingDir
	if m.Workdir != nil {
		dir = *m.Workdir
	}
	if dir == "" {
		dir = "/"
	}
	cmd, failMsg, err := startGuest(m, &guestRun{argv: argv, env: environ(env), dir: dir, detach: true})
	if err != nil {
		return e.fake(err)
	}
	if failMsg != "" {
		if !strings.HasPrefix(failMsg, "crun: ") {
			return e.fake(errors.New(failMsg))
		}
		return e.errorf("%s: crun create failed: ", op)
	}
	_ = cmd.Process.Release()
	return exitOK
}

// runGuestCommand runs argv in m's guest and waits for it. The command's
// stdio is never this process's own: the agent gives it pipes (or, with
// -t, a pty) and relays them to the client (crates/smolvm-agent/src/main.rs:3797-3889@v1.8.1),
// so when the client dies the command's stdin ends, its output has
// nowhere to go and, with -t, the pty hangs up.
//
//   - interactive: stdin is relayed, output relayed as it comes; once the
//     command exits, what is already written is drained
//     (main.rs:4387-4399, 4588-4614@v1.8.1).
//   - tty: the same through a pty whose slave is the command's
//     controlling terminal, this process's terminal (if stdin is one) in
//     raw mode meanwhile (src/agent/client.rs:1348-1354@v1.8.1).
//   - stream: stdin /dev/null, output relayed as it comes.
//   - otherwise: stdin /dev/null, output written once the command ends, as
//     the non-interactive exec returns it in one response
//     (src/cli/vm_common.rs:192-213@v1.8.1), after waiting up to 5 s for
//     the pipes to drain (crates/smolvm-agent/src/process.rs:90-92,
//     290-316@v1.8.1).
//
// The non-interactive kinds kill the command when this process dies: the
// agent kills the command when the client disconnects
// (crates/smolvm-agent/src/main.rs:5373-5383@v1.8.1).
func (e *env) runGuestCommand(m *machineRecord, argv []string, env []kv, dir string, interactive, tty, stream bool) (int, string, error) {
	r := &guestRun{argv: argv, env: environ(env), dir: dir, dieWithParent: !interactive && !tty}
	var closeAfterStart []*os.File
	var relays []func(grace time.Duration)
	outPipe := func(w io.Writer) (*os.File, error) {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		closeAfterStart = append(closeAfterStart, pw)
		done := make(chan struct{})
		go func() { io.Copy(w, pr); close(done) }()
		relays = append(relays, func(grace time.Duration) {
			pr.SetReadDeadline(time.Now().Add(grace))
			<-done
			pr.Close()
		})
		return pw, nil
	}
	var out, errb bytes.Buffer
	var err error
	switch {
	case tty:
		master, slave, perr := openPty()
		if perr != nil {
			return 0, "", perr
		}
		defer master.Close()
		if term.IsTerminal(int(os.Stdin.Fd())) && e.stdin == os.Stdin {
			if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
				defer term.Restore(int(os.Stdin.Fd()), st)
			}
		}
		r.stdin, r.stdout, r.stderr, r.ctty = slave, slave, slave, true
		closeAfterStart = append(closeAfterStart, slave)
		go func() {
			io.Copy(master, e.stdin)
			// At the end of stdin the agent types VEOF twice
			// (crates/smolvm-agent/src/main.rs:4729-4748@v1.8.1).
			master.Write([]byte{4, 4})
		}()
		done := make(chan struct{})
		go func() { io.Copy(e.stdout, master); close(done) }()
		relays = append(relays, func(grace time.Duration) {
			master.SetReadDeadline(time.Now().Add(grace))
			<-done
		})
	case interactive:
		pr, pw, perr := os.Pipe()
		if perr != nil {
			return 0, "", perr
		}
		r.stdin = pr
		closeAfterStart = append(closeAfterStart, pr)
		go func() { io.Copy(pw, e.stdin); pw.Close() }()
		if r.stdout, err = outPipe(e.stdout); err == nil {
			r.stderr, err = outPipe(e.stderr)
		}
	case stream:
		if r.stdout, err = outPipe(e.stdout); err == nil {
			r.stderr, err = outPipe(e.stderr)
		}
	default:
		if r.stdout, err = outPipe(&out); err == nil {
			r.stderr, err = outPipe(&errb)
		}
	}
	if err != nil {
		return 0, "", err
	}
	cmd, failMsg, err := startGuest(m, r)
	for _, f := range closeAfterStart {
		f.Close()
	}
	grace := 20 * time.Millisecond
	if !interactive && !tty && !stream {
		grace = 5 * time.Second
	}
	if err != nil || failMsg != "" {
		for _, drain := range relays {
			drain(grace)
		}
		return 0, strings.TrimPrefix(failMsg, "crun: "), err
	}
	state, err := cmd.Process.Wait()
	for _, drain := range relays {
		drain(grace)
	}
	if err != nil {
		return 0, "", err
	}
	code := state.ExitCode()
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		// 128+N for signal N, crates/smolvm-agent/src/process.rs:66-82@v1.8.1.
		code = 128 + int(ws.Signal())
	}
	if !interactive && !tty && !stream {
		e.stdout.Write(out.Bytes())
		e.stderr.Write(errb.Bytes())
	}
	return code, "", nil
}

func (e *env) stop(p *parsed, st *store) int {
	name := nameOrDefault(p)
	m, code := e.lookup(st, name)
	if m == nil {
		return code
	}
	// src/cli/vm_common.rs:1883-1901@v1.8.1.
	if s := actualState(m); s != "running" {
		_ = killMachine(m)
		fmt.Fprintf(e.stdout, "Machine '%s' is not running (state: %s)\n", name, s)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "Stopping machine '%s'...\n", name)
	if err := killMachine(m); err != nil {
		return e.fake(err)
	}
	m.State, m.AnchorPID, m.AnchorStart = "stopped", 0, 0
	if err := st.put(m); err != nil {
		return e.fake(err)
	}
	fmt.Fprintf(e.stdout, "Stopped machine: %s\n", name)
	return exitOK
}

func (e *env) delete(p *parsed, st *store) int {
	name, _ := p.last("name")
	m, code := e.lookup(st, name)
	if m == nil {
		return code
	}
	// src/cli/vm_common.rs:2209-2221@v1.8.1.
	if actualState(m) == "running" {
		fmt.Fprintf(e.stdout, "Stopping machine '%s'...\n", name)
	}
	if err := killMachine(m); err != nil {
		return e.fake(err)
	}
	if m.State == "running" {
		m.State, m.AnchorPID, m.AnchorStart = "stopped", 0, 0
		if err := st.put(m); err != nil {
			return e.fake(err)
		}
	}
	// src/cli/vm_common.rs:2244-2257@v1.8.1.
	if !p.has("force") && !p.has("cascade") {
		fmt.Fprintf(e.stderr, "Delete machine '%s'? [y/N] ", name)
		line, _ := readLine(e.stdin)
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stdout, "Cancelled")
			return exitOK
		}
	}
	_ = os.RemoveAll(filepath.Join(st.dir, name+".guest"))
	if err := os.Remove(st.path(name)); err != nil {
		return e.fake(fmt.Errorf("remove machine state: %w", err))
	}
	fmt.Fprintf(e.stdout, "Deleted machine: %s\n", name)
	return exitOK
}

// readLine reads one line without buffering past it.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

func (e *env) exec(p *parsed, st *store) int {
	name := nameOrDefault(p)
	m, err := st.get(name)
	if err != nil {
		return e.fake(err)
	}
	// ensure_running_and_connect, src/cli/vm_common.rs:66-130@v1.8.1.
	switch {
	case m == nil && p.has("name"):
		return e.errorf("vm not found: %s", name)
	case m == nil:
		return e.errorf("agent operation failed: connect: machine '%s' not found", name)
	case actualState(m) != "running":
		hint := "smolvm machine start"
		if p.has("name") {
			hint += " --name " + name
		}
		return e.errorf("agent operation failed: connect: machine '%s' is not running. Use '%s' first.", name, hint)
	}
	// The exec env (src/cli/machine.rs:2512-2571@v1.8.1): the record's env
	// and its secrets resolved now, then this exec's --secret-env and
	// --secret-file resolved on the host, then -e on top by key.
	cliEnv := e.parseEnvList(p.values["env"])
	recordEnv, err := e.recordEnvWithSecrets(m)
	if err != nil {
		return e.errorf("%v", err)
	}
	refs, err := parseCLISecretRefs(p.values["secret-env"], p.values["secret-file"])
	if err != nil {
		return e.errorf("%v", err)
	}
	secrets, err := e.resolveSecrets(refs)
	if err != nil {
		return e.errorf("%v", err)
	}
	recordEnv = append(recordEnv, secrets...)
	if m.Image == nil {
		fmt.Fprintln(e.stderr, "fake smolvm: exec on a machine without an image runs in the agent's own root (bare VM, src/cli/machine.rs:2622-2665@v1.8.1); this stand-in does not emulate that")
		return exitFake
	}
	if e.needRoot() {
		return exitFake
	}
	cfg := imageConfigOf(m)
	// resolve_image_runtime_defaults with the host-side image query
	// (src/cli/machine.rs:2554-2571@v1.8.1); the workdir is -w, else the
	// record's, else the image's.
	env := e.runtimeDefaults(nil, mergeOverrides(recordEnv, cliEnv))
	workdir := m.Workdir
	if w, ok := p.last("workdir"); ok {
		workdir = &w
	}
	tty := p.has("tty")
	if tty && !hasKey(env, "TERM") {
		// with_term_default, src/agent/client.rs:664-669@v1.8.1.
		env = append(env, kv{"TERM", "xterm-256color"})
	}
	env, dir := execLaunch(env, cfg, workdir)

	if p.has("detach") {
		// run_background: `crun exec --detach`, printing the process's pid
		// (src/cli/machine.rs:2576-2586@v1.8.1,
		// crates/smolvm-agent/src/main.rs:5162-5244@v1.8.1).
		cmd, failMsg, err := startGuest(m, &guestRun{argv: p.command, env: environ(env), dir: dir, detach: true})
		if err != nil {
			return e.fake(err)
		}
		if failMsg != "" {
			fmt.Fprintf(e.stderr, "fake smolvm: %s (what smolvm reports for a detached exec that cannot start was not traced)\n", failMsg)
			return exitFake
		}
		fmt.Fprintln(e.stdout, cmd.Process.Pid)
		_ = cmd.Process.Release()
		return exitOK
	}
	code, failMsg, err := e.runGuestCommand(m, p.command, env, dir, p.has("interactive"), tty, p.has("stream"))
	if err != nil {
		return e.fake(err)
	}
	if failMsg != "" {
		if strings.HasPrefix(failMsg, "setup: ") {
			return e.fake(errors.New(failMsg))
		}
		// crun prints why on the process's stderr and exits 255.
		fmt.Fprintln(e.stderr, failMsg)
		return crunFailed
	}
	return code
}

// openPty opens a pty whose master has working read deadlines, which the
// drain after the command's exit needs: pty.Open's master is in blocking
// mode (its Fd call puts it there), where SetReadDeadline reports success
// and a read still waits until every holder of the slave is gone, such as
// a background child of the command that outlived it.
func openPty() (master, slave *os.File, err error) {
	m, slave, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		slave.Close()
		return nil, nil, fmt.Errorf("open a pty: %w", err)
	}
	// os.NewFile registers a non-blocking descriptor with the poller.
	return os.NewFile(uintptr(fd), "/dev/ptmx"), slave, nil
}

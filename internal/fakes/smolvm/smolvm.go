// Package smolvm is a stand-in for the smolvm command line, for tests only:
// bottle's testscript suite registers Main as "smolvm" on machines that
// cannot run microVMs (no KVM, no smolvm).
//
// It follows smolvm 1.8.0 (github.com/smol-machines/smolvm, tag v1.8.0):
// the clap definitions in src/cli/machine.rs and src/main.rs, the Smolfile
// schema in crates/smolvm-smolfile, name rules in src/data/mod.rs, volume
// rules in src/data/storage.rs, and the output of src/cli/vm_common.rs. It
// implements `smolvm --version` and the machine subcommands create, start,
// stop, delete (rm), exec, ls (list) and status; anything else exits 3
// saying the stand-in does not implement it. Argument errors print clap's
// "error: ..." and exit 2; operation errors print smolvm's "Error: ..." and
// exit 1.
//
// No VM is ever started. Machines are JSON files in a state directory;
// `machine exec` runs the command on the host (see below).
//
// Environment:
//
//	FAKE_SMOLVM_STATE    directory holding machine state (created if
//	                     missing); required by every machine subcommand.
//	FAKE_SMOLVM_LOG      file to which every invocation's argv is appended,
//	                     one line each, as fakes.LogLine writes it
//	                     ("smolvm machine start --name x").
//	FAKE_SMOLVM_VERSION  version to report and emulate (default 1.8.0);
//	                     options newer than it are rejected as clap does
//	                     (--mount-socket needs 1.6.4, --label 1.8.0).
//	FAKE_SMOLVM_FAIL     comma-separated steps that fail after their
//	                     arguments are accepted, with a realistic smolvm
//	                     error and exit status 1: create, start, stop,
//	                     delete, exec, ls, status. An unknown step name
//	                     exits 3, so a typo fails loudly.
//
// `machine exec` runs its command as a host process, with the host's
// environment plus the machine's env (Smolfile and create -e) plus exec's
// -e, in the current directory (the guest workdir and -w are ignored: they
// name guest paths), with stdin, stdout and stderr passed through, and
// exits with the command's status, as smolvm exits with the guest's (128+N
// for a command killed by signal N). This lets a script
// check that bottle passes the agent's exit code on. `exec -d` starts the
// command and prints its PID without waiting.
//
// Deterministic values stand in for what only a VM has: created_at is 0
// and a running machine's pid is 4242. The text of `machine status`
// without --json is the stand-in's own.
package smolvm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/bottle-dev/bottle/internal/fakes"
)

// Version is the smolvm release this stand-in follows and reports by default.
const Version = "1.8.1"

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // smolvm's "Error: ..." status (src/main.rs:213-214 at v1.8.1)
	exitUsage = 2 // clap's status for a command-line error
	exitFake  = 3 // the stand-in itself was misused
)

// fakePID is the pid a running machine reports.
const fakePID = 4242

var failSteps = []string{"create", "delete", "exec", "ls", "start", "status", "stop"}

// Main runs the stand-in with os.Args and the process environment and
// returns its exit status.
func Main() int {
	if role := os.Getenv(roleEnv); role != "" {
		return runRole(role)
	}
	return run(os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
}

type env struct {
	getenv    func(string) string
	lookupEnv func(string) (string, bool)
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	version   [3]int
	fail      map[string]bool
}

func run(args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	if err := fakes.AppendLog(getenv("FAKE_SMOLVM_LOG"), "smolvm", args); err != nil {
		fmt.Fprintf(stderr, "fake smolvm: %v\n", err)
		return exitFake
	}
	e := &env{getenv: getenv, lookupEnv: lookupEnv, stdin: stdin, stdout: stdout, stderr: stderr, fail: map[string]bool{}}
	vs := getenv("FAKE_SMOLVM_VERSION")
	if vs == "" {
		vs = Version
	}
	v, err := parseVersion(vs)
	if err != nil {
		fmt.Fprintf(stderr, "fake smolvm: FAKE_SMOLVM_VERSION: %v\n", err)
		return exitFake
	}
	e.version = v
	for _, step := range strings.Split(getenv("FAKE_SMOLVM_FAIL"), ",") {
		step = strings.TrimSpace(step)
		if step == "" {
			continue
		}
		if !slices.Contains(failSteps, step) {
			fmt.Fprintf(stderr, "fake smolvm: FAKE_SMOLVM_FAIL names unknown step %q (known: %s)\n", step, strings.Join(failSteps, ", "))
			return exitFake
		}
		e.fail[step] = true
	}

	const topUsage = "smolvm <COMMAND>"
	if len(args) == 0 {
		fmt.Fprint(stderr, (&usageError{msg: "'smolvm' requires a subcommand but one was not provided", usage: topUsage}).Error())
		return exitUsage
	}
	switch args[0] {
	case "--version", "-V":
		fmt.Fprintf(stdout, "smolvm %d.%d.%d\n", v[0], v[1], v[2])
		return exitOK
	case "machine", "vm":
		return e.machine(args[1:])
	case "serve", "pack", "config":
		fmt.Fprintf(stderr, "fake smolvm: %q is not implemented by this stand-in\n", args[0])
		return exitFake
	}
	fmt.Fprint(stderr, (&usageError{msg: fmt.Sprintf("unrecognized subcommand '%s'", args[0]), usage: topUsage}).Error())
	return exitUsage
}

// Option sets of the emulated subcommands (smolvm 1.8.0 src/cli/machine.rs).
var (
	cpusCheck = uintCheck(8)
	memCheck  = uintCheck(32)
	gibCheck  = uintCheck(64)

	createSpec = cmdSpec{
		usage: "smolvm machine create [OPTIONS] [-- <COMMAND>...]",
		flags: []flagSpec{
			{long: "name", short: 'n', value: "NAME"},
			{long: "label", value: "KEY=VALUE", multi: true, since: [3]int{1, 8, 0}},
			{long: "image", short: 'I', value: "IMAGE", check: imageCheck},
			{long: "max-image-size", value: "SIZE", check: sizeCheck},
			{long: "cpus", value: "N", check: cpusCheck},
			{long: "mem", value: "MiB", check: memCheck},
			{long: "storage", value: "GiB", check: gibCheck},
			{long: "overlay", value: "GiB", check: gibCheck},
			{long: "volume", short: 'v', value: "HOST:GUEST[:ro]", multi: true},
			{long: "port", short: 'p', value: "HOST:GUEST", multi: true},
			{long: "net"},
			{long: "net-backend", value: "NET_BACKEND", check: oneOf("tsi", "virtio-net")},
			{long: "dns", value: "IP"},
			{long: "allow-cidr", value: "CIDR", multi: true},
			{long: "allow-host", value: "HOSTNAME", multi: true},
			{long: "outbound-localhost-only"},
			{long: "gpu"},
			{long: "gpu-vram", value: "MiB", check: memCheck},
			{long: "rosetta"},
			{long: "expose-socket", value: "GUEST_PATH[:HOST_PATH]", multi: true, since: [3]int{1, 6, 4}},
			{long: "mount-socket", value: "HOST_PATH:GUEST_PATH", multi: true, since: [3]int{1, 6, 4}},
			{long: "init", value: "COMMAND", multi: true},
			{long: "env", short: 'e', value: "KEY=VALUE", multi: true},
			{long: "workdir", short: 'w', value: "DIR"},
			{long: "ssh-agent"},
			{long: "cuda"},
			{long: "auto-graph"},
			{long: "docker-socket"},
			{long: "secret-env", value: "GUEST_VAR=HOST_VAR", multi: true},
			{long: "secret-file", value: "GUEST_VAR=PATH", multi: true},
			{long: "smolfile", short: 's', value: "PATH"},
			{long: "from", value: "PATH"},
		},
		trailing:  afterDashDash,
		conflicts: [][2]string{{"from", "image"}, {"from", "smolfile"}},
	}
	startSpec = cmdSpec{
		usage: "smolvm machine start [OPTIONS]",
		flags: []flagSpec{
			{long: "name", short: 'n', value: "NAME"},
			{long: "forkable"},
			{long: "fork-pool-size", value: "CLONES", check: uintCheck(32)},
			{long: "cuda-vram-limit-mib", value: "MIB", check: gibCheck},
			{long: "proxy", value: "URL"},
			{long: "no-proxy", value: "HOSTS"},
		},
	}
	stopSpec = cmdSpec{
		usage: "smolvm machine stop [OPTIONS]",
		flags: []flagSpec{{long: "name", short: 'n', value: "NAME"}},
	}
	deleteSpec = cmdSpec{
		usage: "smolvm machine delete [OPTIONS] --name <NAME>",
		flags: []flagSpec{
			{long: "name", short: 'n', value: "NAME"},
			{long: "force", short: 'f'},
			{long: "cascade"},
		},
		required: []string{"name"},
	}
	execSpec = cmdSpec{
		usage: "smolvm machine exec [OPTIONS] <COMMAND>...",
		flags: []flagSpec{
			{long: "name", value: "NAME"},
			{long: "workdir", short: 'w', value: "DIR"},
			{long: "env", short: 'e', value: "KEY=VALUE", multi: true},
			{long: "secret-env", value: "GUEST_VAR=HOST_VAR", multi: true},
			{long: "secret-file", value: "GUEST_VAR=PATH", multi: true},
			{long: "timeout", value: "DURATION"},
			{long: "interactive", short: 'i'},
			{long: "tty", short: 't'},
			{long: "stream"},
			{long: "detach", short: 'd'},
		},
		trailing:  varArgRequired,
		conflicts: [][2]string{{"detach", "interactive"}, {"detach", "tty"}, {"detach", "stream"}},
	}
	lsSpec = cmdSpec{
		usage: "smolvm machine ls [OPTIONS]",
		flags: []flagSpec{{long: "verbose", short: 'v'}, {long: "json"}},
	}
	statusSpec = cmdSpec{
		usage: "smolvm machine status [OPTIONS]",
		flags: []flagSpec{{long: "name", short: 'n', value: "NAME"}, {long: "json"}},
	}
)

func oneOf(values ...string) func(string) string {
	return func(s string) string {
		if slices.Contains(values, s) {
			return ""
		}
		return "[possible values: " + strings.Join(values, ", ") + "]"
	}
}

// errorf prints smolvm's error line and returns its status, as smolvm's
// main does with any error (src/main.rs:213-214 at v1.8.1).
func (e *env) errorf(format string, a ...any) int {
	fmt.Fprintf(e.stderr, "Error: "+format+"\n", a...)
	return exitError
}

func (e *env) machine(args []string) int {
	const usage = "smolvm machine <COMMAND>"
	if len(args) == 0 {
		fmt.Fprint(e.stderr, (&usageError{msg: "'smolvm machine' requires a subcommand but one was not provided", usage: usage}).Error())
		return exitUsage
	}
	var spec *cmdSpec
	var do func(*parsed, *store) int
	step := args[0]
	switch args[0] {
	case "create":
		spec, do = &createSpec, e.create
	case "start":
		spec, do = &startSpec, e.start
	case "stop":
		spec, do = &stopSpec, e.stop
	case "delete", "rm":
		spec, do, step = &deleteSpec, e.delete, "delete"
	case "exec":
		spec, do = &execSpec, e.exec
	case "ls", "list":
		spec, do, step = &lsSpec, e.ls, "ls"
	case "status":
		spec, do = &statusSpec, e.status
	case "run", "fork", "fork-release", "resize", "update", "images", "prune", "shell", "sh", "cp", "monitor", "network-test", "data-dir":
		fmt.Fprintf(e.stderr, "fake smolvm: \"machine %s\" is not implemented by this stand-in\n", args[0])
		return exitFake
	default:
		fmt.Fprint(e.stderr, (&usageError{msg: fmt.Sprintf("unrecognized subcommand '%s'", args[0]), usage: usage}).Error())
		return exitUsage
	}
	p, err := parseArgs(spec, args[1:], e.version)
	if err != nil {
		fmt.Fprint(e.stderr, err.Error())
		return exitUsage
	}
	dir := e.getenv("FAKE_SMOLVM_STATE")
	if dir == "" {
		fmt.Fprintln(e.stderr, "fake smolvm: FAKE_SMOLVM_STATE is not set; point it at a directory for machine state")
		return exitFake
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(e.stderr, "fake smolvm: create state directory: %v\n", err)
		return exitFake
	}
	if e.fail[step] {
		return e.errorf("%s", injected[step])
	}
	return do(p, &store{dir: dir})
}

// injected holds the error each step reports under FAKE_SMOLVM_FAIL, in
// the form of a real smolvm error of that step.
var injected = map[string]string{
	"create": "agent operation failed: pull image: registry request failed: connection reset by peer (injected by FAKE_SMOLVM_FAIL=create)",
	"start":  "kvm permission denied: cannot open /dev/kvm: Permission denied (injected by FAKE_SMOLVM_FAIL=start)",
	"stop":   "agent operation failed: stop: machine did not stop within the timeout (injected by FAKE_SMOLVM_FAIL=stop)",
	"delete": "storage operation failed: remove data directory: Resource busy (injected by FAKE_SMOLVM_FAIL=delete)",
	"exec":   "agent operation failed: connect: Connection refused (injected by FAKE_SMOLVM_FAIL=exec)",
	"ls":     "database operation failed: open: database is locked (injected by FAKE_SMOLVM_FAIL=ls)",
	"status": "database operation failed: open: database is locked (injected by FAKE_SMOLVM_FAIL=status)",
}

// machineRecord is a created machine as the stand-in stores it.
type machineRecord struct {
	Name         string            `json:"name"`
	State        string            `json:"state"`
	CPUs         uint8             `json:"cpus"`
	MemoryMiB    uint32            `json:"memory_mib"`
	StorageGiB   *uint64           `json:"storage_gb"`
	OverlayGiB   *uint64           `json:"overlay_gb"`
	Image        *string           `json:"image"`
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	Env          []string          `json:"env"`
	Workdir      *string           `json:"workdir"`
	Mounts       []string          `json:"mounts"`
	Ports        []string          `json:"ports"`
	MountSockets []string          `json:"mount_sockets"`
	Labels       map[string]string `json:"labels"`
	Network      bool              `json:"network"`
	Init         []string          `json:"init"`
	// SecretRefs are references only, resolved at each start and exec.
	SecretRefs map[string]secretRefRecord `json:"secret_refs"`
	// InitCompleted: the first boot's pull and init ran
	// (src/cli/vm_common.rs:1444-1521@v1.8.1).
	InitCompleted bool `json:"init_completed"`
	// ImageConfig was recovered from a local archive at its first start.
	ImageConfig *imageConfig `json:"image_config,omitempty"`
	// The running machine's anchor process (see guest.go): pid, start time
	// (to tell a reused pid) and the guest root inside its mount namespace.
	AnchorPID   int    `json:"anchor_pid,omitempty"`
	AnchorStart uint64 `json:"anchor_start,omitempty"`
	GuestRoot   string `json:"guest_root,omitempty"`
}

type store struct{ dir string }

func (s *store) path(name string) string { return filepath.Join(s.dir, name+".json") }

// get returns the machine, or nil if there is none by that name.
func (s *store) get(name string) (*machineRecord, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read machine state: %w", err)
	}
	var m machineRecord
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse machine state %s: %w", s.path(name), err)
	}
	return &m, nil
}

func (s *store) put(m *machineRecord) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode machine state: %w", err)
	}
	tmp := s.path(m.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write machine state: %w", err)
	}
	if err := os.Rename(tmp, s.path(m.Name)); err != nil {
		return fmt.Errorf("write machine state: %w", err)
	}
	return nil
}

func (s *store) list() ([]*machineRecord, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	var out []*machineRecord
	for _, de := range entries {
		name, ok := strings.CutSuffix(de.Name(), ".json")
		if !ok || de.IsDir() {
			continue
		}
		m, err := s.get(name)
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *machineRecord) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (e *env) create(p *parsed, st *store) int {
	// --max-image-size sets SMOLVM_MAX_IMAGE_BYTES for this run
	// (src/cli/machine.rs:2917-2922@v1.8.1).
	if v, ok := p.last("max-image-size"); ok {
		n, _ := parseSizeBytes(v)
		outer := e.lookupEnv
		e.lookupEnv = func(k string) (string, bool) {
			if k == "SMOLVM_MAX_IMAGE_BYTES" {
				return strconv.FormatUint(n, 10), true
			}
			return outer(k)
		}
		e.getenv = func(k string) string { v, _ := e.lookupEnv(k); return v }
	}
	if p.has("from") {
		fmt.Fprintln(e.stderr, "fake smolvm: \"machine create --from\" is not implemented by this stand-in")
		return exitFake
	}

	m := &machineRecord{State: "created", CPUs: 4, MemoryMiB: 8192}
	// --image is resolved on the host first: a local archive is staged,
	// a directory canonicalised (src/cli/machine.rs:2948-2962@v1.8.1).
	// Only --image: a Smolfile `image` is kept as written.
	var cliImage *string
	if img, ok := p.last("image"); ok {
		ref, err := e.resolveImage(img, filepath.Join(st.dir, "image-archives"))
		if err != nil {
			return e.errorf("%v", err)
		}
		cliImage = &ref
	}

	labels := map[string]string{}
	for _, l := range p.values["label"] {
		// parse_labels, src/util.rs:172-190@v1.8.1.
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return e.errorf("config operation failed: --label: expected KEY=VALUE, got '%s'", l)
		}
		if k == "" {
			return e.errorf("config operation failed: --label: label key cannot be empty (in '%s')", l)
		}
		labels[k] = v
	}
	m.Labels = labels

	var sf smolfileSchema
	if path, ok := p.last("smolfile"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return e.errorf("config operation failed: load smolfile: failed to read %s: %v", path, syscallText(err))
		}
		parsedSF, err := parseSmolfile(path, data)
		if err != nil {
			if strings.HasPrefix(err.Error(), "failed to parse") {
				return e.errorf("config operation failed: load smolfile: %v", err)
			}
			return e.errorf("%v", err)
		}
		sf = *parsedSF
	}

	var sockets []string
	seenGuest := map[string]bool{}
	for _, spec := range p.values["mount-socket"] {
		host, guest, ok := strings.Cut(spec, ":")
		switch {
		case !ok:
			return e.errorf("config operation failed: mount-socket: expected HOST_PATH:GUEST_PATH, got '%s'", spec)
		case host == "" || guest == "":
			return e.errorf("config operation failed: mount-socket: both HOST_PATH and GUEST_PATH are required in '%s'", spec)
		case strings.ContainsAny(guest, ";|"):
			return e.errorf("config operation failed: publish-socket: guest path '%s' contains an unsupported character (';' or '|')", guest)
		case !strings.HasPrefix(guest, "/"):
			return e.errorf("config operation failed: publish-socket: guest path '%s' must be absolute", guest)
		case seenGuest[guest]:
			return e.errorf("config operation failed: publish-socket: two --mount-socket entries use guest path '%s'", guest)
		}
		seenGuest[guest] = true
		sockets = append(sockets, host+":"+guest)
	}
	if n := len(sockets) + len(p.values["expose-socket"]); n > 64 {
		return e.errorf("config operation failed: publish-socket: too many published sockets (%d); max is 64", n)
	}

	// Merge as src/cli/smolfile.rs build_create_params does
	// (src/cli/smolfile.rs:133-260@v1.8.1): CLI values that differ from
	// the defaults win, lists are Smolfile then CLI; the image is --image,
	// else the Smolfile's (line 137).
	m.Image = sf.Image
	if cliImage != nil {
		m.Image = cliImage
	}
	m.Entrypoint = sf.Entrypoint
	m.Cmd = sf.Cmd
	if len(p.command) > 0 {
		m.Cmd = p.command
	}
	if sf.CPUs != nil {
		m.CPUs = *sf.CPUs
	}
	if sf.Memory != nil {
		m.MemoryMiB = *sf.Memory
	}
	if v, ok := p.last("cpus"); ok && v != "4" {
		m.CPUs = uint8(parseUintOrZero(v))
	}
	if v, ok := p.last("mem"); ok && v != "8192" {
		m.MemoryMiB = uint32(parseUintOrZero(v))
	}
	m.StorageGiB, m.OverlayGiB = sf.Storage, sf.Overlay
	if v, ok := p.last("storage"); ok {
		n := parseUintOrZero(v)
		m.StorageGiB = &n
	}
	if v, ok := p.last("overlay"); ok {
		n := parseUintOrZero(v)
		m.OverlayGiB = &n
	}
	// --net, an egress policy or a DNS server turns networking on
	// (src/cli/machine.rs:58-86, src/cli/smolfile.rs:56, 208-248@v1.8.1).
	m.Network = sf.Net != nil && *sf.Net || p.has("net") || p.has("allow-cidr") || p.has("allow-host") ||
		p.has("outbound-localhost-only") || p.has("dns") ||
		sf.Network != nil && len(sf.Network.AllowHosts)+len(sf.Network.AllowCIDRs) > 0
	volumes := sf.Volumes
	if sf.Dev != nil && len(sf.Dev.Volumes) > 0 {
		volumes = sf.Dev.Volumes
	}
	volumes = append(slices.Clone(volumes), p.values["volume"]...)
	var envSpecs []string
	for _, kv := range sf.Env {
		envSpecs = append(envSpecs, strings.TrimSpace(kv))
	}
	if sf.Dev != nil {
		for _, kv := range sf.Dev.Env {
			envSpecs = append(envSpecs, strings.TrimSpace(kv))
		}
	}
	for _, kv := range p.values["env"] {
		envSpecs = append(envSpecs, strings.TrimSpace(kv))
	}
	// parse_env_list at record time (src/cli/vm_common.rs:604-605@v1.8.1).
	for _, kv := range e.parseEnvList(envSpecs) {
		m.Env = append(m.Env, kv.k+"="+kv.v)
	}
	m.Init = sf.Init
	if sf.Dev != nil && len(sf.Dev.Init) > 0 {
		m.Init = sf.Dev.Init
	}
	m.Init = append(slices.Clone(m.Init), p.values["init"]...)
	m.Workdir = sf.Workdir
	if sf.Dev != nil && sf.Dev.Workdir != nil {
		m.Workdir = sf.Dev.Workdir
	}
	if wd, ok := p.last("workdir"); ok {
		m.Workdir = &wd
	}
	m.Ports = append(slices.Clone(sf.Ports), p.values["port"]...)
	if sf.Dev != nil && len(sf.Dev.Ports) > 0 {
		m.Ports = append(slices.Clone(sf.Dev.Ports), p.values["port"]...)
	}
	m.MountSockets = sockets
	// CLI secret references win over the Smolfile's of the same name
	// (src/cli/machine.rs:3003-3008@v1.8.1).
	cliRefs, err := parseCLISecretRefs(p.values["secret-env"], p.values["secret-file"])
	if err != nil {
		return e.errorf("%v", err)
	}
	m.SecretRefs = map[string]secretRefRecord{}
	for k, r := range sf.Secrets {
		m.SecretRefs[k] = secretRefRecord{FromEnv: r.FromEnv, FromFile: r.FromFile}
	}
	for k, r := range cliRefs {
		m.SecretRefs[k] = r
	}

	switch {
	case m.CPUs == 0:
		return e.errorf("config operation failed: validate resources: CPU count must be at least 1")
	case m.MemoryMiB < 64:
		return e.errorf("config operation failed: validate resources: memory must be at least 64 MiB (got %d MiB)", m.MemoryMiB)
	case m.StorageGiB != nil && *m.StorageGiB == 0:
		return e.errorf("config operation failed: validate resources: storage disk size must be greater than 0 GiB")
	case m.OverlayGiB != nil && *m.OverlayGiB == 0:
		return e.errorf("config operation failed: validate resources: overlay disk size must be greater than 0 GiB")
	}

	name, ok := p.last("name")
	if !ok {
		name = "vm-fake"
	}
	if msg := validateName(name); msg != "" {
		return e.errorf("config operation failed: create machine: %s", msg)
	}
	m.Name = name
	mounts, msg := parseMounts(volumes)
	if msg != "" {
		return e.errorf("%s", msg)
	}
	m.Mounts = mounts
	if msg := validateImageFetchable(m); msg != "" {
		return e.errorf("%s", msg)
	}

	existing, err := st.get(name)
	if err != nil {
		return e.fake(err)
	}
	if existing != nil {
		return e.errorf("config operation failed: create machine: machine '%s' already exists or is being created", name)
	}
	if err := st.put(m); err != nil {
		return e.fake(err)
	}
	// print_create_success, src/cli/vm_common.rs:696-721@v1.8.1.
	fmt.Fprintf(e.stdout, "Created machine: %s\n", name)
	fmt.Fprintf(e.stdout, "  CPUs: %d, Memory: %d MiB\n", m.CPUs, m.MemoryMiB)
	if len(m.Mounts) > 0 {
		fmt.Fprintf(e.stdout, "  Mounts: %d\n", len(m.Mounts))
	}
	if len(m.Ports) > 0 {
		fmt.Fprintf(e.stdout, "  Ports: %d\n", len(m.Ports))
	}
	if len(m.Init) > 0 {
		fmt.Fprintf(e.stdout, "  Init commands: %d\n", len(m.Init))
	}
	fmt.Fprintf(e.stdout, "\nUse 'smolvm machine start --name %s' to start the machine\n", name)
	fmt.Fprintf(e.stdout, "Then use 'smolvm machine exec --name %s -- <command>' to run commands\n", name)
	return exitOK
}

// validateImageFetchable is VmRecord::validate_image_fetchable
// (src/config.rs:808-872@v1.8.1), which create_vm runs on the record
// before storing it (src/cli/vm_common.rs:689-691@v1.8.1): a registry
// image needs the network, because the guest pulls it. A local reference
// (local:/local-dir:) or anything classify does not call a registry
// reference passes. plan_launch_network (src/network/launch.rs:89-110@v1.8.1)
// wants a network for --net, a published port, an allowed CIDR or an
// allowed host; the CLI and Smolfile paths already turn `net` on for every
// one of those but ports (src/cli/machine.rs:58-86,
// src/cli/smolfile.rs:56, 208-248@v1.8.1), so net or a port decides.
func validateImageFetchable(m *machineRecord) string {
	if m.Image == nil || isLocalRef(*m.Image) || classifyImage(*m.Image) != imageRegistry {
		return ""
	}
	if m.Network || len(m.Ports) > 0 {
		return ""
	}
	image := *m.Image
	return "config operation failed: create machine: image '" + image + "' must be pulled from a registry, but this machine has no " +
		"network, so the pull can never succeed. Add --net (or publish a port with -p, or set an egress policy with " +
		"--allow-cidr/--allow-host). To keep the machine network-isolated, supply the image locally instead: " +
		"`docker save " + image + " | smolvm machine create --image - ...`"
}

func (e *env) fake(err error) int {
	fmt.Fprintf(e.stderr, "fake smolvm: %v\n", err)
	return exitFake
}

// parseUintOrZero parses a value parseArgs has already checked.
func parseUintOrZero(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// syscallText returns the operating system's text for err, as Rust's
// io::Error prints it ("No such file or directory (os error 2)").
func syscallText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:] + fmt.Sprintf(" (os error %d)", int(errno))
	}
	return err.Error()
}

// validateName applies smolvm's validate_vm_name (src/data/mod.rs) and
// returns its message, or "" for a valid name.
func validateName(name string) string {
	const label = "machine name"
	switch {
	case name == "":
		return label + " cannot be empty"
	case len(name) > 128:
		return fmt.Sprintf("%s too long: %d characters (max 128)", label, len(name))
	case !isAlnum(name[0]):
		return fmt.Sprintf("%s must start with a letter or digit (got: %q)", label, name)
	case strings.HasSuffix(name, "-"):
		return fmt.Sprintf("%s cannot end with a hyphen (got: %q)", label, name)
	}
	prevHyphen := false
	for _, c := range name {
		if c == '-' && prevHyphen {
			return label + " cannot contain consecutive hyphens"
		}
		prevHyphen = c == '-'
		if c < 0x80 && (isAlnum(byte(c)) || c == '-' || c == '_') {
			continue
		}
		if c == '/' || c == '\\' {
			return label + " cannot contain path separators"
		}
		return fmt.Sprintf("%s contains invalid character: '%c'", label, c)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// protectedPaths are the Linux host paths smolvm refuses to share
// (src/data/storage.rs ILLEGAL_SOURCE_MOUNT_PATH); true: the whole subtree.
var protectedPaths = []struct {
	path    string
	subtree bool
}{
	{"/", false}, {"/var", false}, {"/var/run", true}, {"/var/log", true}, {"/etc", true}, {"/boot", true},
	{"/usr", true}, {"/bin", true}, {"/sbin", true}, {"/lib", true}, {"/proc", true}, {"/sys", true},
	{"/dev", true}, {"/run", true},
}

// parseMounts applies smolvm's HostMount::parse to "host:guest[:ro|:rw]"
// specs: the source must exist and be a directory, is canonicalised, may
// not be a protected system path, the target must be absolute, and no two
// mounts may share a target. It returns the canonical specs, or an error
// message in smolvm's words.
func parseMounts(specs []string) ([]string, string) {
	var out []string
	seen := map[string]bool{}
	for _, spec := range specs {
		rest, ro := spec, false
		if head, mode, ok := cutLast(spec, ":"); ok && (mode == "ro" || mode == "rw") {
			rest, ro = head, mode == "ro"
		}
		src, dst, ok := cutLast(rest, ":")
		if !ok || src == "" || dst == "" {
			return nil, fmt.Sprintf("invalid mount path: invalid format '%s' (expected host:guest[:ro|:rw])", spec)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, "mount source not found: " + src
		}
		if !fi.IsDir() {
			return nil, "mount operation failed: validate host path: source path on host must be a directory (virtiofs limitation): " + src
		}
		canon, err := filepath.EvalSymlinks(src)
		if err == nil {
			canon, err = filepath.Abs(canon)
		}
		if err != nil {
			return nil, fmt.Sprintf("mount operation failed: canonicalize host path: '%s': %v", src, err)
		}
		for _, pp := range protectedPaths {
			if canon == pp.path || pp.subtree && strings.HasPrefix(canon, pp.path+"/") {
				return nil, "mount operation failed: validate host path: source path on host is a protected system path and cannot be mounted: " + canon
			}
		}
		if !strings.HasPrefix(dst, "/") {
			return nil, "mount operation failed: validate guest path: target path on guest should be an absolute directory: " + dst
		}
		if seen[dst] {
			return nil, fmt.Sprintf("mount operation failed: validate mounts: duplicate mount target: %s is specified more than once", dst)
		}
		seen[dst] = true
		s := canon + ":" + dst
		if ro {
			s += ":ro"
		}
		out = append(out, s)
	}
	return out, ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func nameOrDefault(p *parsed) string {
	if n, ok := p.last("name"); ok {
		return n
	}
	return "default"
}

// statusJSON renders a machine with the keys of machine_status_json
// (src/cli/vm_common.rs:2362-2413@v1.8.1), which `ls --json` and
// `status --json` print, sorted as serde_json sorts them. "image" is the
// record's image: a registry reference as given, or the resolved
// "local:<sha256>" / "local-dir:<path>" of a local --image.
func statusJSON(m *machineRecord) map[string]any {
	var pid any
	state := actualState(m)
	if state == "running" {
		pid = fakePID
	}
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"name": m.Name, "state": state, "cpus": m.CPUs, "memory_mib": m.MemoryMiB, "pid": pid,
		"mounts": len(m.Mounts), "ports": len(m.Ports), "created_at": 0,
		"storage_gb": m.StorageGiB, "overlay_gb": m.OverlayGiB,
		"image": m.Image, "entrypoint": nonNil(m.Entrypoint), "cmd": nonNil(m.Cmd),
		"ephemeral": false, "gpu": false, "gpu_vram_mib": nil, "cuda": false, "forkable": false,
		"cuda_fork_pool_size": nil, "cuda_vram_limit_mib": nil, "forkpoint_held": false,
		"labels": labels, "restart_policy": "never", "restart_max_retries": 0, "restart_count": 0,
		"health_cmd": nil, "health_interval_secs": nil, "health_timeout_secs": nil,
		"health_retries": nil, "health_startup_grace_secs": nil, "network": m.Network,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (e *env) ls(p *parsed, st *store) int {
	ms, err := st.list()
	if err != nil {
		return e.fake(err)
	}
	if p.has("json") {
		out := make([]map[string]any, 0, len(ms))
		for _, m := range ms {
			out = append(out, statusJSON(m))
		}
		if len(out) == 0 {
			fmt.Fprintln(e.stdout, "[]")
			return exitOK
		}
		return e.printJSON(out)
	}
	if len(ms) == 0 {
		fmt.Fprintln(e.stdout, "No machines found")
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%-20s %-12s %5s %10s %7s %7s %8s %8s\n", "NAME", "STATE", "CPUS", "MEMORY", "MOUNTS", "PORTS", "STORAGE", "OVERLAY")
	fmt.Fprintln(e.stdout, strings.Repeat("-", 88))
	for _, m := range ms {
		storage, overlay := uint64(20), uint64(10)
		if m.StorageGiB != nil {
			storage = *m.StorageGiB
		}
		if m.OverlayGiB != nil {
			overlay = *m.OverlayGiB
		}
		name := m.Name
		if len(name) > 18 {
			name = name[:15] + "..."
		}
		fmt.Fprintf(e.stdout, "%-20s %-12s %5d %10s %7d %7d %8s %8s\n", name, actualState(m), m.CPUs,
			fmt.Sprintf("%d MiB", m.MemoryMiB), len(m.Mounts), len(m.Ports),
			fmt.Sprintf("%d GiB", storage), fmt.Sprintf("%d GiB", overlay))
	}
	return exitOK
}

func (e *env) status(p *parsed, st *store) int {
	name := nameOrDefault(p)
	m, err := st.get(name)
	if err != nil {
		return e.fake(err)
	}
	if m == nil {
		if p.has("json") {
			return e.errorf("config operation failed: machine status: machine '%s' not found", name)
		}
		return e.errorf("vm not found: %s", name)
	}
	if p.has("json") {
		return e.printJSON(statusJSON(m))
	}
	fmt.Fprintf(e.stdout, "Machine '%s': %s\n", name, actualState(m))
	return exitOK
}

func (e *env) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return e.fake(fmt.Errorf("encode json: %w", err))
	}
	fmt.Fprintf(e.stdout, "%s\n", b)
	return exitOK
}

// lookup loads the named machine, or answers as smolvm does when there is
// none: the returned code is the exit status to return when m is nil.
func (e *env) lookup(st *store, name string) (*machineRecord, int) {
	m, err := st.get(name)
	if err != nil {
		return nil, e.fake(err)
	}
	if m == nil {
		// Error::VmNotFound (src/data/errors.rs:71-76@v1.8.1), as start
		// (src/cli/vm_common.rs:1231), stop (:1833) and delete (:2159-2162)
		// report a missing machine.
		return nil, e.errorf("vm not found: %s", name)
	}
	return m, exitOK
}

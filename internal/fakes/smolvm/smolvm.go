//go:build linux

// Package smolvm is a stand-in for the smolvm command line, for tests only,
// on Linux (it emulates the guest with Linux namespaces):
// bottle's testscript suite registers Main as "smolvm" on machines that
// cannot run microVMs (no KVM, no smolvm).
//
// It follows smolvm 1.8.1 (github.com/smol-machines/smolvm, tag v1.8.1).
// Every emulated behaviour cites the source it was read from as
// path:line@v1.8.1 beside the code; this comment lists them. It implements
// `smolvm --version` and the machine subcommands create, start, stop,
// delete (rm), exec, ls (list) and status; anything else exits 3 saying the
// stand-in does not implement it. Argument errors print clap's
// "error: ..." and exit 2; operation errors print smolvm's "Error: ..."
// and exit 1 (src/main.rs:210-215@v1.8.1). A step the stand-in cannot
// emulate faithfully exits 3 with a line starting "fake smolvm:".
//
// Environment:
//
//	FAKE_SMOLVM_STATE    directory holding machine state (created if
//	                     missing); required by every machine subcommand.
//	FAKE_SMOLVM_LOG      file to which every invocation's argv is appended,
//	                     one line each, as fakes.LogLine writes it
//	                     ("smolvm machine start --name x").
//	FAKE_SMOLVM_VERSION  version to report and emulate (default 1.8.1);
//	                     options newer than it are rejected as clap does
//	                     (--mount-socket needs 1.6.4, --label 1.8.0).
//	FAKE_SMOLVM_FAIL     comma-separated steps that fail after their
//	                     arguments are accepted, with a realistic smolvm
//	                     error and exit status 1: create, start, stop,
//	                     delete, exec, ls, status. An unknown step name
//	                     exits 3, so a typo fails loudly.
//	SMOLVM_MAX_IMAGE_BYTES  smolvm's own: the local image size limit.
//
// start and exec (and stop/delete of a running machine) need root: the
// guest is emulated with namespaces, mounts and chroot, and guest
// processes enter the guest's mount and network namespaces with nsenter
// (util-linux). Without root they exit 3 with one line saying so. Scripts that reach them use a [root]
// condition; Cleanup(stateDir) kills what a failed script leaves running.
//
// # Emulated behaviour
//
// create:
//   - --image is classified as smolvm does (src/data/image_source.rs:56-82):
//     "-" is an archive on stdin; a value starting "/", "./" or "../" or
//     ending .tar/.tar.gz/.tgz is local — an existing directory is a rootfs
//     directory, anything else an archive file; every other value is a
//     registry reference. An empty value is clap's error
//     (src/cli/parsers.rs:35-43).
//   - a local --image is resolved on the host before anything else
//     (src/cli/machine.rs:2952-2962): a directory becomes
//     "local-dir:<canonical path>"; an archive must exist and be a regular
//     file, must not look like a Dockerfile (name or a first FROM/ARG
//     line), and must not exceed the size limit — 8 GiB, or
//     SMOLVM_MAX_IMAGE_BYTES (a byte count > 0), or --max-image-size, which
//     sets that variable (src/cli/machine.rs:2917-2922) and takes
//     parse_size_bytes' syntax (src/util.rs:128-160: a number with an
//     optional binary K/M/G/T unit, optional "i"/"B", any case, "1.5G",
//     "16GiB", "512M", "1024") — each with smolvm's message
//     (src/data/image_source.rs:177-277, 330-340). The archive is staged by
//     content hash and the record keeps "local:<sha256>", which
//     `ls --json` and `status --json` show as "image".
//   - the image is --image, else the Smolfile's (src/cli/smolfile.rs:137);
//     only --image is resolved as a local source.
//   - a registry image on a machine without network is refused with
//     smolvm's message (src/config.rs:808-872, called from
//     src/cli/vm_common.rs:687-691); network means --net, a published
//     port, an egress policy or a DNS server (src/network/launch.rs:89-110,
//     src/cli/machine.rs:58-86, src/cli/smolfile.rs:63, 210-252).
//   - the Smolfile merge (src/cli/smolfile.rs:55-310), env parsed at record
//     time (src/util.rs:75-106: a bare KEY takes this process's value),
//     init commands, secret references (Smolfile [secrets], then CLI
//     --secret-env/--secret-file, CLI winning: src/cli/machine.rs:213-252,
//     3003-3008), labels (src/util.rs:172-190), names (src/data/mod.rs),
//     volumes (src/data/storage.rs), sockets and the success output
//     (src/cli/vm_common.rs:696-721).
//
// start:
//   - "Starting machine 'NAME' with N mount(s) and N port mapping(s)..."
//     (src/cli/vm_common.rs:1339-1349); "already running" when it is
//     (:1245-1250).
//   - first boot of a registry image prints the pull's lines
//     (src/cli/vm_common.rs:1456-1464, src/cli/mod.rs:177-227); a staged
//     archive is checked where the guest flattens it
//     (crates/smolvm-agent/src/storage.rs:865-901, 1128-1271): it must be
//     a tar (gzip allowed) holding manifest.json, the layers it names and
//     its Config, else the agent's "crane export failed: ..." or
//     "could not read ..." message fails the start.
//   - init commands run once, on first boot, as `sh -c CMD` with a terminal
//     (src/cli/vm_common.rs:248-319, 1447-1521); a failing one fails the
//     start with "init[i] failed (exit N)".
//   - the workload: the record's entrypoint+cmd (Smolfile cmd or create's
//     trailing command), else the image's, starts detached in the guest
//     (src/workload.rs:49-73, crates/smolvm-agent/src/main.rs:3386-3642)
//     with the OCI spec's env (crates/smolvm-agent/src/oci.rs:494-504) and
//     keeps running until stop/delete. A command crun cannot find or
//     execute fails the start: "agent operation failed: start background
//     CMD: agent operation failed: run container detached: crun create
//     failed: " — the reason is empty because the agent discards crun's
//     stderr (crates/smolvm-agent/src/crun.rs:177-189, main.rs:3565-3577).
//     No command at all for a local image fails with the agent's "no
//     command given ..." (main.rs:3251-3280). A failed start stops the
//     machine and leaves its state as it was.
//
// exec:
//   - a missing or stopped machine: smolvm's messages
//     (src/cli/vm_common.rs:66-130).
//   - the command's env is exactly what smolvm gives it
//     (src/cli/machine.rs:2512-2571, src/cli/vm_common.rs:328-372,
//     497-507, crates/smolvm-agent/src/main.rs:3283-3300,
//     crates/smolvm-agent/src/crun.rs:19-32, src/agent/client.rs:664-669):
//     the image's Env, overridden by key by the machine's env (Smolfile env,
//     [dev].env, create -e), its secrets, this exec's --secret-env and
//     --secret-file (resolved on the host now), then exec -e; TERM=
//     xterm-256color with -t if unset; PATH=/usr/local/sbin:/usr/local/bin:
//     /usr/sbin:/usr/bin:/sbin:/bin if unset; HOME from the guest's passwd
//     if unset (crun). Never the host's environment.
//   - the working directory is -w, else the machine's workdir, else the
//     image's, else "/".
//   - the command runs in the machine's guest (below); its exit code is
//     passed on, 128+N when signal N killed it
//     (crates/smolvm-agent/src/process.rs:66-82). A command crun cannot
//     find prints crun's "executable file `X` not found in $PATH: No such
//     file or directory" (or "open executable: Permission denied" /
//     "Operation not permitted") and exits 255.
//   - stdio: -i relays stdin and output through pipes, -t through a pty
//     that is the command's terminal (the caller's terminal in raw mode);
//     --stream relays output; otherwise stdin is empty and the output is
//     written when the command ends (src/cli/vm_common.rs:192-213).
//   - smolvm's exec forwards no signal to the guest (it installs no
//     handler; src/agent/client.rs:1321-1477). When the client dies the
//     agent kills a non-interactive command's process tree
//     (crates/smolvm-agent/src/main.rs:5373-5383) but, for -i/-t, only
//     the `crun exec` client (main.rs:4350-4354, 4528-4533), so the
//     command keeps running — with its stdin at EOF, its output going
//     nowhere and, under -t, its terminal hung up — until the machine
//     stops. The stand-in does the same.
//   - exec -d starts the command and prints a pid (src/cli/machine.rs:
//     2576-2586).
//
// stop, delete, ls, status: smolvm's output (src/cli/vm_common.rs:
// 1816-1927, 2155-2298, 2362-2413); a machine recorded as running whose
// guest is gone is "stopped" (src/config.rs:777-787); a missing machine is
// "vm not found: NAME" (src/data/errors.rs:71-76).
//
// # The guest
//
// `machine start` starts an anchor: a copy of the stand-in in new mount
// and network namespaces, standing in for the VM. It brings lo up (the
// only interface of a machine without --net; libkrun's init sets lo up)
// and builds the guest's file system view: a tmpfs holding a bind mount of
// each of the host's top-level entries, a fresh proc and sysfs, a fresh
// tmpfs /run and the host's /dev; each volume bound at its guest path,
// read-only when asked (crates/smolvm-agent/src/main.rs:3353-3360,
// oci.rs:611-620); each --mount-socket a listener at its guest path with
// mode 0777 whose connections are relayed to the host socket, half-close
// included (crates/smolvm-agent/src/publish_socket.rs:116-136, 189-219,
// 277-387). Nothing is created on the host's file systems: where a guest
// path needs a directory or node inside a bound host directory, that bind
// is replaced by a tmpfs mirroring the directory's entries.
//
// The workload, init commands and execs run a second copy of the stand-in
// that joins the anchor's network namespace, chroots into its view
// (/proc/ANCHOR/root/...), resolves the command as crun does (crun 1.14.4
// find_executable: smolvm's guest installs Alpine 3.19's crun,
// scripts/build-agent-rootfs.sh:40, 106) and execs it, in a session of
// its own. All of a machine's processes thus share one network namespace
// and one /run, as they share one VM, and stop/delete SIGKILL every
// process in that namespace (and the anchor), repeating until none is
// left.
//
// # Deviations
//
// The stand-in cannot boot a VM, so:
//   - no image is pulled or unpacked: the guest's root is the host's,
//     mirrored. A registry image's config (Env, Cmd, WorkingDir, User) is
//     unknown, so its env is not applied and, without a machine command, no
//     workload runs; a local archive's config is read from the archive.
//     Commands run as root whatever the image's User.
//   - the pull of a registry image always succeeds and prints no progress;
//     the host-side probe for a .smolmachine pack behind a registry
//     reference (src/cli/machine.rs:2924-2940) and --allow-host's DNS
//     resolution are skipped (they would touch the network).
//   - a Smolfile `image` naming a local path is kept as written at create,
//     as smolvm does; smolvm's start would hand it to the registry pull,
//     whose failure was not traced, so start exits 3.
//   - a machine without an image runs commands in the agent's own root
//     (bare VM); the stand-in does not emulate that: start with a command,
//     and exec, exit 3.
//   - no pid namespace: guest processes have host pids, and `exec -d`
//     prints one.
//   - smolvm leaves a 0-byte placeholder file on the host where a
//     --mount-socket guest path lies inside a volume
//     (crates/smolvm-agent/src/publish_socket.rs:232-246,
//     src/cli/vm_common.rs:2025-2125); the stand-in creates nothing on the
//     host.
//   - the guest view is a snapshot: entries created later in a host
//     directory the anchor had to mirror do not appear in the guest.
//   - the staged archive cache is FAKE_SMOLVM_STATE/image-archives, not
//     the user's cache directory; a zstd-compressed archive is not
//     inspected (exit 3); crane's stderr is rendered as its error text
//     alone.
//   - exec --timeout is accepted and ignored; a detached exec whose
//     command cannot start exits 3 (smolvm's answer was not traced).
//   - the guest has no /storage disk and no /workspace fallback
//     (crates/smolvm-agent/src/storage.rs:518-563).
//   - deterministic values stand in for what only a VM has: created_at is
//     0 and a running machine's pid is 4242. The text of `machine status`
//     without --json is the stand-in's own.
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

// Option sets of the emulated subcommands (src/cli/machine.rs@v1.8.1:
// CreateCmd 2749-2914, ExecCmd 2451-2501; the others as in v1.8.0).
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
	// a directory canonicalised (src/cli/machine.rs:2952-2962@v1.8.1).
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
	// (src/cli/smolfile.rs:55-310@v1.8.1): CLI values that differ from
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
	// (src/cli/machine.rs:58-86, src/cli/smolfile.rs:63, 210-252@v1.8.1).
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
	// parse_env_list at record time (src/cli/vm_common.rs:597-598@v1.8.1).
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
	// (src/cli/machine.rs:3003-3007@v1.8.1).
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
// before storing it (src/cli/vm_common.rs:687-691@v1.8.1): a registry
// image needs the network, because the guest pulls it. A local reference
// (local:/local-dir:) or anything classify does not call a registry
// reference passes. plan_launch_network (src/network/launch.rs:89-110@v1.8.1)
// wants a network for --net, a published port, an allowed CIDR or an
// allowed host; the CLI and Smolfile paths already turn `net` on for every
// one of those but ports (src/cli/machine.rs:58-86,
// src/cli/smolfile.rs:63, 210-252@v1.8.1), so net or a port decides.
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

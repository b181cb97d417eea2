package builtins

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

var (
	imageRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$`)
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	userRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
)

// docker(image, workdir="/workspace", user=None, cpus=None, memory="4GiB",
// runtime=None, pids_limit=4096, cap_add=[])
func docker(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "image"); err != nil {
		return nil, err
	}
	var (
		image, runtime, user string
		workdir              = "/workspace"
		c                    cpus
		mem                  = size{bytes: plan.DefaultDockerMemory}
		pids                 = plan.DefaultPidsLimit
		capAdd               *starlark.List
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"image", &image, "workdir?", &workdir, "user??", &user,
		"cpus??", &c, "memory??", &mem, "runtime??", &runtime,
		"pids_limit?", &pids, "cap_add?", &capAdd); err != nil {
		return nil, err
	}
	if pids < 16 || pids > 1<<22 {
		return nil, fmt.Errorf("%s: pids_limit %d is out of range; give from 16 to 4194304 processes", b.Name(), pids)
	}
	if mem.bytes == 0 {
		mem.bytes = plan.DefaultDockerMemory // memory = None
	}
	caps, err := capabilities(b, capAdd)
	if err != nil {
		return nil, err
	}
	be := plan.Backend{Kind: plan.BackendDocker, Image: image, Workdir: workdir, User: user,
		CPUs: c.n, MemoryBytes: mem.bytes, Runtime: runtime, PidsLimit: int64(pids), CapAdd: caps}
	if user != "" && !userRE.MatchString(user) {
		return nil, fmt.Errorf("%s: user %q is not a user name or uid, optionally with :group", b.Name(), user)
	}
	if runtime != "" && !nameRE.MatchString(runtime) {
		return nil, fmt.Errorf("%s: runtime %q is not a runtime name such as \"runsc\"", b.Name(), runtime)
	}
	return setBackend(thread, b, be)
}

// smolmachines(image, cpus=2, memory="4GiB", workdir="/workspace", storage=None)
func smolmachines(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "image"); err != nil {
		return nil, err
	}
	var (
		image   string
		workdir = "/workspace"
		ncpu    = 2
		mem     = size{bytes: 4 << 30, set: true}
		storage size
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"image", &image, "cpus?", &ncpu, "memory?", &mem, "workdir?", &workdir, "storage??", &storage); err != nil {
		return nil, err
	}
	// smolvm silently runs a VM with at most 16 vCPUs, whatever it is
	// asked (src/data/resources.rs:71-91 at v1.8.1, MAX_EFFECTIVE_CPUS):
	// bottle does not promise more than the VM gets.
	if ncpu < 1 || ncpu > 16 {
		return nil, fmt.Errorf("%s: cpus %d is out of range; smolvm runs a microVM with 1 to 16 whole CPUs", b.Name(), ncpu)
	}
	if mem.bytes < 64<<20 {
		return nil, fmt.Errorf("%s: memory %s is too small; a microVM needs at least 64MiB", b.Name(), plan.FormatSize(mem.bytes))
	}
	be := plan.Backend{Kind: plan.BackendSmolmachines, Image: image, Workdir: workdir,
		CPUs: float64(ncpu), MemoryBytes: mem.bytes, StorageBytes: storage.bytes}
	return setBackend(thread, b, be)
}

func setBackend(thread *starlark.Thread, b *starlark.Builtin, be plan.Backend) (starlark.Value, error) {
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	if s.Backend != nil {
		return nil, fmt.Errorf("%s: a profile declares exactly one backend, and %s() was already called at %s",
			b.Name(), s.Backend.Kind, s.Backend.From)
	}
	if be.Image == "" || len(be.Image) > 512 || !imageRE.MatchString(be.Image) {
		return nil, fmt.Errorf("%s: image %q is not an image reference such as \"node:22\" or \"images.example.com/acme/agent:1.4\"", b.Name(), be.Image)
	}
	if err := checkSandboxPath("workdir", be.Workdir); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	be.Workdir = path.Clean(be.Workdir)
	be.From = callerPos(thread)
	s.Backend = &be
	return starlark.None, nil
}

// checkSandboxPath requires an absolute path inside the sandbox.
func checkSandboxPath(what, p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%s %q is not an absolute path; paths in the sandbox start with /", what, p)
	}
	for _, c := range p {
		if c == 0 || c == ':' || c == ',' || c == '\n' {
			return fmt.Errorf("%s %q holds %q, which mount and workdir paths may not contain", what, p, c)
		}
	}
	return nil
}

// linuxCapabilities are the capability names docker's --cap-add takes,
// without the CAP_ prefix (capabilities(7)).
var linuxCapabilities = []string{
	"AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
	"SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
	"WAKE_ALARM",
}

// capabilities checks cap_add: capability names, with or without CAP_,
// any case; it returns them upper-case without the prefix, sorted.
func capabilities(b *starlark.Builtin, list *starlark.List) ([]string, error) {
	if list == nil {
		return nil, nil
	}
	var caps []string
	for i := 0; i < list.Len(); i++ {
		s, ok := starlark.AsString(list.Index(i))
		if !ok {
			return nil, fmt.Errorf("%s: cap_add[%d] is %s; want a capability name such as \"NET_BIND_SERVICE\"", b.Name(), i, list.Index(i).Type())
		}
		name := strings.TrimPrefix(strings.ToUpper(s), "CAP_")
		if !slices.Contains(linuxCapabilities, name) {
			return nil, fmt.Errorf("%s: cap_add %q is not a Linux capability; see capabilities(7), for example \"NET_BIND_SERVICE\"", b.Name(), s)
		}
		caps = append(caps, name)
	}
	slices.Sort(caps)
	return slices.Compact(caps), nil
}

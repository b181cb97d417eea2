package render

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/pelletier/go-toml/v2"

	"github.com/bottle-dev/bottle/plan"
)

// SmolvmVersion is the smolvm release the Smolfile and the smolvm command
// lines are written for, and the oldest one bottle supports. It is v1.8.1,
// the first release with everything the smolmachines backend relies on:
//
//   - `machine create --mount-socket HOST_PATH:GUEST_PATH`, added in v1.6.4
//     (2026-07-16, PR #656);
//   - `machine create --label KEY=VALUE`, read back by `machine ls --json`,
//     added in v1.8.0 (PR #899) — bottle finds its own machines by label;
//   - the mount-socket fixes: `create` no longer drops the socket mounts
//     (v1.7.0, PR #746), and each bridge binds at a VM-private path so a
//     guest path inside a shared volume no longer collides across machines,
//     with relative and duplicate guest paths refused (v1.8.0, PR #867);
//   - `machine exec -i` with large piped stdin: before v1.8.1 it deadlocks
//     (commit 4e80aab5, PR #931, moves the session's writes to a thread of
//     their own).
//
// Its Smolfile schema (crate smolfile 1.8.0, every table
// deny_unknown_fields) knows the keys rendered here; later releases only
// add keys.
const SmolvmVersion = "1.8.1"

// Volume is one host directory shared into the microVM.
type Volume struct {
	// Host is an absolute host path. smolvm shares directories only
	// (virtiofs) and refuses protected system paths such as /etc.
	Host string
	// Guest is the absolute path the directory appears at in the guest.
	Guest    string
	ReadOnly bool
}

// smolfile is the subset of smolvm 1.8.0's Smolfile that bottle sets, in
// the crate's field order. Every key is optional in the schema.
type smolfile struct {
	Image   string   `toml:"image,omitempty"`
	Cmd     []string `toml:"cmd,omitempty"`
	Env     []string `toml:"env,omitempty"`
	Workdir string   `toml:"workdir,omitempty"`
	CPUs    uint8    `toml:"cpus,omitempty"`
	Memory  uint32   `toml:"memory,omitempty"`
	Net     bool     `toml:"net"`
	Storage uint64   `toml:"storage,omitempty"`
	Volumes []string `toml:"volumes,omitempty"`
}

const (
	mib = 1 << 20
	gib = 1 << 30
	// smolvmMinMemoryMiB is the least memory smolvm 1.8.0 accepts
	// (src/data/resources.rs MIN_MEMORY_MIB).
	smolvmMinMemoryMiB = 64
)

// Smolfile renders the Smolfile for the plan's smolmachines sandbox, for
// smolvm SmolvmVersion: the workload command, the literal
// environment, CPUs, memory (MiB) and disk size
// (GiB) from the plan, the given volumes, and `net = false` — the VM gets
// no network device; the sidecars reach it through --mount-socket on the
// `machine create` command line, which is not part of the Smolfile.
//
// The Smolfile names no image: smolvm reads its `image` as a registry
// reference, which a machine without a network cannot pull and which
// `machine create` refuses (src/config.rs:828-872@v1.8.1). The image goes
// on the create command line as a local archive instead (see the
// smolmachines backend); a comment in the file names it.
//
// guestCmd becomes `cmd`, smolvm's persistent workload, launched detached
// on every `machine start`. A machine that sets a command does not run the
// image's ENTRYPOINT or CMD at all (smolvm's default_workload_to_image), so
// guestCmd runs exactly as given. An empty guestCmd leaves `cmd` out and
// the machine boots to smolvm's bare agent, ready for `machine exec`.
//
// env holds literal values only and is written to the file sorted by name:
// never put a secret's value in it. Names must be environment-variable
// names that are not among the plan's secrets, and values may not end in
// white space (smolvm trims each KEY=VALUE entry). CPUs must be a whole
// number from 1 to 255; memory is rounded up to whole MiB and must come
// to at least 64 MiB, the disk is rounded up to whole GiB; a zero leaves
// smolvm's default (4 vCPUs, 8192 MiB, 20 GiB).
func Smolfile(p *plan.Plan, guestCmd []string, env map[string]string, volumes []Volume) ([]byte, error) {
	if p == nil {
		return nil, errors.New("render Smolfile: no plan")
	}
	if p.Backend.Kind != plan.BackendSmolmachines {
		return nil, fmt.Errorf("render Smolfile: the plan's backend is %q, not %q", p.Backend.Kind, plan.BackendSmolmachines)
	}
	sf := smolfile{Net: false}
	if err := checkImage(p.Backend.Image); err != nil {
		return nil, fmt.Errorf("render Smolfile: %w", err)
	}
	for i, a := range guestCmd {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("render Smolfile: command argument %d holds a NUL byte", i)
		}
	}
	if len(guestCmd) > 0 && guestCmd[0] == "" {
		return nil, errors.New("render Smolfile: the command's program name is empty")
	}
	sf.Cmd = guestCmd

	var err error
	if sf.Env, err = smolfileEnv(p, env); err != nil {
		return nil, fmt.Errorf("render Smolfile: %w", err)
	}

	if _, err := SmolWorkdir(p); err != nil {
		return nil, fmt.Errorf("render Smolfile: %w", err)
	}

	if sf.CPUs, err = smolvmCPUs(p.Backend.CPUs); err != nil {
		return nil, fmt.Errorf("render Smolfile: %w", err)
	}
	mem, err := ceilUnits(p.Backend.MemoryBytes, mib, math.MaxUint32)
	if err != nil {
		return nil, fmt.Errorf("render Smolfile: memory: %w", err)
	}
	if mem != 0 && mem < smolvmMinMemoryMiB {
		return nil, fmt.Errorf("render Smolfile: memory is %d MiB; smolvm needs at least %d MiB", mem, smolvmMinMemoryMiB)
	}
	sf.Memory = uint32(mem)
	if sf.Storage, err = ceilUnits(p.Backend.StorageBytes, gib, math.MaxInt64/gib); err != nil {
		return nil, fmt.Errorf("render Smolfile: storage: %w", err)
	}

	if sf.Volumes, err = smolfileVolumes(volumes); err != nil {
		return nil, fmt.Errorf("render Smolfile: %w", err)
	}

	body, err := toml.Marshal(sf)
	if err != nil {
		return nil, fmt.Errorf("render Smolfile: marshal: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString("# Smolfile for smolvm " + SmolvmVersion + " rendered by bottle from the plan; do not edit\n")
	buf.WriteString("# image: " + p.Backend.Image + " (given to machine create as a docker save archive)\n")
	buf.Write(body)
	return buf.Bytes(), nil
}

// SmolWorkdir is the agent's working directory in the microVM: the
// agent's workdir, else the backend's, which must be an absolute guest
// path; "" when neither is set.
//
// The Smolfile does not set it: smolvm hands `workdir` to crun as the
// working directory of the workload and of every exec, and crun fails
// when it does not exist in the image (libcrun_safe_chdir, crun's
// src/libcrun/linux.c; the smolvm stand-in emulates it), which a
// workdir that no mount provides would not. bottle guest creates it and
// runs the agent there instead.
func SmolWorkdir(p *plan.Plan) (string, error) {
	dir := p.Agent.Workdir
	if dir == "" {
		dir = p.Backend.Workdir
	}
	if dir != "" && !isGuestPath(dir) {
		return "", fmt.Errorf("workdir %q is not an absolute guest path", dir)
	}
	return dir, nil
}

// checkImage refuses an empty image and one holding white space or
// control characters, which no image reference contains.
func checkImage(image string) error {
	if image == "" {
		return errors.New("the plan names no image; smolvm would boot a bare Alpine VM")
	}
	if strings.IndexFunc(image, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("image %q holds white space or control characters", image)
	}
	return nil
}

func smolfileEnv(p *plan.Plan, env map[string]string) ([]string, error) {
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for _, name := range names {
		value := env[name]
		if !isEnvName(name) {
			return nil, fmt.Errorf("environment variable name %q is not a letter or underscore followed by letters, digits and underscores", name)
		}
		for _, s := range p.Secrets {
			if s.Name == name {
				return nil, fmt.Errorf("environment variable %q is a secret of the plan; secrets never go into the Smolfile", name)
			}
		}
		if strings.ContainsRune(value, 0) {
			return nil, fmt.Errorf("environment variable %q holds a NUL byte", name)
		}
		if strings.TrimRightFunc(value, unicode.IsSpace) != value {
			return nil, fmt.Errorf("environment variable %q ends in white space, which smolvm trims", name)
		}
		out = append(out, name+"="+value)
	}
	return out, nil
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// smolvmCPUs converts the plan's CPU limit to smolvm's u8 vCPU count; 0
// means smolvm's default.
func smolvmCPUs(cpus float64) (uint8, error) {
	switch {
	case cpus == 0:
		return 0, nil
	case math.IsNaN(cpus) || cpus < 1 || cpus > math.MaxUint8 || cpus != math.Trunc(cpus):
		return 0, fmt.Errorf("cpus = %v: smolvm takes a whole number of vCPUs from 1 to 255", cpus)
	}
	return uint8(cpus), nil
}

// ceilUnits returns n bytes in whole units, rounded up, or an error when
// the result exceeds limit. Zero stays zero (smolvm's default).
func ceilUnits(n, unit int64, limit uint64) (uint64, error) {
	if n < 0 {
		return 0, fmt.Errorf("%d bytes is negative", n)
	}
	u := uint64(n / unit)
	if n%unit != 0 {
		u++
	}
	if u > limit {
		return 0, fmt.Errorf("%d bytes is more than smolvm accepts", n)
	}
	return u, nil
}

// smolfileVolumes renders volumes as smolvm's "host:guest[:ro]". smolvm
// splits the spec from the right, so a host path may hold ':' but a guest
// path may not.
func smolfileVolumes(volumes []Volume) ([]string, error) {
	out := make([]string, 0, len(volumes))
	seen := make(map[string]bool, len(volumes))
	for _, v := range volumes {
		if !filepath.IsAbs(v.Host) || filepath.Clean(v.Host) != v.Host || strings.ContainsAny(v.Host, "\x00\n") {
			return nil, fmt.Errorf("volume host path %q is not a clean absolute path", v.Host)
		}
		if !isGuestPath(v.Guest) || strings.Contains(v.Guest, ":") {
			return nil, fmt.Errorf("volume guest path %q is not a clean absolute path without ':'", v.Guest)
		}
		if seen[v.Guest] {
			return nil, fmt.Errorf("two volumes share the guest path %q", v.Guest)
		}
		seen[v.Guest] = true
		spec := v.Host + ":" + v.Guest
		if v.ReadOnly {
			spec += ":ro"
		}
		out = append(out, spec)
	}
	return out, nil
}

// isGuestPath reports whether s is a clean absolute Linux path.
func isGuestPath(s string) bool {
	return strings.HasPrefix(s, "/") && path.Clean(s) == s && !strings.ContainsAny(s, "\x00\n")
}

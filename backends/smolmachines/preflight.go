package smolmachines

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/render"
)

// minVersion is the oldest smolvm bottle runs with: the one the Smolfile
// and the command lines are written for.
const minVersion = render.SmolvmVersion

// defaultKVMDevice is the KVM device smolvm opens on Linux;
// BOTTLE_KVM_DEVICE overrides it.
const defaultKVMDevice = "/dev/kvm"

// maxSocketPath is the longest unix socket path the kernel accepts
// (sockaddr_un.sun_path holds 104 bytes on macOS, 108 on Linux, with the
// terminating NUL).
const maxSocketPath = 103

// Preflight checks smolvm, its version, KVM, the guest binary, the image
// (docker or podman has it, to save it as an archive), the mount sources
// and the sidecars, without changing anything. It reports every
// problem it finds, one line each.
func (s *Backend) Preflight(ctx context.Context, b *backends.Bottle) error {
	var errs []error
	if cli, err := s.cli(); err != nil {
		errs = append(errs, err)
	} else if err := s.checkVersion(ctx, cli); err != nil {
		errs = append(errs, err)
	}
	if runtime.GOOS == "linux" {
		if err := checkKVM(kvmDevice()); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := guestBinary(b.Executable); err != nil {
		errs = append(errs, err)
	}
	// The image must be one bottle can save as an archive (see image.go).
	if e, err := findImageEngine(); err != nil {
		errs = append(errs, err)
	} else if _, err := s.imageID(ctx, e, b.Plan.Backend.Image); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkPlan(b.Plan)...)
	return errors.Join(errs...)
}

// checkVersion asks smolvm for its version and compares it with minVersion.
func (s *Backend) checkVersion(ctx context.Context, cli string) error {
	out, err := s.runner().Output(ctx, backends.Cmd{Path: cli, Args: []string{"--version"}})
	if err != nil {
		return fmt.Errorf("smolvm --version failed (%v); reinstall smolvm %s or newer", firstLine(err.Error()), minVersion)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return fmt.Errorf("smolvm --version printed nothing; reinstall smolvm %s or newer", minVersion)
	}
	have := fields[len(fields)-1]
	older, err := versionLess(have, minVersion)
	if err != nil {
		return fmt.Errorf("smolvm --version said %q, which bottle cannot read (%v); install smolvm %s or newer", firstLine(string(out)), err, minVersion)
	}
	if older {
		return fmt.Errorf("smolvm %s is older than %s, the first release with everything bottle relies on (machine create --mount-socket and --label, and exec -i with large piped stdin); upgrade smolvm (rerun its installer or your package manager's upgrade)", have, minVersion)
	}
	return nil
}

// parseVersion reads MAJOR.MINOR.PATCH, with an optional leading "v" and
// any pre-release or build suffix ignored.
func parseVersion(s string) ([3]int, error) {
	var v [3]int
	core := strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", s)
		}
		v[i] = n
	}
	return v, nil
}

// versionLess reports whether version a is older than b. A pre-release of
// b counts as b.
func versionLess(a, b string) (bool, error) {
	va, err := parseVersion(a)
	if err != nil {
		return false, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return false, err
	}
	for i := range va {
		if va[i] != vb[i] {
			return va[i] < vb[i], nil
		}
	}
	return false, nil
}

func kvmDevice() string {
	if d := os.Getenv("BOTTLE_KVM_DEVICE"); d != "" {
		return d
	}
	return defaultKVMDevice
}

// checkKVM checks that dev is a character device the user may open for
// reading and writing, as smolvm (libkrun) must.
func checkKVM(dev string) error {
	st, err := os.Stat(dev)
	if err != nil {
		return fmt.Errorf("%s does not exist, so smolvm cannot start a microVM; enable virtualisation in the firmware and load the kvm_intel or kvm_amd module (on a VM, turn on nested virtualisation)", dev)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("%s is not a character device, so it is not KVM; point BOTTLE_KVM_DEVICE at the KVM device or unset it", dev)
	}
	if err := unix.Access(dev, unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("%s is not readable and writable by you; add yourself to its group (sudo usermod -aG kvm $USER) and log in again", dev)
	}
	return nil
}

// elfMachines maps the architectures smolvm runs on to their ELF machine.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// guest is the program that runs first in the guest.
type guest struct {
	// path is the host file.
	path string
}

// guestBinary finds the static linux bottle binary for the guest, which
// runs the host's architecture: $BOTTLE_GUEST_BINARY, else on Linux exe,
// bottle's own executable. BOTTLE_SMOL_TEST_GUEST, for bottle's tests,
// takes precedence and is not checked.
func guestBinary(exe string) (guest, error) {
	if p := os.Getenv(envTestGuest); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return guest{}, fmt.Errorf("%s: %w", envTestGuest, err)
		}
		return guest{path: abs}, nil
	}
	arch := runtime.GOARCH
	if _, ok := elfMachines[arch]; !ok {
		return guest{}, fmt.Errorf("smolvm runs on amd64 and arm64 hosts, and this one is %s", arch)
	}
	build := fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build ./cmd/bottle", arch)
	if p := os.Getenv("BOTTLE_GUEST_BINARY"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return guest{}, fmt.Errorf("BOTTLE_GUEST_BINARY: %w", err)
		}
		exe = abs
	} else if runtime.GOOS != "linux" {
		return guest{}, fmt.Errorf("the microVM runs a linux/%s build of bottle, and this one is for %s; build one (%s) and set BOTTLE_GUEST_BINARY to it", arch, runtime.GOOS, build)
	}
	if err := backends.CheckStaticLinux(exe, arch, "the microVM", "BOTTLE_GUEST_BINARY"); err != nil {
		return guest{}, err
	}
	st, err := os.Stat(exe)
	if err != nil {
		return guest{}, fmt.Errorf("guest binary %s: %w", exe, err)
	}
	if st.Mode()&0o111 == 0 {
		return guest{}, fmt.Errorf("guest binary %s is not executable; chmod +x it", exe)
	}
	return guest{path: exe}, nil
}

// checkPlan checks what the plan asks of the host: mount sources that are
// directories, sidecars the host can run (the git gate's own checks run
// when it starts) and socket paths that fit.
func checkPlan(p *plan.Plan) []error {
	var errs []error
	for _, m := range p.Mounts {
		st, err := os.Stat(m.HostPath)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("mount source %s does not exist (mount() at %s); create it or change the profile", m.HostPath, m.From))
		case !st.IsDir():
			errs = append(errs, fmt.Errorf("mount source %s is a file, and smolvm shares directories only (mount() at %s); mount its directory instead", m.HostPath, m.From))
		}
	}
	for _, sc := range p.Sidecars {
		if sc.Listen.Network != "unix" {
			errs = append(errs, fmt.Errorf("the %s sidecar listens on %s %s, but a microVM reaches sidecars through unix sockets only", sc.Name, sc.Listen.Network, sc.Listen.Address))
			continue
		}
		if sc.Name == plan.SidecarGitGate {
			if _, err := exec.LookPath("git"); err != nil {
				errs = append(errs, errors.New("the git-gate sidecar runs on the host and needs git there; install git (2.32 or newer) or put it on PATH"))
			}
		}
		if len(sc.Listen.Address) > maxSocketPath {
			errs = append(errs, fmt.Errorf("the %s sidecar's socket path %s is %d bytes, more than unix sockets allow (%d); set XDG_STATE_HOME to a shorter directory", sc.Name, sc.Listen.Address, len(sc.Listen.Address), maxSocketPath))
		}
	}
	if ctl := filepath.Join(p.StateDir, controlSocketName); len(ctl) > maxSocketPath {
		errs = append(errs, fmt.Errorf("the control socket's path %s is %d bytes, more than unix sockets allow (%d); set XDG_STATE_HOME to a shorter directory", ctl, len(ctl), maxSocketPath))
	}
	return errs
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

package guest

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// Compat ABIs a 64-bit kernel may run next to its own: i386 (int 0x80)
// on amd64, AArch32 on arm64 (libkrunfw's arm64 kernel has
// CONFIG_COMPAT=y; Cortex-A72/A76 and Neoverse-N1 hosts run 32-bit EL0
// in a KVM guest). Their numbers: i386 chmod 15, arm chmod 15.
const (
	auditArchI386 = 0x40000003
	auditArchARM  = 0x40000028
	compatChmod   = 15
	seccompAllow  = 0x7fff0000
)

// runFilter runs prog on a seccomp_data for (arch, nr, args). x/net/bpf
// loads words big-endian, so each 32-bit field is stored that way; a
// 64-bit argument is its low word then its high word, as on a
// little-endian machine.
func runFilter(t *testing.T, prog []bpf.Instruction, arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

// TestSetuidFilterForeignArch: the agent's seccomp filter matches only
// the native architecture and lets a system call made through a compat
// ABI run unchecked (go-seccomp-bpf jumps to the default action,
// allow, on any other arch): chmod(path, 04755) by int 0x80 on amd64, or
// from an AArch32 binary on arm64, leaves a setuid file on the host's
// side of the share, and io_uring and openat2 are open the same way. A
// foreign arch must be refused, as Docker's profile does.
func TestSetuidFilterForeignArch(t *testing.T) {
	prog, err := setuidProgram()
	if err != nil {
		t.Fatal(err)
	}
	foreign := map[string]uint32{"amd64": auditArchI386, "arm64": auditArchARM}[runtime.GOARCH]
	if foreign == 0 {
		t.Skipf("no compat ABI known for %s", runtime.GOARCH)
	}
	// The control: the native fchmodat(dfd, path, 04755) is refused.
	native, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	if got := runFilter(t, prog, uint32(native.ID), uint32(native.SyscallNames["fchmodat"]), 0, 0x1000, 0o4755); got == seccompAllow {
		t.Fatalf("the emulation is wrong: the native fchmodat(04755) is allowed")
	}
	if got := runFilter(t, prog, foreign, compatChmod, 0x1000, 0o4755); got == seccompAllow {
		t.Errorf("ESCAPE: a 32-bit chmod(path, 04755) passes the filter (action %#x)", got)
	}
	if runtime.GOARCH == "amd64" {
		// x32: the native arch, bit 30 in the number (x32 chmod is 90).
		if got := runFilter(t, prog, uint32(native.ID), 0x40000000|90, 0x1000, 0o4755); got == seccompAllow {
			t.Errorf("ESCAPE: an x32 chmod(path, 04755) passes the filter")
		}
	}
}

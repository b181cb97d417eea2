package guest

import (
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// denySetuidModes installs a seccomp filter, inherited by the command,
// that refuses with EPERM every call setting a setuid or setgid mode,
// returns ENOSYS for openat2 (whose mode is in a struct a filter cannot
// read; C libraries fall back to openat) and refuses io_uring, whose
// operations would bypass the filter. no_new_privs must be set already.
func denySetuidModes() error {
	prog, err := setuidProgram()
	if err != nil {
		return fmt.Errorf("build the seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("build the seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("install the seccomp filter: %w", errno)
	}
	runtime.KeepAlive(filter)
	return nil
}

// setuidProgram is setuidFilter's policy behind a check of its own:
// go-seccomp-bpf lets a call of a foreign architecture through to the
// default action (allow), so a 32-bit chmod (int 0x80 on amd64, AArch32
// on arm64) or an x32 call on amd64 would pass every rule. Those get
// ENOSYS here, as Docker's profile refuses an architecture it does not
// list.
func setuidProgram() ([]bpf.Instruction, error) {
	f := setuidFilter()
	body, err := f.Policy.Assemble()
	if err != nil {
		return nil, err
	}
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	enosys := bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		enosys,
	}
	if runtime.GOARCH == "amd64" {
		// x32 calls carry the native arch and bit 30 in the number.
		prog = append(prog,
			bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
			enosys,
		)
	}
	return append(prog, body...), nil
}

// setuidFilter is the filter denySetuidModes installs.
func setuidFilter() seccomp.Filter {
	native, _ := arch.GetInfo("")
	var named []seccomp.NameWithConditions
	for name, arg := range ModeArg {
		if native != nil {
			if _, ok := native.SyscallNames[name]; !ok {
				continue // arm64 has only the *at calls
			}
		}
		named = append(named, seccomp.NameWithConditions{Name: name, Conditions: seccomp.ArgumentConditions{
			{Argument: uint32(arg), Operation: seccomp.BitsSet, Value: SetIDBits},
		}})
	}
	return seccomp.Filter{
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{
				{NamesWithCondtions: named, Action: seccomp.ActionErrno},
				{Names: []string{"openat2"}, Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)},
				{Names: []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}, Action: seccomp.ActionErrno},
			},
		},
	}
}

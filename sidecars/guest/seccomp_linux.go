package guest

import (
	"fmt"
	"runtime"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// setuidModes are the mode bits that must not reach a file the agent
// writes: on the host side of a shared directory a setuid or setgid bit
// stays, and a setuid-root file there is a root shell for anyone who runs
// it when bottle ran as root.
const setuidModes = unix.S_ISUID | unix.S_ISGID

// modeArgs gives, for each system call that sets a file's mode, the
// argument that holds it (the kernel's signatures: chmod(path, mode),
// fchmod(fd, mode), fchmodat(dirfd, path, mode), fchmodat2(dirfd, path,
// mode, flags), creat(path, mode), open(path, flags, mode), openat(dirfd,
// path, flags, mode), mknod(path, mode, dev), mknodat(dirfd, path, mode,
// dev)). arm64 has only the *at ones.
func modeArgs() map[string]uint32 {
	m := map[string]uint32{"fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "openat": 3, "mknodat": 2}
	if runtime.GOARCH == "amd64" {
		for name, arg := range map[string]uint32{"chmod": 1, "creat": 1, "open": 2, "mknod": 1} {
			m[name] = arg
		}
	}
	return m
}

// denySetuidModes installs a seccomp filter, inherited by the command,
// that refuses with EPERM every call setting a setuid or setgid mode,
// returns ENOSYS for openat2 (whose mode is in a struct a filter cannot
// read; C libraries fall back to openat) and refuses io_uring, whose
// operations would bypass the filter. no_new_privs must be set already.
func denySetuidModes() error {
	if err := seccomp.LoadFilter(setuidFilter()); err != nil {
		return fmt.Errorf("install the seccomp filter: %w", err)
	}
	return nil
}

// setuidFilter is the filter denySetuidModes installs.
func setuidFilter() seccomp.Filter {
	var named []seccomp.NameWithConditions
	for name, arg := range modeArgs() {
		named = append(named, seccomp.NameWithConditions{Name: name, Conditions: seccomp.ArgumentConditions{
			{Argument: arg, Operation: seccomp.BitsSet, Value: setuidModes},
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

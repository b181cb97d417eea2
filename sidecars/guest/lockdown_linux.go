package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockdownCommand returns the argv and process attributes that start argv
// through bottle guest's LockdownFlag, in a new mount namespace: as root
// (the smolvm workload) a plain one; as anyone else a user namespace too,
// mapping only the caller's uid and gid, so that the mounts work without
// privilege and grant nothing outside it.
func lockdownCommand(l Lockdown, argv []string) ([]string, *syscall.SysProcAttr, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find bottle's own executable: %w", err)
	}
	attr := &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		// The kernel's fork-and-exec makes the new namespace's mounts
		// private before the exec.
		attr.Unshareflags = syscall.CLONE_NEWNS
	} else {
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
	}
	return append([]string{exe, "guest", LockdownFlag, l.String(), "--"}, argv...), attr, nil
}

// ExecLocked applies l to the calling process and replaces it with argv
// (found on PATH). It returns only on failure, with the exit code to use:
// ExitSetupFailed when the lockdown cannot be applied (nothing runs
// unprotected), ExitNotFound or ExitCannotInvoke when argv cannot run.
func ExecLocked(l Lockdown, argv []string) (int, error) {
	if len(argv) == 0 {
		return ExitSetupFailed, errors.New("no command to run: give it after --")
	}
	runtime.LockOSThread()
	// Nothing done here may reach the parent namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return ExitSetupFailed, fmt.Errorf("lockdown: make the mounts private: %w", err)
	}
	for _, p := range l.NoSuid {
		if err := bindSelf(p, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: remount %s nosuid,nodev: %w", p, err)
		}
	}
	for _, b := range l.Binds {
		var flags uintptr
		if b.ReadOnly {
			flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV
		}
		if err := bindSelf(b.Path, flags); err != nil {
			what := "pin"
			if b.ReadOnly {
				what = "make read-only"
			}
			return ExitSetupFailed, fmt.Errorf("lockdown: %s %s: %w", what, b.Path, err)
		}
	}
	if l.DropCaps {
		if err := dropPrivileges(); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return ExitNotFound, fmt.Errorf("start %q: %w", argv[0], err)
	}
	if !filepath.IsAbs(path) {
		if path, err = filepath.Abs(path); err != nil {
			return ExitCannotInvoke, err
		}
	}
	err = syscall.Exec(path, argv, os.Environ())
	return ExitCannotInvoke, fmt.Errorf("start %q: %w", argv[0], err)
}

// bindSelf binds p onto itself and, when add is not zero, remounts that
// bind with add on top of the flags it has (a remount must repeat the
// flags it keeps, and may not clear those a user namespace locked).
func bindSelf(p string, add uintptr) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if add == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	keep := uintptr(st.Flags) & (unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC |
		unix.ST_NOATIME | unix.ST_NODIRATIME | unix.ST_RELATIME)
	return unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|keep|add, "")
}

// dropPrivileges sets no_new_privs and empties the bounding, ambient and
// inheritable capability sets; the exec that follows then leaves the
// command with no capability, even as uid 0.
func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear the ambient capabilities: %w", err)
	}
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				break // past the kernel's last capability
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read the capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear the inheritable capabilities: %w", err)
	}
	return nil
}

package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockdownCommand returns the argv and process attributes that start argv
// through bottle guest's LockdownFlag, in a new mount namespace and a new
// PID namespace: as root (the smolvm workload) plain ones; as anyone else
// a user namespace too, mapping only the caller's uid and gid, so that
// the mounts work without privilege and grant nothing outside it.
//
// The process started is pid 1 of its PID namespace (see ExecLocked):
// when it dies, the kernel kills every process the command started,
// those in sessions of their own included, so stopping it stops all of
// the agent; and the command sees no process outside, bottle guest's
// included, to signal or trace.
func lockdownCommand(l Lockdown, argv []string) ([]string, *syscall.SysProcAttr, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find bottle's own executable: %w", err)
	}
	attr := &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		attr.Cloneflags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID
	} else {
		// The caller is root of the new namespace: capabilities there
		// survive the exec into bottle guest's lockdown only for uid 0.
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	return append([]string{exe, "guest", LockdownFlag, l.String(), "--"}, argv...), attr, nil
}

// lockdownPipesEnv, set to 1 in the lockdown's environment, says that it
// has two pipes from bottle guest: descriptor 3, the read end of link,
// whose write end only bottle guest holds, so that its end (EOF) means
// bottle guest is gone; descriptor 4, the write end of ready, closed once
// pid 1 catches the signals bottle guest passes on.
const lockdownPipesEnv = "BOTTLE_LOCKDOWN_PIPES"

// lockdownPipes are bottle guest's ends of the two pipes.
type lockdownPipes struct {
	linkR, linkW, readyR, readyW *os.File
	ready                        chan struct{}
}

func newLockdownPipes() (*lockdownPipes, error) {
	p := &lockdownPipes{ready: make(chan struct{})}
	var err error
	if p.linkR, p.linkW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("lockdown: %w", err)
	}
	if p.readyR, p.readyW, err = os.Pipe(); err != nil {
		p.linkR.Close()
		p.linkW.Close()
		return nil, fmt.Errorf("lockdown: %w", err)
	}
	go func() {
		var b [1]byte
		p.readyR.Read(b[:]) // EOF: closed by pid 1, or it exited
		close(p.ready)
	}()
	return p, nil
}

// child returns the child's ends, descriptors 3 and 4 in order.
func (p *lockdownPipes) child() []*os.File { return []*os.File{p.linkR, p.readyW} }

// started closes the child's ends in bottle guest once the child has
// them: ready reads EOF when the child closes its end.
func (p *lockdownPipes) started() {
	p.linkR.Close()
	p.readyW.Close()
}

// goAhead tells the child the terminal is its own (or there is none).
func (p *lockdownPipes) goAhead() { p.linkW.Write([]byte{1}) }

// close closes every end; linkW, whose closing tells the child that
// bottle guest is gone, only when the child is.
func (p *lockdownPipes) close() {
	p.linkR.Close()
	p.readyW.Close()
	p.linkW.Close()
	p.readyR.Close()
}

// takePipes reads lockdownPipesEnv: it starts watching link, whose first
// byte says bottle guest has handed this process the terminal (or has
// none to hand over) and whose end means bottle guest is gone, on which
// it exits. It returns ready's write end and a channel closed on that
// first byte; without pipes, nil and a closed channel.
func takePipes() (*os.File, <-chan struct{}) {
	goAhead := make(chan struct{})
	if os.Getenv(lockdownPipesEnv) != "1" {
		close(goAhead)
		return nil, goAhead
	}
	os.Unsetenv(lockdownPipesEnv)
	link, ready := os.NewFile(3, "link"), os.NewFile(4, "ready")
	go func() {
		var b [1]byte
		if n, _ := link.Read(b[:]); n == 1 {
			close(goAhead)
			link.Read(b[:])
		}
		// bottle guest is gone: so is pid 1, and with it everything in
		// its PID namespace.
		os.Exit(ExitSetupFailed)
	}()
	return ready, goAhead
}

// swallowedSignals are the signals, beyond ForwardedSignals, that pid 1
// catches only not to die of them: a process of the command can send
// them to pid 1 (those of a program fault, when sent with kill, can be
// caught too).
var swallowedSignals = []os.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE,
	syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV,
	syscall.SIGILL, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGSTKFLT,
	syscall.SIGPWR, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP}

// stopSignals are the ForwardedSignals that stop the command.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// ExecLocked applies l to the calling process, pid 1 of the PID namespace
// lockdownCommand made, then runs argv (found on PATH) as its only child
// and waits for it, reaping every orphan meanwhile, as an init does. It
// returns argv's exit code (128+N when signal N killed it); when pid 1
// exits, the kernel kills what argv left running. Errors come with
// ExitSetupFailed when the lockdown cannot be applied (nothing runs
// unprotected), ExitNotFound or ExitCannotInvoke when argv cannot run.
//
// The command starts in the directory it was given, entered again once
// the lockdown's mounts are made: a directory entered before them would
// be the one under the binds, from which relative paths never cross them.
func ExecLocked(l Lockdown, argv []string) (int, error) {
	if len(argv) == 0 {
		return ExitSetupFailed, errors.New("no command to run: give it after --")
	}
	// First of all, catch the signals bottle guest passes on: pid 1 drops
	// a signal it has no handler for, and Go's runtime would exit of one
	// it was not told to catch. Then say so. A stop also lands in stopc,
	// which nothing else fills: sigc may fill up with window resizes
	// during the setup, and a full channel drops what comes next.
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, ForwardedSignals...)
	stopc := make(chan os.Signal, 1)
	signal.Notify(stopc, stopSignals...)
	// The command may send pid 1 any signal; those it would die of
	// otherwise (Go's runtime exits 2 on them) are caught and dropped, so
	// the exit code stays the command's own.
	swallowed := make(chan os.Signal, 8)
	signal.Notify(swallowed, swallowedSignals...)
	go func() {
		for range swallowed {
		}
	}()
	ready, goAhead := takePipes()
	if ready != nil {
		ready.Close()
	}
	runtime.LockOSThread()
	// Nothing done here may reach the parent namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return ExitSetupFailed, fmt.Errorf("lockdown: make the mounts private: %w", err)
	}
	if os.Getpid() != 1 {
		return ExitSetupFailed, errors.New("lockdown: not the first process of a PID namespace of its own")
	}
	// A /proc of this PID namespace: the command sees its own processes
	// only.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return ExitSetupFailed, fmt.Errorf("lockdown: mount /proc for the command's PID namespace: %w", err)
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
	var uid, gid int = -1, -1
	if l.User != "" {
		var err error
		if uid, gid, err = parseUser(l.User); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
		if hu, hg, ok := mappedRoot(); ok && hu == uid && hg == gid {
			// In the user namespace lockdownCommand made for an
			// unprivileged caller, root is that very user outside.
			uid, gid = 0, 0
		}
		if err := identity(uid, gid, l.Home); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	if l.DropCaps {
		if err := closeKernel(); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	// Every mount is made: enter the working directory again, through
	// them. Its name comes from the kernel: os.Getwd would take $PWD,
	// and a $PWD of /proc/self/cwd names the directory under the binds.
	wd, err := syscall.Getwd()
	if err == nil {
		err = os.Chdir(wd)
	}
	if err != nil {
		return ExitSetupFailed, fmt.Errorf("lockdown: enter the working directory again: %w", err)
	}
	if l.DropCaps {
		if err := dropPrivileges(); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	if uid >= 0 {
		// Go changes the ids of every thread (syscall.AllThreadsSyscall).
		if err := syscall.Setgroups([]int{gid}); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: set groups: %w", err)
		}
		if err := syscall.Setgid(gid); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: set gid %d: %w", gid, err)
		}
		if err := syscall.Setuid(uid); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: set uid %d: %w", uid, err)
		}
		// A change of uid clears the parent-death signal bottle guest
		// gave this process (on this thread, locked above): set it
		// again, or pid 1 and the command would outlive bottle guest.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: set the parent-death signal: %w", err)
		}
		if l.Home != "" {
			os.Setenv("HOME", l.Home)
			os.Setenv("USER", "bottle")
			os.Setenv("LOGNAME", "bottle")
		}
	}
	if l.HomeSeed != "" {
		if err := SeedHome(l.HomeSeed, os.Getenv("HOME")); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	if l.DropCaps {
		// Last: the filter applies to this process too.
		if err := denySetuidModes(); err != nil {
			return ExitSetupFailed, fmt.Errorf("lockdown: %w", err)
		}
	}
	// The terminal, if any, is this process's now (see runChild).
	<-goAhead
	// A stop that came during the setup: the command never runs. What
	// else came (resizes) is past.
	select {
	case sig := <-stopc:
		return 128 + int(sig.(syscall.Signal)), nil
	default:
	}
	signal.Stop(stopc)
	for len(sigc) > 0 {
		<-sigc
	}
	return runInit(argv, sigc)
}

// runInit runs argv as the child of this process, pid 1 of its PID
// namespace, and returns its exit code, reaping every other process that
// ends meanwhile.
//
// argv runs in a process group of its own, the terminal's foreground
// group when pid 1 owns the terminal, as the command of a bottle guest
// without a lockdown does: an interactive shell, which makes a group of
// its own when it does not lead one, stays where signals reach it. The
// signals bottle guest passes on reach pid 1's group, so pid 1 passes
// what it catches on sigc to argv's group; it never dies of them (a
// caught signal, unlike an ignored one, is the default again in argv
// after the exec, so its shell can trap it).
func runInit(argv []string, sigc chan os.Signal) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return ExitNotFound, fmt.Errorf("start %q: %w", argv[0], err)
	}
	if !filepath.IsAbs(path) {
		if path, err = filepath.Abs(path); err != nil {
			return ExitCannotInvoke, err
		}
	}
	// A descriptor this process inherited was opened outside the
	// lockdown's mount namespace (a directory's reaches past every
	// bind): the command gets its stdio only.
	if err := closeInherited(); err != nil {
		return ExitSetupFailed, fmt.Errorf("lockdown: close inherited descriptors: %w", err)
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if fd, ok := ownedTerminal(os.Stdin); ok {
		sys.Foreground, sys.Ctty = true, fd
	}
	p, err := os.StartProcess(path, argv, &os.ProcAttr{Env: os.Environ(), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: sys})
	if err != nil {
		return ExitCannotInvoke, fmt.Errorf("start %q: %w", argv[0], err)
	}
	go func() {
		for sig := range sigc {
			_ = syscall.Kill(-p.Pid, sig.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ExitSetupFailed, fmt.Errorf("wait for %q: %w", argv[0], err)
		}
		if pid != p.Pid {
			continue // an orphan of the command's, reaped
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}

// closeInherited marks every descriptor above stderr close-on-exec, so
// that no exec passes one on.
func closeInherited() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	// Before Linux 5.11.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
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

// parseUser reads "UID:GID".
func parseUser(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("user %q: want UID:GID", s)
	}
	return uid, gid, nil
}

// identity gives uid and gid a passwd and group entry named bottle, bound
// read-only over the image's, and home, a private tmpfs they own. The
// files live on a tmpfs of their own, mounted in a temporary directory
// and detached once they are bound.
func identity(uid, gid int, home string) error {
	os.MkdirAll(os.TempDir(), 0o1777) // a minimal image may have none
	tmp, err := os.MkdirTemp("", "bottle-identity")
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp)
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("identity: mount a tmpfs: %w", err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	shell := "/bin/sh"
	if home == "" {
		home = "/"
	}
	entries := map[string]string{
		"passwd": withEntry(string(passwd), uid, fmt.Sprintf("bottle:x:%d:%d:bottle agent:%s:%s", uid, gid, home, shell)),
		"group":  withEntry(string(group), gid, fmt.Sprintf("bottle:x:%d:", gid)),
	}
	for name, body := range entries {
		f := filepath.Join(tmp, name)
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		if err := bindFile(f, "/etc/"+name); err != nil {
			return fmt.Errorf("identity: bind /etc/%s: %w", name, err)
		}
	}
	if home != "/" {
		if err := os.MkdirAll(home, 0o755); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		opts := fmt.Sprintf("mode=0700,uid=%d,gid=%d", uid, gid)
		if err := unix.Mount("tmpfs", home, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("identity: mount HOME %s: %w", home, err)
		}
	}
	return nil
}

// withEntry returns the passwd or group file body with line for id,
// replacing a line that has id already (the third field).
func withEntry(body string, id int, line string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		f := strings.Split(l, ":")
		if l == "" || (len(f) > 2 && f[2] == strconv.Itoa(id)) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(append(out, line), "\n") + "\n"
}

// bindFile binds src read-only over dst, which must exist.
func bindFile(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
}

// readOnlyProc and maskedProc follow the paths runc makes read-only and
// masks by default in a container (docker's defaults, which smolvm's
// privileged workload does not get: crates/smolvm-agent/src/oci.rs:572-590
// at v1.8.1 sets them only when unprivileged).
var (
	readOnlyProc = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	maskedProc   = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
	// devNodes are the device nodes the new /dev holds.
	devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}
)

// closeKernel closes the interfaces uid 0 may write without a
// capability: /proc/sys and its like become read-only, sensitive files
// are masked, /sys is read-only, and /dev is replaced by a fresh tmpfs
// holding only the harmless nodes, the terminals and shm, so no disk or
// other device of the guest can be opened.
func closeKernel() error {
	for _, p := range readOnlyProc {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := bindSelf(p, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	for _, p := range maskedProc {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	if _, err := os.Stat("/sys/kernel"); err == nil {
		if err := readOnlyTree("/sys"); err != nil {
			return fmt.Errorf("make /sys read-only: %w", err)
		}
	}
	return freshDev()
}

// readOnlyTree remounts root and every mount under it read-only.
func readOnlyTree(root string) error {
	if err := bindSelf(root, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
		return err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], root+"/") {
			continue
		}
		var st unix.Statfs_t
		if unix.Statfs(f[4], &st) != nil {
			continue
		}
		keep := uintptr(st.Flags) & (unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_NOATIME | unix.ST_NODIRATIME | unix.ST_RELATIME)
		if err := unix.Mount("", f[4], "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|keep, ""); err != nil {
			return fmt.Errorf("%s: %w", f[4], err)
		}
	}
	return nil
}

// freshDev replaces /dev with a tmpfs holding devNodes (bound from the
// old /dev), the old /dev/pts (the agent's terminal lives there), ptmx,
// an shm tmpfs and the usual links.
func freshDev() error {
	os.MkdirAll(os.TempDir(), 0o1777) // a minimal image may have none
	tmp, err := os.MkdirTemp("", "bottle-dev")
	if err != nil {
		return fmt.Errorf("new /dev: %w", err)
	}
	defer os.Remove(tmp)
	// nodev: the nodes are bind mounts of their own.
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("new /dev: %w", err)
	}
	for _, n := range devNodes {
		src := "/dev/" + n
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(tmp, n)
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return fmt.Errorf("new /dev: %w", err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("new /dev: bind %s: %w", src, err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("new /dev: %w", err)
		}
	}
	if _, err := os.Stat("/dev/pts/ptmx"); err == nil {
		if err := unix.Mount("/dev/pts", filepath.Join(tmp, "pts"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("new /dev: bind /dev/pts: %w", err)
		}
	}
	if err := unix.Mount("tmpfs", filepath.Join(tmp, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777"); err != nil {
		return fmt.Errorf("new /dev: shm: %w", err)
	}
	for name, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("new /dev: %w", err)
		}
	}
	if err := unix.Mount(tmp, "/dev", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("new /dev: move it over /dev: %w", err)
	}
	return nil
}

// mappedRoot reports the host uid and gid that root of this process's user
// namespace is, when it is a namespace mapping only root (the one
// lockdownCommand makes for an unprivileged caller).
func mappedRoot() (uid, gid int, ok bool) {
	read := func(f string) (int, bool) {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, false
		}
		fs := strings.Fields(string(b))
		if len(fs) != 3 || fs[0] != "0" || fs[2] != "1" {
			return 0, false
		}
		n, err := strconv.Atoi(fs[1])
		return n, err == nil && n != 0
	}
	u, ok1 := read("/proc/self/uid_map")
	g, ok2 := read("/proc/self/gid_map")
	return u, g, ok1 && ok2
}

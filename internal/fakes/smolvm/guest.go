//go:build linux

package smolvm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The stand-in runs copies of itself in two hidden roles, selected by
// roleEnv (the copy is /proc/self/exe with argv[0] "smolvm", so a
// testscript binary dispatches it to Main as well):
//
//   - anchor: one per running machine, started by `machine start` in new
//     mount and network namespaces. It stands in for the VM: it builds the
//     guest's file system view, holds the namespaces every guest process
//     joins, and relays --mount-socket connections.
//   - guest: started for the workload, init commands and every exec. It
//     joins the anchor's network namespace, chroots into the anchor's
//     guest view, resolves the command as crun would and execs it, so the
//     command's exit status and signals are its own.
const (
	roleEnv   = "FAKE_SMOLVM_ROLE"
	paramsEnv = "FAKE_SMOLVM_PARAMS"
)

// needRootMsg is printed (exit 3) when a step that runs guest processes is
// asked of a stand-in that is not root: namespaces, mounts and chroot need
// it.
const needRootMsg = "fake smolvm: emulating the guest (namespaces, mounts, chroot) needs root; run as root or skip this step"

// anchorParams tell an anchor what to build.
type anchorParams struct {
	// Root is the host directory the guest root is mounted on (inside the
	// anchor's mount namespace only), Scratch a spare directory for
	// rearranging mounts.
	Root, Scratch string
	Volumes       []volumeSpec
	Sockets       []socketSpec
}

type volumeSpec struct {
	Host, Guest string
	ReadOnly    bool
}

type socketSpec struct{ Host, Guest string }

// guestParams tell a guest helper what to run.
type guestParams struct {
	Anchor int
	Root   string
	Argv   []string
	Env    []string
	Dir    string
}

// runRole runs a hidden role and returns the exit status (a guest that
// execs never returns).
func runRole(role string) int {
	params := os.Getenv(paramsEnv)
	os.Unsetenv(roleEnv)
	os.Unsetenv(paramsEnv)
	status := os.NewFile(3, "status")
	switch role {
	case "anchor":
		var p anchorParams
		if err := json.Unmarshal([]byte(params), &p); err != nil {
			fmt.Fprintf(status, "anchor parameters: %v\n", err)
			return exitFake
		}
		return runAnchor(&p, status)
	case "guest":
		var p guestParams
		if err := json.Unmarshal([]byte(params), &p); err != nil {
			fmt.Fprintf(status, "guest parameters: %v\n", err)
			return exitFake
		}
		return runGuest(&p, status)
	}
	fmt.Fprintf(os.Stderr, "fake smolvm: unknown role %q\n", role)
	return exitFake
}

// selfCommand returns a command that runs this program in role.
func selfCommand(role string, params any) (*exec.Cmd, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"smolvm"}
	cmd.Env = []string{roleEnv + "=" + role, paramsEnv + "=" + string(b)}
	return cmd, nil
}

// runAnchor builds the guest view and then stays, relaying sockets, until
// killed. It reports "ok" or an error on status.
//
// The guest view stands in for the image's root file system, which the
// stand-in never unpacks: a tmpfs at Root holding a bind mount of each of
// the host's top-level entries, except a fresh proc, a fresh sysfs (so
// /sys/class/net shows this network namespace: lo only), a fresh tmpfs
// /run and the host's /dev. On it go the machine's volumes at their guest
// paths, read-only when asked (the OCI bind mounts of
// crates/smolvm-agent/src/main.rs:3353-3360@v1.8.1, options of
// crates/smolvm-agent/src/oci.rs:611-620@v1.8.1), then each mount-socket's
// listener (publish_socket.rs:116-136@v1.8.1 mounts them after the
// volumes). Nothing is ever created on the host's file systems: a guest
// path that needs a directory or node where a host directory is bound gets
// that bind replaced by a tmpfs mirroring the directory's entries (each
// bound back), as bubblewrap does.
func runAnchor(p *anchorParams, status *os.File) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(status, format+"\n", a...)
		status.Close()
		return exitFake
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("make mounts private: %v", err)
	}
	// libkrun's init, which boots smolvm's VM, sets lo up (init/init.c
	// main: SIOCSIFFLAGS IFF_UP on "lo", libkrun commit a137a2f5); a
	// machine without --net has no other interface.
	if err := loopbackUp(); err != nil {
		return fail("bring lo up: %v", err)
	}
	a := &anchor{root: p.Root, scratch: p.Scratch, owned: map[string]bool{}}
	if err := a.buildRoot(); err != nil {
		return fail("build guest root: %v", err)
	}
	targets := make([]int, 0, len(p.Volumes))
	for i := range p.Volumes {
		targets = append(targets, i)
	}
	// Parents before children, so a nested volume lands inside its parent.
	sort.SliceStable(targets, func(i, j int) bool {
		return depth(p.Volumes[targets[i]].Guest) < depth(p.Volumes[targets[j]].Guest)
	})
	for _, i := range targets {
		v := p.Volumes[i]
		if err := a.mountVolume(v); err != nil {
			return fail("volume %s:%s: %v", v.Host, v.Guest, err)
		}
	}
	var listeners []net.Listener
	for _, s := range p.Sockets {
		ln, err := a.listenSocket(s)
		if err != nil {
			return fail("mount-socket %s:%s: %v", s.Host, s.Guest, err)
		}
		listeners = append(listeners, ln)
		go serveMountSocket(ln, s.Host)
	}
	fmt.Fprintln(status, "ok")
	status.Close()
	for {
		unix.Pause()
	}
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

type anchor struct {
	root, scratch string
	// owned holds the mount points of tmpfs mounts the anchor made, where
	// it may create entries.
	owned    map[string]bool
	scratchN int
}

func (a *anchor) buildRoot() error {
	for _, dir := range []string{a.root, a.scratch} {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
		// Unbindable: a recursive bind of a host directory above it (the
		// state directory may lie under /tmp) must not copy it.
		if err := unix.Mount("", dir, "", unix.MS_UNBINDABLE, ""); err != nil {
			return err
		}
	}
	a.owned[a.root] = true
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, de := range entries {
		names[de.Name()] = true
	}
	for _, n := range []string{"proc", "sys", "run", "dev"} {
		names[n] = true
	}
	for name := range names {
		dst := filepath.Join(a.root, name)
		switch name {
		case "proc":
			err = mkdirMount(dst, "proc", "proc", 0, "")
		case "sys":
			err = mkdirMount(dst, "sysfs", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		case "run":
			if err = mkdirMount(dst, "tmpfs", "tmpfs", 0, "mode=0755"); err == nil {
				a.owned[dst] = true
			}
		default:
			err = bindEntry(filepath.Join("/", name), dst)
		}
		if err != nil {
			return fmt.Errorf("/%s: %w", name, err)
		}
	}
	return nil
}

func mkdirMount(dst, source, fstype string, flags uintptr, data string) error {
	if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return unix.Mount(source, dst, fstype, flags, data)
}

// bindEntry recreates src (a directory, file, other node or symlink) at
// dst, which lies on a tmpfs the anchor owns, by a recursive bind mount (a
// symlink is copied).
func bindEntry(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
			return err
		}
	default:
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return nil
}

// mountInfo lists the anchor's mount points, in mount order.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMountinfo(fields[4]))
		}
	}
	return out, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// coveringMount returns the mount point of the topmost mount that holds
// path.
func coveringMount(path string) (string, error) {
	mps, err := mountPoints()
	if err != nil {
		return "", err
	}
	best := ""
	for _, mp := range mps {
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best = mp
		}
	}
	return best, nil
}

// writableDir makes dir, an existing directory of the guest view, one on
// which the anchor may create entries without touching a host file
// system: while the mount holding it is a bind of host content, that bind
// is replaced by a tmpfs mirror.
func (a *anchor) writableDir(dir string) error {
	for range 64 {
		mp, err := coveringMount(dir)
		if err != nil {
			return err
		}
		if a.owned[mp] {
			return nil
		}
		if mp == a.root || !strings.HasPrefix(mp, a.root+"/") {
			return fmt.Errorf("%s is not inside the guest root", dir)
		}
		if err := a.mirror(mp); err != nil {
			return fmt.Errorf("mirror %s: %w", strings.TrimPrefix(mp, a.root), err)
		}
	}
	return fmt.Errorf("%s: too many nested mounts", dir)
}

// mirror replaces the mount at mp by a tmpfs holding the same entries, each
// bound back from the mount's current content (so mounts already made
// below mp survive).
func (a *anchor) mirror(mp string) error {
	a.scratchN++
	held := filepath.Join(a.scratch, strconv.Itoa(a.scratchN))
	if err := os.Mkdir(held, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(mp, held, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(held, &st); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, fmt.Sprintf("mode=%o,uid=%d,gid=%d", st.Mode&0o7777, st.Uid, st.Gid)); err != nil {
		return err
	}
	a.owned[mp] = true
	entries, err := os.ReadDir(held)
	if err != nil {
		return err
	}
	for _, de := range entries {
		if err := bindEntry(filepath.Join(held, de.Name()), filepath.Join(mp, de.Name())); err != nil {
			return err
		}
	}
	return unix.Unmount(held, unix.MNT_DETACH)
}

// ensureDir makes the guest directory guest exist, creating missing
// components only on tmpfs mounts the anchor owns.
func (a *anchor) ensureDir(guest string) (string, error) {
	cur := a.root
	for _, c := range strings.Split(strings.Trim(filepath.Clean(guest), "/"), "/") {
		if c == "" {
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return "", fmt.Errorf("%s exists and is not a directory", strings.TrimPrefix(next, a.root))
		case errors.Is(err, os.ErrNotExist):
			if err := a.writableDir(cur); err != nil {
				return "", err
			}
			if err := os.Mkdir(next, 0o755); err != nil {
				return "", err
			}
		default:
			return "", err
		}
		cur = next
	}
	return cur, nil
}

func (a *anchor) mountVolume(v volumeSpec) error {
	dst, err := a.ensureDir(v.Guest)
	if err != nil {
		return err
	}
	if err := unix.Mount(v.Host, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if v.ReadOnly {
		return unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
	}
	return nil
}

// listenSocket binds the guest end of a --mount-socket at its guest path
// with mode 0777, as publish_socket.rs:189-219@v1.8.1 makes its listener
// world-accessible.
func (a *anchor) listenSocket(s socketSpec) (net.Listener, error) {
	dir, err := a.ensureDir(filepath.Dir(s.Guest))
	if err != nil {
		return nil, err
	}
	if err := a.writableDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, filepath.Base(s.Guest))
	if _, err := os.Lstat(path); err == nil {
		// A mirrored entry bound from the host: take it out of the view.
		_ = unix.Unmount(path, unix.MNT_DETACH)
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// The host path of the guest view can be longer than a socket address
	// holds (108 bytes): bind by a name relative to the directory, which the
	// anchor (one goroutine sets it up) makes its working directory.
	if err := unix.Chdir(dir); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", filepath.Base(s.Guest))
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveMountSocket relays each guest connection to a fresh connection to
// the host socket, as serve_mount does over vsock
// (publish_socket.rs:277-313@v1.8.1), mirroring each half-close
// (publish_socket.rs:315-387@v1.8.1). A host socket nobody listens on
// drops the guest connection (publish_socket.rs:297-301).
func serveMountSocket(ln net.Listener, host string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			h, err := net.Dial("unix", host)
			if err != nil {
				return
			}
			defer h.Close()
			done := make(chan struct{}, 2)
			pump := func(dst, src net.Conn) {
				io.Copy(dst, src)
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				done <- struct{}{}
			}
			go pump(h, c)
			go pump(c, h)
			<-done
			<-done
		}()
	}
}

// runGuest joins the anchor's guest and becomes the command. Before the
// exec it resolves the executable the way crun does (see lookPath); a
// failure is written to status instead.
func runGuest(p *guestParams, status *os.File) int {
	runtime.LockOSThread()
	fail := func(msg string) int {
		fmt.Fprint(status, msg)
		status.Close()
		return exitFake
	}
	unix.CloseOnExec(3)
	// nsenter has put this process in the anchor's mount and network
	// namespaces (see startGuest): a Go program cannot join a mount
	// namespace itself once it has threads, and a process whose root is in
	// another mount namespace could not mount anything in the guest view,
	// as bottle's lockdown in the guest must.
	if err := unix.Chroot(fmt.Sprintf("/proc/%d/root%s", p.Anchor, p.Root)); err != nil {
		return fail("setup: chroot into the guest view: " + err.Error())
	}
	if err := unix.Chdir("/"); err != nil {
		return fail("setup: " + err.Error())
	}
	path, msg := lookPath(p.Argv[0], p.Dir, envValue(p.Env, "PATH"))
	if msg != "" {
		return fail("crun: " + msg)
	}
	// libcrun_safe_chdir, crun 1.14.4 src/libcrun/linux.c:5731-5738.
	if err := unix.Chdir(p.Dir); err != nil {
		return fail(fmt.Sprintf("crun: chdir to `%s`: %s", p.Dir, muslStrerror(err)))
	}
	err := syscall.Exec(path, p.Argv, p.Env)
	return fail(fmt.Sprintf("crun: exec: %s", muslStrerror(err)))
}

// lookPath is crun's find_executable and the checks around it, which
// smolvm's guest runs for every workload (`crun create`) and exec (`crun
// exec`): crun 1.14.4 src/libcrun/utils.c find_executable/check_access and
// src/libcrun/container.c:3299-3370. A name holding a "/" (or starting
// with ".") is taken relative to the working directory; otherwise each
// PATH entry is tried. A candidate must be executable (eaccess X_OK) and
// a regular file. It returns the path, or crun's message.
func lookPath(name, cwd, pathEnv string) (string, string) {
	check := func(p string) error {
		if err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return unix.EPERM
		}
		return nil
	}
	notFound := fmt.Sprintf("executable file `%s` not found in $PATH: No such file or directory", name)
	if name == "" {
		return "", notFound
	}
	if strings.HasPrefix(name, ".") || !strings.HasPrefix(name, "/") && strings.Contains(name, "/") {
		name = "/" + strings.TrimPrefix(cwd, "/") + "/" + name
		name = strings.Replace(name, "//", "/", 1)
	}
	var lastErr error = unix.ENOENT
	if strings.HasPrefix(name, "/") {
		lastErr = check(name)
		if lastErr == nil {
			return name, ""
		}
	} else {
		for _, dir := range strings.Split(pathEnv, ":") {
			if dir == "" {
				dir = "."
			}
			cand := dir + "/" + name
			err := check(cand)
			if err == nil {
				return cand, ""
			}
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			lastErr = err
		}
	}
	if errors.Is(lastErr, unix.ENOENT) {
		return "", notFound
	}
	return "", "open executable: " + muslStrerror(lastErr)
}

// muslStrerror renders an errno as the guest's musl libc does (crun in
// smolvm's Alpine guest prints strerror).
func muslStrerror(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	switch errno {
	case unix.ENOENT:
		return "No such file or directory"
	case unix.EACCES:
		return "Permission denied"
	case unix.EPERM:
		return "Operation not permitted"
	case unix.ENOTDIR:
		return "Not a directory"
	case unix.ENOEXEC:
		return "Exec format error"
	}
	s := errno.Error()
	return strings.ToUpper(s[:1]) + s[1:]
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// guestRun describes one process to start in a machine's guest.
type guestRun struct {
	argv []string
	env  []string
	dir  string
	// stdin, stdout, stderr: nil means /dev/null.
	stdin          *os.File
	stdout, stderr *os.File
	// ctty makes stdin the controlling terminal (a pty slave).
	ctty bool
	// detach: the process outlives this stand-in; it is not waited for.
	detach bool
	// dieWithParent: SIGKILL the process when this stand-in dies.
	dieWithParent bool
}

// startGuest starts r in m's guest. It returns the running process, or the
// message the guest helper reported before it could exec (crun's words).
func startGuest(m *machineRecord, r *guestRun) (*exec.Cmd, string, error) {
	cmd, err := selfCommand("guest", &guestParams{Anchor: m.AnchorPID, Root: m.GuestRoot, Argv: r.argv, Env: r.env, Dir: r.dir})
	if err != nil {
		return nil, "", err
	}
	// The guest joins the anchor's mount and network namespaces through
	// nsenter(1), which calls setns(2) before it becomes this program: a
	// multithreaded Go process cannot join a mount namespace. It runs this
	// program by a link named smolvm, so that a test binary standing in
	// for smolvm (which dispatches on argv[0]) runs Main.
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	link := filepath.Join(filepath.Dir(m.GuestRoot), "smolvm")
	if err := os.Symlink(self, link); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, "", err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		// The caller's environment may have no PATH; util-linux's place.
		nsenter = "/usr/bin/nsenter"
		if _, serr := os.Stat(nsenter); serr != nil {
			return nil, "", fmt.Errorf("the stand-in runs guest processes with nsenter (util-linux): %w", err)
		}
	}
	cmd.Path = nsenter
	cmd.Args = []string{"nsenter", "--target", strconv.Itoa(m.AnchorPID), "--mount", "--net", "--", link}
	if r.stdin != nil {
		cmd.Stdin = r.stdin
	}
	if r.stdout != nil {
		cmd.Stdout = r.stdout
	}
	if r.stderr != nil {
		cmd.Stderr = r.stderr
	}
	// Its own session: terminal signals (^C) reach the caller, never the
	// guest, and the guest never reads the caller's terminal as a
	// background job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: r.ctty}
	if r.dieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer sr.Close()
	cmd.ExtraFiles = []*os.File{sw}
	if r.dieWithParent {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	err = cmd.Start()
	sw.Close()
	if err != nil {
		return nil, "", err
	}
	msg, _ := io.ReadAll(sr)
	if len(msg) > 0 {
		_ = cmd.Wait()
		return nil, strings.TrimSpace(string(msg)), nil
	}
	return cmd, "", nil
}

// startAnchor starts m's anchor and waits until its guest view is built.
func startAnchor(p *anchorParams) (int, error) {
	cmd, err := selfCommand("anchor", p)
	if err != nil {
		return 0, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	sr, sw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	cmd.ExtraFiles = []*os.File{sw}
	err = cmd.Start()
	sw.Close()
	if err != nil {
		return 0, fmt.Errorf("start the machine's anchor: %w", err)
	}
	line, _ := bufio.NewReader(sr).ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("build the guest view: %s", strings.TrimSpace(line))
	}
	pid := cmd.Process.Pid
	// Not waited for: the anchor outlives this process, like the VM.
	cmd.Process.Release()
	return pid, nil
}

// procStart returns a process's start time (field 22 of /proc/PID/stat)
// and whether it is alive (exists and is not a zombie).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return start, true
}

// anchorAlive reports whether m's anchor (the stand-in's VM) still runs.
func anchorAlive(m *machineRecord) bool {
	if m.AnchorPID <= 0 {
		return false
	}
	start, ok := procStart(m.AnchorPID)
	return ok && start == m.AnchorStart
}

// killMachine kills every process of m's guest — the workload, init and
// exec commands and anything they started, all of which live in the
// anchor's network namespace — and then the anchor, and waits until they
// are gone (or are zombies).
//
// A dying process leaves its network namespace (exit_task_namespaces)
// before it becomes a zombie, so it drops out of the namespace's members
// while still running its exit: every process killed is waited for by its
// PID and start time, not only until the namespace is empty.
func killMachine(m *machineRecord) error {
	if !anchorAlive(m) {
		return nil
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", m.AnchorPID))
	if err != nil {
		return fmt.Errorf("read the machine's network namespace: %w", err)
	}
	self := os.Getpid()
	killed := map[int]uint64{} // PID -> start time
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, pid := range netnsMembers(ns) {
			if pid == self {
				continue
			}
			if start, ok := procStart(pid); ok {
				killed[pid] = start
			}
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		left := 0
		for pid, start := range killed {
			if s, ok := procStart(pid); ok && s == start {
				left++
			} else {
				delete(killed, pid)
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes of the machine survived SIGKILL", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// netnsMembers lists the live processes whose network namespace is ns.
func netnsMembers(ns string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil || link != ns {
			continue
		}
		if _, alive := procStart(pid); alive {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// Cleanup kills the guests of every machine in the state directory, for
// test harnesses whose script may stop half-way.
func Cleanup(stateDir string) {
	st := &store{dir: stateDir}
	ms, err := st.list()
	if err != nil {
		return
	}
	for _, m := range ms {
		_ = killMachine(m)
	}
}

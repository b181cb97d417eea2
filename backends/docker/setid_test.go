package docker_test

import (
	"archive/tar"
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var (
	setidOnce sync.Once
	setidBin  string
	setidErr  error
)

// setidTools builds testdata/setid (static) once and copies it into the
// env's tools/ directory, which the profiles below mount read-only.
func setidTools(t *testing.T, e *env) {
	t.Helper()
	setidOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bottle-setid-")
		if err != nil {
			setidErr = err
			return
		}
		setidBin = filepath.Join(dir, "setid")
		cmd := exec.Command("go", "build", "-o", setidBin, "./testdata/setid")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			setidErr = &buildError{err, out}
		}
	})
	if setidErr != nil {
		t.Fatal(setidErr)
	}
	b, err := os.ReadFile(setidBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "tools", "setid"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

type buildError struct {
	err error
	out []byte
}

func (b *buildError) Error() string {
	return "build testdata/setid: " + b.err.Error() + "\n" + string(b.out)
}

// results reads the "NAME RESULT" lines of setid and of the shell steps.
func results(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// setIDFiles lists what under dir has the setuid or setgid bit.
func setIDFiles(t *testing.T, dir string) []string {
	t.Helper()
	var bad []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		fi, err := os.Lstat(p)
		if err == nil && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			bad = append(bad, p+" "+fi.Mode().String())
		}
		return nil
	})
	return bad
}

// TestAgentMakesNoSetIDFile: the agent (uid 0 when bottle runs as root)
// tries every way to leave a setuid or setgid file in the workspace, which
// a host user who runs it would run as the file's owner: chmod u+s and g+s
// and tar from the shell, then by raw syscalls chmod, fchmod, fchmodat,
// fchmodat2, creat, open, openat (also O_TMPFILE), mknod and mknodat with
// the bits, openat2 (its mode is out of seccomp's sight) and io_uring's
// IORING_OP_OPENAT. None may leave such a file on the host; ordinary mode
// changes (755, 644, 600, a sticky directory) still work.
func TestAgentMakesNoSetIDFile(t *testing.T) {
	e := newEnv(t)
	setidTools(t, e)
	ws := filepath.Join(e.dir, "ws")
	for _, d := range []string{ws, filepath.Join(ws, "raw"), filepath.Join(ws, "untar")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A tarball whose entries are setuid and setgid, as a repository's
	// release archive might be: tar, run as root, restores the modes.
	f, err := os.Create(filepath.Join(ws, "evil.tar"))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, h := range []*tar.Header{
		{Name: "tar-suid", Mode: 0o4755, Size: 3, Typeflag: tar.TypeReg},
		{Name: "tar-sgid", Mode: 0o2755, Size: 3, Typeflag: tar.TypeReg},
		{Name: "tar-sgid-dir/", Mode: 0o2755, Typeflag: tar.TypeDir},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x\n\n"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	profile := e.profile("setid.star", `
docker(image = "AGENT_IMAGE")
mount("ws", "/workspace")
mount("tools", "/tools", readonly = True)
`)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", `
cd /workspace
/tools/setid try /workspace/raw
step() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name ok"; else echo "$name failed"; fi; }
cp /bin/busybox sh-u+s; step sh-chmod-u+s chmod u+s sh-u+s
cp /bin/busybox sh-g+s; step sh-chmod-g+s chmod g+s sh-g+s
cp /bin/busybox sh-6755; step sh-chmod-6755 chmod 6755 sh-6755
step sh-mkdir-2755 mkdir -m 2755 dir-2755
mkdir dir-g+s; step sh-chmod-dir-g+s chmod g+s dir-g+s
if command -v install >/dev/null; then step sh-install-4755 install -m 4755 /bin/busybox sh-install; fi
tar -xf evil.tar -C untar 2>/dev/null; echo "sh-tar done"
cp /bin/busybox ok-755; step ok-sh-chmod-755 chmod 755 ok-755
echo x > ok-644; chmod 600 ok-644; step ok-sh-chmod-644 chmod 644 ok-644
true`)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	got := results(out)
	t.Logf("the agent's attempts:\n%s", out)

	// Every attempt is refused by the filter: EPERM, ENOSYS for openat2.
	for _, name := range []string{
		"chmod-suid", "chmod-sgid", "chmod-both", "fchmod-suid", "fchmodat-suid", "fchmodat-sgid",
		"fchmodat2-suid", "openat-suid", "openat-sgid", "openat-tmpfile-suid", "mknodat-suid",
		"mknodat-sgid", "chmod-legacy-suid", "chmod-legacy-sgid", "creat-suid", "open-suid",
		"open-sgid", "mknod-suid", "openat2-suid", "io_uring-suid",
		"sh-chmod-u+s", "sh-chmod-g+s", "sh-chmod-6755", "sh-chmod-dir-g+s",
	} {
		want := "EPERM"
		switch {
		case name == "openat2-suid":
			want = "ENOSYS"
		case strings.HasPrefix(name, "sh-"):
			want = "failed"
		}
		if r := got[name]; r != want && r != "skip" {
			t.Errorf("%s: %q, want %s", name, r, want)
		}
	}
	if _, ok := got["openat-tmpfile-link"]; ok {
		t.Errorf("an O_TMPFILE with the setuid bit was made and linked in")
	}
	// mkdir's mode never carries the bits (the kernel masks them), and
	// busybox then chmods, which fails: the directory is made without.
	if got["sh-mkdir-2755"] == "" || got["sh-tar"] == "" {
		t.Errorf("the shell steps did not all run:\n%s%s", out, stderr)
	}
	for _, name := range []string{
		"ok-openat-644", "ok-chmod-755", "ok-chmod-600", "ok-fchmodat-700", "ok-mknodat-640",
		"ok-mkdir-1777", "ok-chmod-1777", "ok-chmod-legacy-755", "ok-open-644", "ok-creat-600",
		"ok-sh-chmod-755", "ok-sh-chmod-644",
	} {
		if r := got[name]; r != "ok" && r != "skip" {
			t.Errorf("%s: %q, want ok: an ordinary mode change must work", name, r)
		}
	}
	// fchmodat2 is allowed where the daemon's libseccomp knows it, and
	// fails with ENOSYS (libc falls back to fchmodat) where it does not.
	if r := got["ok-fchmodat2-755"]; r != "ok" && r != "ENOSYS" {
		t.Errorf("ok-fchmodat2-755: %q, want ok or ENOSYS", r)
	}

	// What counts: the host sees no setuid or setgid file.
	if bad := setIDFiles(t, ws); len(bad) > 0 {
		t.Errorf("setuid or setgid files in the workspace on the host:\n%s", strings.Join(bad, "\n"))
	}
	for rel, want := range map[string]fs.FileMode{
		"ok-755":              0o755,
		"ok-644":              0o644,
		"raw/ok-chmod-755":    0o755,
		"raw/ok-chmod-600":    0o600,
		"raw/ok-openat-644":   0o644,
		"raw/ok-fchmodat-700": 0o700,
		"raw/ok-mknodat-640":  0o640,
		"raw/ok-mkdir-1777":   fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(ws, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if m := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid); m != want {
			t.Errorf("%s has mode %v on the host, want %v", rel, m, want)
		}
	}
}

// TestAgentMountsActNosuidNodev: the agent's bind mounts carry neither
// nosuid nor nodev (Docker adds no such flag to a bind mount:
// daemon/oci_linux.go:634-641@v20.10.24, :593-597@v28.5.2), yet both hold:
//
//   - nosuid: no-new-privileges makes the kernel ignore setuid and setgid
//     bits at exec (fs/exec.c, bprm_fill_uid), so a setuid-root file the
//     host left in the workspace runs with the agent's own uid;
//   - nodev: creating a device node needs CAP_MKNOD, which Docker grants by
//     default (oci/caps/defaults.go:10@v20.10.24) and --cap-drop ALL
//     removes; opening an existing node, made on the host, is refused by
//     the device cgroup, which denies every device (oci/defaults.go:129-133
//     @v20.10.24, :133-137@v28.5.2) but the harmless ones Docker and runc
//     list (null, zero, full, random, urandom, tty, console, ptmx, pts,
//     tun), kept for a non-privileged container by WithDevices
//     (daemon/oci_linux.go:871,924@v20.10.24, :849,906@v28.5.2).
//
// The device nodes are made on the host, so the test needs root.
func TestAgentMountsActNosuidNodev(t *testing.T) {
	e := newEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("making device nodes and a setuid-root file needs root")
	}
	setidTools(t, e)
	ws := filepath.Join(e.dir, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	// null is on the allow list; loop0 (block) and fuse (char) are not.
	// Each is checked only if the host itself can open it.
	devs := []struct {
		name       string
		mode, dev  uint32
		allowed    bool
		hostOpened bool
	}{
		{"null", syscall.S_IFCHR, 1<<8 | 3, true, false},
		{"loop0", syscall.S_IFBLK, 7<<8 | 0, false, false},
		{"fuse", syscall.S_IFCHR, 10<<8 | 229, false, false},
	}
	for i, d := range devs {
		p := filepath.Join(ws, "dev", d.name)
		if err := syscall.Mknod(p, d.mode|0o666, int(d.dev)); err != nil {
			t.Fatalf("mknod %s: %v", p, err)
		}
		os.Chmod(p, 0o666)
		if fd, err := syscall.Open(p, syscall.O_RDONLY, 0); err == nil {
			syscall.Close(fd)
			devs[i].hostOpened = true
		} else {
			t.Logf("the host cannot open %s either (%v): not checked", d.name, err)
		}
	}
	// A setuid-root program that prints its euid, in a directory of its
	// own (bottle refuses a writable mount holding one the agent could
	// rewrite).
	b, err := os.ReadFile(filepath.Join(e.dir, "tools", "setid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "suidro"), 0o755); err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(e.dir, "suidro", "suid-euid")
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(suid, 0o4755); err != nil { // os.Chmod takes fs.ModeSetuid, not 04000
		t.Fatal(err)
	}

	// As uid 0 without capabilities: open each node, make one.
	root := e.profile("nodev.star", `
docker(image = "AGENT_IMAGE")
mount("ws", "/workspace")
mount("tools", "/tools", readonly = True)
`)
	out, stderr, code := e.run("start", "--yes", root, "--", "sh", "-c",
		`grep " /workspace " /proc/self/mountinfo; for d in null loop0 fuse; do printf "%s " $d; /tools/setid open /workspace/dev/$d | cut -d" " -f2; done; /tools/setid mknod /workspace/dev/made`)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	t.Logf("the agent's view:\n%s", out)
	got := results(out)
	for _, d := range devs {
		switch {
		case !d.hostOpened:
		case d.allowed && got[d.name] != "ok":
			t.Errorf("%s (allowed by the device cgroup): %q, want ok", d.name, got[d.name])
		case !d.allowed && got[d.name] != "EPERM":
			t.Errorf("ESCAPE: the agent opened the host's %s device through the workspace: %q, want EPERM", d.name, got[d.name])
		}
	}
	if got["mknod-chr"] != "EPERM" {
		t.Errorf("mknod of a character device: %q, want EPERM", got["mknod-chr"])
	}
	if _, err := os.Lstat(filepath.Join(ws, "dev", "made")); err == nil {
		t.Errorf("the agent made a device node in the workspace")
	}

	// As another user: the setuid-root file runs with that user's euid.
	other := e.profile("nosuid.star", `
docker(image = "AGENT_IMAGE", user = "1000:1000")
mount("ws", "/workspace")
mount("suidro", "/suidro", readonly = True)
`)
	out, stderr, code = e.run("start", "--yes", other, "--", "/suidro/suid-euid", "euid")
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	if strings.TrimSpace(out) != "euid 1000" {
		t.Errorf("ESCAPE: a setuid-root file in a mount ran as %q, want euid 1000", strings.TrimSpace(out))
	}
	// The control: without no-new-privileges the same file would be root,
	// so the check above can fail.
	ctl, err := exec.Command("docker", "run", "--rm", "--user", "1000:1000", "--cap-drop", "ALL",
		"--mount", "type=bind,src="+filepath.Join(e.dir, "suidro")+",dst=/suidro,readonly", fixture.image, "/suidro/suid-euid", "euid").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ctl)) != "euid 0" {
		t.Errorf("control without no-new-privileges: %q (%v), want euid 0", ctl, err)
	}
}

// TestAgentRewritesSetuidFile: the seccomp profile stops the agent from
// setting a setuid or setgid bit, but not from changing the contents of a
// file that has one already. The kernel clears the bits on write(2),
// truncate and fallocate by a process without CAP_FSETID, but not on a
// store through a shared mapping. When bottle runs as root the agent is
// uid 0 and owns every root-owned file in the workspace: a setuid-root
// program there (a chroot or root file system being built, an unpacked
// image) becomes the agent's code, still setuid root on the host.
func TestAgentRewritesSetuidFile(t *testing.T) {
	e := newEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("a setuid-root file owned by the agent's uid needs bottle to run as root")
	}
	setidTools(t, e)
	ws := filepath.Join(e.dir, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(ws, "suid-prog")
	if err := os.WriteFile(suid, make([]byte, 4096), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	root := e.profile("rewrite.star", `
docker(image = "AGENT_IMAGE")
mount("ws", "/workspace")
mount("tools", "/tools", readonly = True)
`)
	out, stderr, code := e.run("start", "--yes", root, "--", "/tools/setid", "mmapwrite", "/workspace/suid-prog")
	// bottle refuses to start with such a file under a writable mount.
	if code == 0 || !strings.Contains(stderr, "holds setuid or setgid files the agent could rewrite") || !strings.Contains(stderr, "suid-prog") {
		t.Errorf("bottle exited %d, want a refusal naming the file:\n%s%s", code, out, stderr)
	}
	fi, err := os.Stat(suid)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(suid)
	if fi.Mode()&fs.ModeSetuid != 0 && strings.HasPrefix(string(b), "AGENT") {
		t.Errorf("ESCAPE: the agent rewrote a setuid-root file in the workspace and it kept its setuid bit (%v, agent said %q)", fi.Mode(), strings.TrimSpace(out))
	}
}

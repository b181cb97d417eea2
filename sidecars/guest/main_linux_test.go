package guest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/netns"
	"golang.org/x/sys/unix"
)

// helperEnv, set to 1, makes the test binary act as the helper named by its
// first argument instead of running tests. The tests re-execute themselves
// this way to get real `bottle guest` processes, commands and probes.
const helperEnv = "BOTTLE_GUEST_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" && len(os.Args) > 1 {
		os.Exit(helperMain(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// helperCommand returns the argv that runs this test binary as a helper.
func helperCommand(t testing.TB, role string, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe, role}, args...)
}

// helperEnviron is the environment for helper processes.
func helperEnviron() []string {
	return append(os.Environ(), helperEnv+"=1")
}

func helperMain(role string, args []string) int {
	switch role {
	case "guest":
		return guestHelper(args)
	case "probe":
		return netns.ProbeMain(context.Background(), args, os.Stdout, os.Stderr)
	case "signals":
		return signalsHelper()
	case "tty":
		return ttyHelper()
	case "setuid":
		return setuidHelper(args[0])
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", role)
		return 2
	}
}

// guestHelper is `bottle guest --forward SPEC... -- CMD...`, as the CLI will
// call Run.
func guestHelper(args []string) int {
	var forwards []Forward
	var lock Lockdown
	var ctl *Control
	for len(args) > 0 && args[0] != "--" {
		if args[0] == "--control" && len(args) >= 2 {
			c, err := DialControl(context.Background(), args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "bottle guest:", err)
				return ExitSetupFailed
			}
			defer c.Close()
			ctl = c
			args = args[2:]
			continue
		}
		if (args[0] == "--lockdown" || args[0] == LockdownFlag) && len(args) >= 2 {
			l, err := ParseLockdown(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "bottle guest:", err)
				return ExitSetupFailed
			}
			if args[0] == LockdownFlag {
				code, err := ExecLocked(l, args[3:])
				if err != nil {
					fmt.Fprintln(os.Stderr, "bottle guest:", err)
				}
				return code
			}
			lock = l
			args = args[2:]
			continue
		}
		if args[0] != "--forward" || len(args) < 2 {
			fmt.Fprintf(os.Stderr, "guest helper: unexpected %q\n", args[0])
			return 2
		}
		f, err := ParseForward(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "bottle guest:", err)
			return ExitSetupFailed
		}
		forwards = append(forwards, f)
		args = args[2:]
	}
	if len(args) > 0 {
		args = args[1:]
	}
	code, err := Run(context.Background(), forwards, args, Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, lock, ctl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bottle guest:", err)
	}
	return code
}

// signalsHelper prints "ready", then the name of every forwarded signal it
// receives, and exits 3 after SIGTERM.
func signalsHelper() int {
	c := make(chan os.Signal, 8)
	signal.Notify(c, ForwardedSignals...)
	fmt.Println("ready")
	for sig := range c {
		fmt.Println(unix.SignalName(sig.(syscall.Signal)))
		if sig == syscall.SIGTERM {
			return 3
		}
	}
	return 1
}

// ttyHelper reports whether stdin is a terminal whose foreground process
// group is its own, then waits for SIGWINCH and reports the new size.
func ttyHelper() int {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	fg, err := unix.IoctlGetUint32(0, unix.TIOCGPGRP)
	if err != nil {
		fmt.Printf("stdin is not a controlling terminal: %v\n", err)
		return 1
	}
	fmt.Printf("foreground=%t\n", int(fg) == syscall.Getpgrp())
	select {
	case <-winch:
	case <-time.After(20 * time.Second):
		fmt.Println("no SIGWINCH")
		return 1
	}
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		fmt.Printf("get size: %v\n", err)
		return 1
	}
	fmt.Printf("size=%dx%d\n", ws.Col, ws.Row)
	return 0
}

// lines splits output into trimmed non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// setuidHelper tries every way it knows to give a file in dir a setuid or
// setgid mode, printing PLANTED-<way> for each that worked, then checks
// that an ordinary chmod and create still work (ORDINARY-OK).
func setuidHelper(dir string) int {
	try := func(name string, f func(p string) error) {
		p := dir + "/" + name
		os.WriteFile(p, nil, 0o644)
		if err := f(p); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
				fmt.Println("PLANTED-" + name)
			}
		}
	}
	try("chmod-suid", func(p string) error { return unix.Chmod(p, 0o4755) })
	try("chmod-sgid", func(p string) error { return unix.Chmod(p, 0o2755) })
	try("fchmodat", func(p string) error { return unix.Fchmodat(unix.AT_FDCWD, p, 0o6755, 0) })
	try("fchmod", func(p string) error {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fchmod(int(f.Fd()), 0o4755)
	})
	try("openat-creat", func(p string) error {
		os.Remove(p)
		fd, err := unix.Openat(unix.AT_FDCWD, p, unix.O_CREAT|unix.O_WRONLY, 0o4755)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	try("mknodat", func(p string) error {
		os.Remove(p)
		return unix.Mknodat(unix.AT_FDCWD, p, unix.S_IFREG|0o4755, 0)
	})
	ok := unix.Chmod(dir+"/chmod-suid", 0o755) == nil
	if fd, err := unix.Openat(unix.AT_FDCWD, dir+"/plain", unix.O_CREAT|unix.O_WRONLY, 0o644); err == nil {
		unix.Close(fd)
	} else {
		ok = false
	}
	if ok {
		fmt.Println("ORDINARY-OK")
	}
	return 0
}

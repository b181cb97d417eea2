package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ForwardedSignals are the signals Run passes on to the command's process
// group when bottle guest receives them.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGQUIT}

// Run is `bottle guest`: it checks that every forward's socket accepts
// connections, listens on every forward, runs argv as its child with stdio,
// and relays connections until the child exits. It returns the child's exit
// code, or 128+N when the child was killed by signal N; it closes the
// listeners and relayed connections before returning.
//
// If the command does not run, Run returns a non-nil error and
// ExitSetupFailed, ExitCannotInvoke or ExitNotFound. Nothing is started when
// a socket is missing: the error names it.
//
// The child stays in bottle guest's session, so it keeps the controlling
// terminal, but gets its own process group. When stdin is the controlling
// terminal and bottle guest owns it (is in its foreground process group),
// the child's group becomes the foreground group: keys such as Ctrl-C and
// window-size changes then reach the child straight from the terminal, once,
// and bottle guest no longer sees them. Signals in ForwardedSignals that
// bottle guest itself receives (from smolvm, a kill(1)) are passed on to the
// child's process group. When ctx ends, Run sends SIGTERM to that group,
// SIGKILL after KillDelay, and still waits for the child. If bottle guest
// dies, the kernel kills the child (PR_SET_PDEATHSIG).
//
// Relay failures after the start (a sidecar that stops accepting) are
// reported on stdio.Stderr, once per outage.
//
// A Lockdown that is not empty is applied to the child before argv runs
// (see Lockdown and ExecLocked).
//
// With a control channel (ctl not nil; see DialControl), ctl.Env is added
// to the child's environment, the host's signals go to the child's process
// group as those bottle guest receives do, the exit code is sent back
// before Run returns, and when the host side is gone the child is stopped
// as when ctx ends.
func Run(ctx context.Context, forwards []Forward, argv []string, stdio Stdio, lock Lockdown, ctl *Control) (int, error) {
	if len(argv) == 0 {
		return ExitSetupFailed, errors.New("no command to run: give it after --")
	}
	if err := validateForwards(forwards); err != nil {
		return ExitSetupFailed, err
	}
	for _, f := range forwards {
		if err := CheckSocket(f.Socket); err != nil {
			return ExitSetupFailed, fmt.Errorf("forward %s: %w", f, err)
		}
	}
	listeners, err := listen(forwards)
	if err != nil {
		return ExitSetupFailed, err
	}

	// The relays outlive ctx: the child may still need its sidecars while
	// it shuts down after SIGTERM.
	relayCtx, stopRelays := context.WithCancel(context.WithoutCancel(ctx))
	var log io.Writer
	if stdio.Stderr != nil {
		log = stdio.Stderr
	}
	var relays sync.WaitGroup
	defer func() {
		stopRelays()
		relays.Wait()
	}()
	for i, ln := range listeners {
		socket := forwards[i].Socket
		relays.Go(func() {
			if err := Serve(relayCtx, ln, socket, log); err != nil && log != nil {
				fmt.Fprintf(log, "bottle guest: relay to %s stopped: %v\n", socket, err)
			}
		})
	}
	// When the sidecars are gone for good (bottle was stopped or killed,
	// and its dead man's switch stopped them), the command has no way
	// out left: stop it rather than leave it running unwatched.
	childCtx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	if len(forwards) > 0 {
		go watchSidecars(relayCtx, forwards, lost)
	}
	code, err := runChild(childCtx, argv, stdio, lock, ctl, lost)
	if cause := context.Cause(childCtx); (errors.Is(cause, ErrSidecarsGone) || errors.Is(cause, ErrControllerGone)) && log != nil {
		fmt.Fprintf(log, "bottle guest: %v; stopped the command\n", cause)
	}
	if ctl != nil {
		// The host may be gone; the code is still Run's result.
		_ = ctl.SendExit(code)
	}
	return code, err
}

// ErrControllerGone is why bottle guest stops the command when the control
// channel ends: bottle on the host is gone.
var ErrControllerGone = errors.New("the control channel closed (bottle on the host is gone)")

// ErrSidecarsGone is why bottle guest stops the command when every
// sidecar socket has refused connections for SidecarsGoneAfter.
var ErrSidecarsGone = errors.New("the sidecars are gone (bottle was stopped or killed)")

// SidecarsGoneAfter is how long every sidecar socket must refuse
// connections (nothing listens, or the socket is gone) before bottle guest
// stops the command; sockets are checked every SidecarsGoneAfter/4.
var SidecarsGoneAfter = 2 * time.Second

// watchSidecars cancels lost with ErrSidecarsGone once every forward's
// socket has refused connections for SidecarsGoneAfter. A socket that is
// slow to accept (a timeout) counts as alive.
func watchSidecars(ctx context.Context, forwards []Forward, lost context.CancelCauseFunc) {
	tick := time.NewTicker(SidecarsGoneAfter / 4)
	defer tick.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		gone := true
		for _, f := range forwards {
			c, err := net.DialTimeout("unix", f.Socket, time.Second)
			if err == nil {
				c.Close()
				gone = false
				break
			}
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
				gone = false
				break
			}
		}
		switch {
		case !gone:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= SidecarsGoneAfter:
			lost(ErrSidecarsGone)
			return
		}
	}
}

// listen opens a TCP listener for every forward, closing those already open
// if one fails.
func listen(forwards []Forward) ([]*net.TCPListener, error) {
	listeners := make([]*net.TCPListener, 0, len(forwards))
	for _, f := range forwards {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(f.Listen))
		if err != nil {
			for _, open := range listeners {
				open.Close()
			}
			return nil, fmt.Errorf("forward %s: listen: %w", f, err)
		}
		listeners = append(listeners, ln)
	}
	return listeners, nil
}

// runChild starts argv, forwards signals to its process group until it
// exits, and returns its exit code. With ctl, ctl.Env joins the child's
// environment, ctl's signals are forwarded too, and the end of ctl cancels
// ctx through lost with ErrControllerGone.
func runChild(ctx context.Context, argv []string, stdio Stdio, lock Lockdown, ctl *Control, lost context.CancelCauseFunc) (int, error) {
	name := argv[0]
	attr := &syscall.SysProcAttr{}
	if !lock.Empty() {
		var err error
		if argv, attr, err = lockdownCommand(lock, argv); err != nil {
			return ExitSetupFailed, err
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var hostSignals <-chan syscall.Signal
	if ctl != nil {
		cmd.Env = append(os.Environ(), ctl.Env...)
		hostSignals = ctl.Signals()
	}
	// Under a lockdown the child is pid 1 of a PID namespace, which drops
	// signals it has no handler for: signals wait until it says it has
	// them (ready), and it watches link to die with bottle guest.
	var ready <-chan struct{}
	var pipes *lockdownPipes
	if !lock.Empty() {
		p, err := newLockdownPipes()
		if err != nil {
			return ExitSetupFailed, err
		}
		defer p.close()
		pipes = p
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, lockdownPipesEnv+"=1")
		cmd.ExtraFiles = p.child()
		ready = p.ready
	}
	if stdio.Stdin != nil {
		cmd.Stdin = stdio.Stdin
	}
	if stdio.Stdout != nil {
		cmd.Stdout = stdio.Stdout
	}
	if stdio.Stderr != nil {
		cmd.Stderr = stdio.Stderr
	}
	attr.Setpgid, attr.Pdeathsig = true, syscall.SIGKILL
	cmd.SysProcAttr = attr
	// The child's group gets the terminal: at once, or under a lockdown
	// once its pid 1 catches signals (a Ctrl-C before would be lost, or
	// kill it), which it waits for.
	termFd, ownsTerm := ownedTerminal(stdio.Stdin)
	if ownsTerm && pipes == nil {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = termFd
	}

	// Listen before the child exists, so no signal meant for it can kill
	// bottle guest with the default action instead.
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, ForwardedSignals...)
	defer signal.Stop(sigc)

	// PR_SET_PDEATHSIG fires when the thread that started the child exits,
	// so keep this goroutine on one thread until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := cmd.Start(); err != nil {
		code := ExitCannotInvoke
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = ExitNotFound
		}
		return code, fmt.Errorf("start %q: %w", name, err)
	}
	if pipes != nil {
		pipes.started()
	}
	pgid := cmd.Process.Pid
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()

	// send passes a signal to the child's group, or holds it until the
	// child is ready for it. ESRCH only means the group is already gone.
	var held []syscall.Signal
	send := func(sig syscall.Signal) {
		if ready != nil && sig != syscall.SIGKILL {
			held = append(held, sig)
			return
		}
		_ = syscall.Kill(-pgid, sig)
	}
	done := ctx.Done()
	var kill <-chan time.Time
	for {
		select {
		case <-ready:
			ready = nil
			if ownsTerm {
				// ENOTTY or EPERM leaves the terminal where it is; the
				// command then runs in the background of it.
				_ = unix.IoctlSetPointerInt(termFd, unix.TIOCSPGRP, pgid)
			}
			pipes.goAhead()
			for _, sig := range held {
				send(sig)
			}
			held = nil
		case sig := <-sigc:
			send(sig.(syscall.Signal))
		case sig, ok := <-hostSignals:
			if !ok {
				hostSignals = nil
				lost(ErrControllerGone)
				continue
			}
			send(sig)
		case <-done:
			done = nil
			send(syscall.SIGTERM)
			kill = time.After(KillDelay)
		case <-kill:
			send(syscall.SIGKILL)
		case err := <-waitc:
			return exitCode(cmd.ProcessState, err)
		}
	}
}

// exitCode turns the child's wait status into an exit code: its own code, or
// 128+N when signal N killed it.
func exitCode(state *os.ProcessState, waitErr error) (int, error) {
	if state == nil {
		return ExitSetupFailed, fmt.Errorf("wait for command: %w", waitErr)
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return state.ExitCode(), nil
}

// ownedTerminal reports whether f is bottle guest's controlling terminal and
// bottle guest is in its foreground process group, and returns its
// descriptor.
func ownedTerminal(f *os.File) (int, bool) {
	if f == nil {
		return 0, false
	}
	fd := int(f.Fd())
	pgrp, err := unix.IoctlGetUint32(fd, unix.TIOCGPGRP)
	if err != nil || int(pgrp) != syscall.Getpgrp() {
		return 0, false
	}
	return fd, true
}

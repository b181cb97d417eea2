package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/sidecars/guest"
)

// GuestCmd is what runs first inside every sandbox (the docker agent
// container's entrypoint, the microVM's command); backends start it,
// people do not:
//
//	bottle guest --forward 127.0.0.1:3128=/run/bottle/egress.sock ... -- CMD ARGS
//
// With --idle it runs nothing and waits to be stopped, reaping orphaned
// processes meanwhile: it is the microVM's persistent workload, which
// keeps smolvm from starting the image's own command.
type GuestCmd struct {
	Forward []guest.Forward `sep:"none" placeholder:"LISTEN=SOCKET" help:"Relay connections to this loopback address to this sidecar socket (repeatable)."`
	Idle    bool            `help:"Run no command: wait for SIGTERM or SIGINT, reaping orphaned processes."`
	Wait    time.Duration   `help:"Wait up to this long for every sidecar socket to accept connections before running the command (0: they must already)."`
	// Workdir is created if missing and becomes the command's working
	// directory (the smolmachines backend cannot leave it to smolvm).
	Workdir string `placeholder:"DIR" help:"Run the command in this directory, created first if it does not exist."`
	// Control is the host's control socket (guest.DialControl): secrets,
	// signals and the exit code go over it.
	Control string `placeholder:"SOCKET" help:"Take the command's secrets and signals from bottle on the host over this unix socket, report the exit code there, and stop the command when it closes."`
	// EgressCA is the egress sidecar's CA certificate, which the sandbox
	// must trust (guest.InstallCA); read after the sockets are waited for.
	EgressCA string `name:"egress-ca" placeholder:"FILE" help:"Install this CA certificate (PEM), the egress sidecar's, in a CA bundle for the command (see sidecars.CAEnv)."`
	// HomeSeed holds the files bottle rendered for the agent (agents.File),
	// copied into HOME before the command runs (guest.SeedHome).
	HomeSeed string `name:"home-seed" placeholder:"DIR" help:"Copy the files in this directory into the command's HOME before it runs (the agent's configuration, rendered by bottle)."`
	// ExpectMount is checked before anything runs (guest.CheckMounts).
	ExpectMount []string `name:"expect-mount" hidden:"" sep:"none" help:"Refuse to run unless the mount at TARGET is the source bottle checked (TARGET=DEV:INO)."`
	// Lockdown (JSON, guest.Lockdown) is applied to the command: the
	// smolmachines backend protects paths and drops privileges with it.
	Lockdown string `hidden:"" help:"Protect paths and drop privileges for the command (JSON; set by bottle)."`
	// LockdownExec is how Run starts the command under a lockdown.
	LockdownExec string `name:"lockdown-exec" hidden:"" help:"Apply this lockdown (JSON) and become the command."`
}

// Run relays the forwards, runs the command given after "--" and exits
// with its exit code.
func (c *GuestCmd) Run(g *Globals) error {
	if c.LockdownExec != "" {
		l, err := guest.ParseLockdown(c.LockdownExec)
		if err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
		code, err := guest.ExecLocked(l, g.Passthrough)
		if err == nil {
			if code == 0 {
				return nil
			}
			err = errSilent
		}
		return &exitError{code: code, err: err}
	}
	if err := guest.CheckMounts(c.ExpectMount); err != nil {
		return &exitError{code: guest.ExitSetupFailed, err: err}
	}
	var lock guest.Lockdown
	if c.Lockdown != "" {
		var err error
		if lock, err = guest.ParseLockdown(c.Lockdown); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
	}
	if c.Idle {
		if len(c.Forward) > 0 || len(g.Passthrough) > 0 {
			return usageErr(errors.New("guest --idle takes neither --forward nor a command"))
		}
		idle(g.Ctx)
		return nil
	}
	if c.Wait > 0 {
		if err := guest.WaitSockets(g.Ctx, c.Forward, c.Wait); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
	}
	if c.EgressCA != "" {
		if err := guest.InstallCA(c.EgressCA); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
	}
	if c.HomeSeed != "" {
		if c.Lockdown != "" {
			// As the command's user, once the lockdown has made it that.
			lock.HomeSeed = c.HomeSeed
		} else if err := guest.SeedHome(c.HomeSeed, os.Getenv("HOME")); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
	}
	if c.Workdir != "" {
		if err := os.MkdirAll(c.Workdir, 0o755); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: fmt.Errorf("working directory: %w", err)}
		}
		if err := os.Chdir(c.Workdir); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: fmt.Errorf("working directory: %w", err)}
		}
	}
	var ctl *guest.Control
	if c.Control != "" {
		var err error
		if ctl, err = guest.DialControl(g.Ctx, c.Control); err != nil {
			return &exitError{code: guest.ExitSetupFailed, err: err}
		}
		defer ctl.Close()
	}
	// bottle guest passes signals on to the command itself; the context
	// Main cancels on SIGINT and SIGTERM would send a second one.
	code, err := guest.Run(context.WithoutCancel(g.Ctx), c.Forward, g.Passthrough,
		guest.Stdio{Stdin: os.Stdin, Stdout: fileOf(g.Stdout), Stderr: fileOf(g.Stderr)}, lock, ctl)
	if err != nil {
		return &exitError{code: code, err: err}
	}
	if code != 0 {
		return &exitError{code: code, err: errSilent}
	}
	return nil
}

// idle waits until ctx ends, reaping every child that exits meanwhile: as
// the workload it is the guest container's first process, to which
// orphans are reparented.
func idle(ctx context.Context) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	for {
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-chld:
		}
	}
}

// fileOf returns w as a file, whose descriptor the command can inherit,
// or nil, which gives the command the null device.
func fileOf(w io.Writer) *os.File {
	f, _ := w.(*os.File)
	return f
}

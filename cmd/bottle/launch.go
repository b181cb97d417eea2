package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/bottle-dev/bottle/backends"
	_ "github.com/bottle-dev/bottle/backends/docker"       // registers the docker backend
	_ "github.com/bottle-dev/bottle/backends/smolmachines" // registers the smolmachines backend
	"github.com/bottle-dev/bottle/engine"
	"github.com/bottle-dev/bottle/plan"
)

// exitStopped is the exit code of a bottle stopped by a signal or bottle stop.
const exitStopped = 130

// launch runs the plan's bottle to its end through the lifecycle engine
// and returns the agent's exit code as an exitError when it is not 0. It
// asks for approval first; the engine does the rest.
func (c *StartCmd) launch(g *Globals, p *plan.Plan, command []string) error {
	if err := approve(g, p, c.Yes); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find bottle's executable: %w", err)
	}
	// Only forceOnSecondSignal ends the launch, so that the cause names
	// the signal (backends.SignalCause), which smolmachines passes on to
	// the agent; g.Ctx, which ends on the same signals, would race it.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(g.Ctx))
	defer cancel(nil)
	stopSignals := forceOnSecondSignal(g, cancel)
	defer stopSignals()

	stdio := backends.Stdio{Stdin: os.Stdin, Stdout: g.Stdout, Stderr: g.Stderr,
		TTY: term.IsTerminal(int(os.Stdin.Fd())) && isTerminal(g.Stdout)}
	if c.Prompt != "" {
		// No terminal, and a stdin at its end: codex exec reads a stdin
		// that is not a terminal to its end before it starts.
		stdio.Stdin, stdio.TTY = strings.NewReader(""), false
	}
	code, err := engine.Run(ctx, engine.Launch{
		Plan:       p,
		Replan:     func() (*plan.Plan, error) { return loadPlan(g, c.Profile, c.RepoFlags) },
		Command:    command,
		Executable: exe,
		Progress:   g.Stderr,
		Stdio:      stdio,
		Started: func(p *plan.Plan) {
			fmt.Fprintf(g.Stderr, "bottle: starting %s (%s, digest %s)\n", p.Slug, p.Backend.Kind, shortDigest(p.Digest))
		},
	})
	var pe *engine.PreflightError
	if errors.As(err, &pe) {
		return &exitError{code: exitPreflight, err: pe}
	}
	if ctx.Err() != nil && err == nil {
		// The stop reached the agent, which exited with a code of its own
		// (see backends.Backend.Launch): that code is bottle's.
		fmt.Fprintf(g.Stderr, "bottle: stopped; the agent exited with %d\n", code)
		if code != 0 {
			return &exitError{code: code, err: errSilent}
		}
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && g.Ctx.Err() == nil {
		fmt.Fprintf(g.Stderr, "bottle: %v; stopped\n", cause)
		return &exitError{code: exitStopped, err: errSilent}
	}
	if g.Ctx.Err() != nil {
		fmt.Fprintln(g.Stderr, "bottle: stopped")
		return &exitError{code: exitStopped, err: errSilent}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code, err: errSilent}
	}
	return nil
}

// forceOnSecondSignal makes the first SIGINT, SIGTERM or SIGHUP (the
// terminal closed) tear the bottle down and a second one exit at once,
// leaving the rest to bottle cleanup.
func forceOnSecondSignal(g *Globals, cancel context.CancelCauseFunc) func() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					fmt.Fprintf(g.Stderr, "bottle: %v: tearing down (again to force)\n", sig)
					cancel(backends.SignalCause{Signal: sig})
					continue
				}
				fmt.Fprintln(g.Stderr, "bottle: forced exit; run bottle cleanup to remove what is left")
				os.Exit(exitStopped)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// approvedFile lists the digests of profiles approved on this machine.
func approvedFile() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the config directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "bottle", "approved"), nil
}

// approve asks before launching a profile whose digest was not approved
// before, and records the approval. --yes skips the question.
func approve(g *Globals, p *plan.Plan, yes bool) error {
	path, err := approvedFile()
	if err != nil {
		return err
	}
	data, _ := os.ReadFile(path)
	var known []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			known = append(known, f[0])
		}
	}
	if slices.Contains(known, p.Digest) {
		return nil
	}
	if !yes {
		fmt.Fprintln(g.Stderr, "bottle: this profile's policy has not been approved on this machine:")
		if err := writeSummary(g.Stderr, p); err != nil {
			return err
		}
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return usageErr(fmt.Errorf("profile digest %s is not approved; review the plan above and rerun with --yes, or answer the question on a terminal", shortDigest(p.Digest)))
		}
		fmt.Fprint(g.Stderr, "Launch it? [y/N] ")
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return usageErr(errors.New("not approved; nothing was started"))
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("record the approval: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record the approval: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %s\n", p.Digest, p.Profile.Label)
	return err
}

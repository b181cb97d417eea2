package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/bottle-dev/bottle/backends"
	_ "github.com/bottle-dev/bottle/backends/docker"       // registers the docker backend
	_ "github.com/bottle-dev/bottle/backends/smolmachines" // registers the smolmachines backend
	"github.com/bottle-dev/bottle/plan"
)

// exitStopped is the exit code of a bottle stopped by a signal or bottle stop.
const exitStopped = 130

// launch runs the plan's bottle to its end and returns the agent's exit code
// as an exitError when it is not 0.
func (c *StartCmd) launch(g *Globals, p *plan.Plan) error {
	backend, err := backends.Get(p.Backend.Kind)
	if err != nil {
		return err
	}
	if err := approve(g, p, c.Yes); err != nil {
		return err
	}
	secrets, err := readSecrets(p)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find bottle's executable: %w", err)
	}

	// Claim the state directory; another bottle of this profile that
	// claimed the slug first moves this one to the next suffix.
	var st *backends.State
	for attempt := 0; ; attempt++ {
		st, err = backends.Claim(p.StateDir)
		if !errors.Is(err, backends.ErrTaken) || attempt == 20 {
			break
		}
		if p, err = loadPlan(g, c.Profile, c.RepoFlags); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	defer st.Release()
	planJSON, _ := json.MarshalIndent(p, "", "  ")
	if err := st.WriteFile(backends.PlanFile, planJSON); err != nil {
		return err
	}
	if err := st.WriteInfo(backends.Info{Slug: p.Slug, Backend: p.Backend.Kind, Profile: p.Profile.Path,
		Digest: p.Digest, PID: os.Getpid(), Started: time.Now().UTC().Truncate(time.Second)}); err != nil {
		return err
	}

	b := &backends.Bottle{Plan: p, State: st, Command: g.Passthrough, Secrets: secrets, Executable: exe, Progress: g.Stderr}
	if err := backend.Preflight(g.Ctx, b); err != nil {
		return &exitError{code: exitPreflight, err: fmt.Errorf("preflight of the %s backend failed:\n%w", p.Backend.Kind, err)}
	}

	ctx, cancel := context.WithCancelCause(g.Ctx)
	defer cancel(nil)
	stopSignals := forceOnSecondSignal(g, cancel)
	defer stopSignals()

	fmt.Fprintf(g.Stderr, "bottle: starting %s (%s, digest %s)\n", p.Slug, p.Backend.Kind, shortDigest(p.Digest))
	stdio := backends.Stdio{Stdin: os.Stdin, Stdout: g.Stdout, Stderr: g.Stderr,
		TTY: term.IsTerminal(int(os.Stdin.Fd())) && isTerminal(g.Stdout)}
	code, err := backend.Launch(ctx, b, stdio)
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

// forceOnSecondSignal makes the first SIGINT or SIGTERM tear the bottle
// down and a second one exit at once, leaving the rest to bottle cleanup.
func forceOnSecondSignal(g *Globals, cancel context.CancelCauseFunc) func() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					fmt.Fprintf(g.Stderr, "bottle: %v: tearing down (again to force)\n", sig)
					cancel(fmt.Errorf("received %v", sig))
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

// readSecrets reads every secret's value from the host, at launch only.
func readSecrets(p *plan.Plan) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, s := range p.Secrets {
		switch {
		case s.FromEnv != "":
			v, ok := os.LookupEnv(s.FromEnv)
			if !ok || v == "" {
				errs = append(errs, fmt.Errorf("secret %s: the host environment variable %s is not set; export it, or change secret() at %s", s.Name, s.FromEnv, s.From))
				continue
			}
			out[s.Name] = v
		default:
			b, err := os.ReadFile(s.FromFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("secret %s: cannot read %s (%v); change secret() at %s", s.Name, s.FromFile, errors.Unwrap(err), s.From))
				continue
			}
			out[s.Name] = strings.TrimRight(string(b), "\r\n")
		}
	}
	return out, errors.Join(errs...)
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

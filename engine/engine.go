// Package engine runs a bottle's lifecycle, one phase after another, as
// plain functions with typed inputs and outputs:
//
//	evaluate   the profile → plan (package starlark; pure)
//	configure  the backend decides where sidecars listen (Backend.Configure)
//	validate   the plan and every sidecar unit's whole-plan check, then the digest
//	claim      the state directory (0700, locked), plan.json and bottle.json
//	secrets    read from the host, at launch only
//	preflight  the backend's and every sidecar unit's read-only host checks
//	launch     the backend starts sidecars and sandbox and runs the agent
//	teardown   the backend undoes the launch in reverse; the state is released
//
// Cleanup removes what killed runs left behind, orphan sidecar processes
// included. The CLI (cmd/bottle) only prompts and prints: approval happens
// between validate and claim, through Launch.Approve. The design follows
// Lima's pkg/instance, which drives its VM drivers through one small
// interface; here the drivers are the backends (package backends).
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
	"github.com/bottle-dev/bottle/sidecars/egress"
	bstar "github.com/bottle-dev/bottle/starlark"
)

// Plan evaluates src and runs the phases without side effects: evaluate,
// configure, validate and digest. It returns the configured plan and its
// backend. An evaluation error is a *starlark.Error with a position.
func Plan(ctx context.Context, src *bstar.Source, opts bstar.Options, env bstar.Env) (*plan.Plan, backends.Backend, error) {
	p, err := bstar.Load(ctx, src, opts, env)
	if err != nil {
		return nil, nil, err
	}
	b, err := Configure(p)
	if err != nil {
		return nil, nil, err
	}
	return p, b, nil
}

// Configure runs the phases after evaluation on an evaluated plan: the
// backend sets the listeners, the plan and its sidecar units validate it,
// and the digest is computed again.
func Configure(p *plan.Plan) (backends.Backend, error) {
	b, err := backends.Get(p.Backend.Kind)
	if err != nil {
		return nil, err
	}
	if err := b.Configure(p); err != nil {
		return nil, err
	}
	for _, sc := range p.Sidecars {
		if sc.Listen.Network == "" {
			return nil, fmt.Errorf("the %s backend gave the %s sidecar no listener", p.Backend.Kind, sc.Name)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := sidecars.Validate(p); err != nil {
		return nil, err
	}
	p.Digest = p.ComputeDigest()
	return b, nil
}

// PreflightError is a failed preflight: the host lacks something the
// bottle needs. Nothing was started.
type PreflightError struct {
	Backend string
	Err     error
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("preflight of the %s backend failed:\n%v", e.Backend, e.Err)
}

func (e *PreflightError) Unwrap() error { return e.Err }

// Launch is one bottle to run.
type Launch struct {
	// Plan is the configured plan (from Plan).
	Plan *plan.Plan
	// Replan evaluates the profile again; Run calls it when another bottle
	// of the same profile claimed the slug first, to get the next one.
	Replan func() (*plan.Plan, error)
	// Command, when set, runs instead of the agent's command.
	Command []string
	// Executable is bottle's own binary, which sidecars and guests run.
	Executable string
	// Progress receives one line per step, for people.
	Progress io.Writer
	// Stdio is the agent's.
	Stdio backends.Stdio
	// Started is called once the bottle is claimed and checked, just
	// before the backend launches it.
	Started func(p *plan.Plan)
}

// maxClaims bounds the slugs Run tries when others are taken.
const maxClaims = 20

// Run claims the bottle's state, reads its secrets, runs the preflight
// and launches it, and returns the command's exit code. ctx ending (a
// signal, bottle stop) tears the bottle down; Run then returns ctx's error.
// A preflight failure is a *PreflightError.
func Run(ctx context.Context, l Launch) (int, error) {
	p := l.Plan
	backend, err := backends.Get(p.Backend.Kind)
	if err != nil {
		return -1, err
	}
	var st *backends.State
	for attempt := 0; ; attempt++ {
		st, err = backends.Claim(p.StateDir)
		if !errors.Is(err, backends.ErrTaken) || attempt == maxClaims || l.Replan == nil {
			break
		}
		if p, err = l.Replan(); err != nil {
			return -1, err
		}
	}
	if err != nil {
		return -1, err
	}
	defer st.Release()
	planJSON, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return -1, err
	}
	if err := st.WriteFile(backends.PlanFile, append(planJSON, '\n')); err != nil {
		return -1, err
	}
	if err := st.WriteInfo(backends.Info{Slug: p.Slug, Backend: p.Backend.Kind, Profile: p.Profile.Path,
		Digest: p.Digest, PID: os.Getpid(), Started: time.Now().UTC().Truncate(time.Second)}); err != nil {
		return -1, err
	}

	values, err := ReadSecrets(p)
	if err != nil {
		return -1, err
	}
	// The agent gets a placeholder for each secret bound to hosts; the
	// values go to the egress sidecar only.
	secrets, err := egress.PrepareSecrets(p, values, st.WriteFile)
	if err != nil {
		return -1, err
	}
	defer os.Remove(filepath.Join(st.Dir, egress.SecretsFile)) // if the sidecar never took it
	// The agent's configuration, rendered for this launch (its
	// placeholder key, the sidecars' addresses).
	home, err := sidecars.AgentFiles(p, l.Command, secrets)
	if err != nil {
		return -1, err
	}
	b := &backends.Bottle{Plan: p, State: st, Command: l.Command, Secrets: secrets, HomeFiles: home, Executable: l.Executable, Progress: l.Progress}
	if err := Preflight(ctx, backend, b); err != nil {
		return -1, &PreflightError{Backend: p.Backend.Kind, Err: err}
	}
	if l.Started != nil {
		l.Started(p)
	}
	before := repoStates(p)
	code, err := backend.Launch(ctx, b, l.Stdio)
	if l.Progress != nil {
		warnNewRepos(l.Progress, before)
	}
	return code, err
}

// repoState is what a writable mount holds of git that no mount can
// protect: the submodules in its index and the repositories near its top.
type repoState struct {
	links, repos []string
}

// repoStates maps each writable mount's host path to its repoState.
func repoStates(p *plan.Plan) map[string]repoState {
	m := map[string]repoState{}
	for _, mt := range p.Mounts {
		if !mt.ReadOnly {
			m[mt.HostPath] = repoState{links: backends.Gitlinks(mt.HostPath), repos: backends.NestedRepos(mt.HostPath)}
		}
	}
	return m
}

// warnNewRepos reports the repositories the agent made in the top levels
// of a mount (an editor finds them and runs git there), and the
// submodules the agent added to an index (git status on the host looks
// into each one): git there would run what their own .git/config names
// (core.fsmonitor), which no mount can protect, since the agent may write
// the index and create directories. The paths are quoted: the agent chose
// them.
func warnNewRepos(w io.Writer, before map[string]repoState) {
	for host, old := range before {
		now := repoState{links: backends.Gitlinks(host), repos: backends.NestedRepos(host)}
		for _, r := range now.repos {
			if !slices.Contains(old.repos, r) {
				fmt.Fprintf(w, "bottle: warning: the agent made a repository at %s in %s; git run there (or an editor that finds it) runs what its git config names. Check %s before running git in it\n",
					strconv.Quote(r), strconv.Quote(host), strconv.Quote(r+"/.git/config"))
			}
		}
		for _, link := range now.links {
			if !slices.Contains(old.links, link) {
				fmt.Fprintf(w, "bottle: warning: the agent added a submodule at %s in %s; git on the host looks into it and runs what its git config names. Check it before running git there, or drop it with: git -C %s rm --cached %s\n",
					strconv.Quote(link), strconv.Quote(host), strconv.Quote(host), strconv.Quote(link))
			}
		}
	}
}

// Preflight runs the backend's checks and every sidecar unit's, and joins
// their errors.
func Preflight(ctx context.Context, backend backends.Backend, b *backends.Bottle) error {
	errs := []error{backend.Preflight(ctx, b)}
	h := sidecars.Host{StateDir: b.State.Dir, Getenv: os.Getenv}
	for _, sc := range b.Plan.Sidecars {
		u, err := sidecars.Get(sc.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u.Preflight != nil {
			errs = append(errs, u.Preflight(ctx, b.Plan, sc, h))
		}
	}
	return errors.Join(errs...)
}

// ReadSecrets reads every secret's value from the host, at launch only.
func ReadSecrets(p *plan.Plan) (map[string]string, error) {
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

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/bottle-dev/bottle/engine"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/profiles"
	bstar "github.com/bottle-dev/bottle/starlark"
	"github.com/bottle-dev/bottle/starlark/repocache"
)

// defaultProfile is the profile used when none is given.
const defaultProfile = "bottle.star"

// RepoFlags are the flags of the commands that read shared repositories.
type RepoFlags struct {
	OverrideRepo []string `name:"override-repo" placeholder:"NAME=DIR" help:"Read repository NAME from the local directory DIR instead of what bottle.root declares; the plan shows it. Repeatable."`
}

// loadPlan evaluates the profile at arg (or ./bottle.star, else the
// shipped claude.star) and builds its plan. It reads files and nothing
// else: repositories come from the cache or an override, never the network.
func loadPlan(g *Globals, arg string, rf RepoFlags) (*plan.Plan, error) {
	src, err := openProfile(g, arg, rf)
	if err != nil {
		return nil, err
	}
	return evalPlan(g, src)
}

// openProfile finds the profile at arg (or ./bottle.star, else the shipped
// claude.star), reads the repositories its bottle.root declares and
// applies the overrides. bottle.root is evaluated in a child process, as
// profiles are (see isolation).
func openProfile(g *Globals, arg string, rf RepoFlags) (*bstar.Source, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the current directory: %w", err)
	}
	var src *bstar.Source
	iso := isolation(g)
	switch {
	case strings.HasPrefix(arg, "//"):
		// A profile shipped inside bottle: //claude.star, //codex.star.
		name := strings.TrimPrefix(arg, "//")
		if fi, statErr := fs.Stat(profiles.FS, name); statErr != nil || fi.IsDir() || strings.Contains(name, "/") || !strings.HasSuffix(name, ".star") {
			shipped, _ := fs.Glob(profiles.FS, "*.star")
			return nil, usageErr(fmt.Errorf("%s is not a profile shipped with bottle; those are //%s", arg, strings.Join(shipped, ", //")))
		}
		src = bstar.Embedded(profiles.FS, name, wd)
	case arg != "":
		src, err = iso.Open(arg)
	default:
		if _, statErr := os.Stat(defaultProfile); statErr == nil {
			src, err = iso.Open(defaultProfile)
		} else {
			src = bstar.Embedded(profiles.FS, profiles.Default, wd)
		}
	}
	if err != nil {
		return nil, usageErr(err)
	}
	for _, o := range rf.OverrideRepo {
		name, dir, ok := strings.Cut(o, "=")
		if !ok || name == "" || dir == "" {
			return nil, usageErr(fmt.Errorf("--override-repo %q: write NAME=DIR, as in --override-repo acme=../bottle-profiles", o))
		}
		if err := src.OverrideRepo(name, dir); err != nil {
			return nil, usageErr(err)
		}
	}
	return src, nil
}

// evalPlan evaluates src and builds its plan.
func evalPlan(g *Globals, src *bstar.Source) (*plan.Plan, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the current directory: %w", err)
	}
	home, _ := os.UserHomeDir()
	sh, err := stateHome()
	if err != nil {
		return nil, err
	}
	cache, err := repocache.Root()
	if err != nil && len(src.Repos) > 0 {
		return nil, err
	}
	opts := bstar.Options{Stderr: visibleWriter{g.Stderr}, Home: home, RepoCache: cache, Isolation: isolation(g)}
	p, _, err := engine.Plan(g.Ctx, src, opts, bstar.Env{Workspace: wd, StateHome: sh})
	if err != nil {
		return nil, profileErr(err)
	}
	return p, nil
}

// profileErr turns an evaluation error into a usage error carrying its
// position and, for nested calls, the Starlark backtrace.
func profileErr(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	pe := bstar.AsError(err)
	return &exitError{code: exitUsage, err: pe, detail: pe.Backtrace}
}

// writeLine writes one line, for commands whose output is a line.
func writeLine(w io.Writer, format string, args ...any) error {
	_, err := fmt.Fprintf(w, format+"\n", args...)
	return err
}

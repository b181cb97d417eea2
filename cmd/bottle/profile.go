package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/profiles"
	bstar "github.com/bottle-dev/bottle/starlark"
)

// defaultProfile is the profile used when none is given.
const defaultProfile = "bottle.star"

// loadPlan evaluates the profile at arg (or ./bottle.star, else the
// shipped claude.star) and builds its plan. It reads files and nothing else.
func loadPlan(g *Globals, arg string) (*plan.Plan, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the current directory: %w", err)
	}
	home, _ := os.UserHomeDir()
	sh, err := stateHome()
	if err != nil {
		return nil, err
	}
	var src *bstar.Source
	switch {
	case arg != "":
		src, err = bstar.Open(arg)
	default:
		if _, statErr := os.Stat(defaultProfile); statErr == nil {
			src, err = bstar.Open(defaultProfile)
		} else {
			src = bstar.Embedded(profiles.FS, profiles.Default, wd)
		}
	}
	if err != nil {
		return nil, usageErr(err)
	}
	p, err := bstar.Load(g.Ctx, src, bstar.Options{Stderr: g.Stderr, Home: home}, bstar.Env{Workspace: wd, StateHome: sh})
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

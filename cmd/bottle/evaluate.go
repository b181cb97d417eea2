package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/bottle-dev/bottle/profiles"
	bstar "github.com/bottle-dev/bottle/starlark"
)

// isolation evaluates profiles in a child process of bottle's own
// executable (EvaluateCmd), under a memory limit: a profile that asks for
// too much memory ends in a profile error, never in a crash of bottle.
// With BOTTLE_EVAL_DEBUG=1 the child's crash report reaches stderr.
func isolation(g *Globals) *bstar.Isolation {
	iso := &bstar.Isolation{Command: func() (*exec.Cmd, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find bottle's executable: %w", err)
		}
		cmd := exec.Command(exe, "evaluate")
		// The test binary runs as bottle when invoked by that name.
		cmd.Args[0] = "bottle"
		return cmd, nil
	}}
	if os.Getenv(bstar.DebugEnv) == "1" {
		iso.Debug = visibleWriter{g.Stderr}
	}
	return iso
}

// EvaluateCmd is the child process of isolation: it reads one request on
// standard input, evaluates, and writes the result to standard output.
type EvaluateCmd struct{}

// Run serves one evaluation.
func (EvaluateCmd) Run(g *Globals) error {
	if code := bstar.ServeIsolated(os.Stdin, g.Stdout, profiles.FS); code != 0 {
		return &exitError{code: code, err: errSilent}
	}
	return nil
}

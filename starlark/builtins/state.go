// Package builtins holds the functions a bottle profile calls: docker,
// smolmachines, agent, allow, mount, env, secret and sidecar.
//
// Builtins act on nothing. Each one checks its arguments and records a
// declaration, with the file:line:col of its call, into the State kept on
// the evaluating thread; the evaluator builds the plan from that State once
// evaluation has finished.
package builtins

import (
	"fmt"
	"path"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

const stateKey = "bottle.builtins.state"

// State is what a profile declared, in declaration order.
type State struct {
	// ProfileDir is the host directory relative mount sources resolve from.
	ProfileDir string
	// Home is the user's home directory, for "~/..." paths.
	Home string

	Backend  *plan.Backend
	Agent    *plan.Agent
	Rules    []plan.Rule
	Mounts   []plan.Mount
	Env      []plan.EnvVar
	Secrets  []plan.Secret
	Sidecars []plan.Sidecar

	// Files are the host paths of the files evaluation read: the
	// profile, bottle.root, and every file loaded from the profile root
	// or a path repository (a fetched repository lives in the cache).
	Files []string
}

// Attach stores s on thread, where the builtins find it.
func Attach(thread *starlark.Thread, s *State) { thread.SetLocal(stateKey, s) }

func stateOf(thread *starlark.Thread, b *starlark.Builtin) (*State, error) {
	s, ok := thread.Local(stateKey).(*State)
	if !ok {
		return nil, fmt.Errorf("%s: declarations cannot be made at the top level of a loaded file; define a function there and call it from the profile", b.Name())
	}
	return s, nil
}

// Predeclared returns the builtins of the profile language.
func Predeclared() starlark.StringDict {
	d := starlark.StringDict{}
	for name, fn := range map[string]func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error){
		"docker":       docker,
		"smolmachines": smolmachines,
		"agent":        agent,
		"allow":        allow,
		"mount":        mount,
		"env":          env,
		"secret":       secret,
		"sidecar":      sidecar,
	} {
		d[name] = starlark.NewBuiltin(name, fn)
	}
	return d
}

// callerPos is the position of the call to the running builtin.
func callerPos(thread *starlark.Thread) string {
	return thread.CallFrame(1).Pos.String()
}

// maxPositional refuses calls with more than n positional arguments, naming
// the ones that are accepted positionally.
func maxPositional(b *starlark.Builtin, args starlark.Tuple, names ...string) error {
	if len(args) <= len(names) {
		return nil
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: takes keyword arguments only, got %d positional", b.Name(), len(args))
	}
	return fmt.Errorf("%s: takes at most %d positional argument(s) (%s), got %d; pass the others by keyword, as in name = value",
		b.Name(), len(names), strings.Join(names, ", "), len(args))
}

// resolveHostPath turns a profile-relative or "~/" path into a clean
// absolute host path, without touching the file system.
func (s *State) resolveHostPath(p string) string {
	switch {
	case p == "~":
		return s.Home
	case strings.HasPrefix(p, "~/"):
		return path.Join(s.Home, p[2:])
	case path.IsAbs(p):
		return path.Clean(p)
	default:
		return path.Join(s.ProfileDir, p)
	}
}

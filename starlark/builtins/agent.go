package builtins

import (
	"fmt"
	"path"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/agents"
	"github.com/bottle-dev/bottle/plan"
)

// agent(command=["claude"], env={}, workdir=None, provider=None, home="fresh")
func agent(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args); err != nil {
		return nil, err
	}
	command := stringList{"claude"}
	var (
		envs     stringDict
		workdir  string
		provider string
		home     = "fresh"
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command?", &command, "env?", &envs, "workdir??", &workdir, "provider??", &provider, "home?", &home); err != nil {
		return nil, err
	}
	switch home {
	case "fresh":
		home = ""
	case plan.HomePersistent:
	default:
		return nil, fmt.Errorf("%s: home is %q; want \"fresh\" (a new HOME at every start, the default) or \"persistent\" (kept between starts)", b.Name(), home)
	}
	if provider != "" {
		if _, ok := agents.Lookup(provider); !ok {
			return nil, fmt.Errorf("%s: provider %q is not an agent bottle knows; use one of %s, or leave it out", b.Name(), provider, strings.Join(agents.Names(), ", "))
		}
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	if s.Agent != nil {
		return nil, fmt.Errorf("%s: a profile declares one agent, and agent() was already called at %s", b.Name(), s.Agent.From)
	}
	if len(command) == 0 || command[0] == "" {
		return nil, fmt.Errorf("%s: command is empty; give the program and its arguments, such as [\"claude\"]", b.Name())
	}
	if workdir != "" {
		if err := checkSandboxPath("workdir", workdir); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
		workdir = path.Clean(workdir)
	}
	pos := callerPos(thread)
	for _, k := range envs.keys {
		if err := s.addEnv(k, envs.values[k], pos); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
	}
	s.Agent = &plan.Agent{Command: []string(command), Workdir: workdir, From: pos, Provider: provider, Home: home}
	return starlark.None, nil
}

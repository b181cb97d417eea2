package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// allow(host, ports=[443], allow_private=False)
func allow(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "host"); err != nil {
		return nil, err
	}
	var (
		host    string
		p       = ports{443}
		private bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "ports?", &p, "allow_private?", &private); err != nil {
		return nil, err
	}
	canon, err := plan.NormalizeHost(host)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	s.Rules = append(s.Rules, plan.Rule{Host: canon, Ports: []int(p), AllowPrivate: private, From: callerPos(thread)})
	return starlark.None, nil
}

package builtins

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// allow(host, ports=[443], allow_private=False, methods=None, paths=None,
// inspect=False)
//
// Lets the sandbox reach host on ports through the egress sidecar. methods
// (HTTP methods, any case) and paths (globs on the URL path, plan.CheckPath)
// limit the requests allowed; inspect has the egress sidecar scan what
// leaves. Any of the three makes the built-in egress sidecar decrypt the
// host's TLS, which the evaluator checks it has (plan.CheckEgressPolicy).
func allow(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "host"); err != nil {
		return nil, err
	}
	var (
		host           string
		p              = ports{443}
		private        bool
		methods, paths stringList // nil when not given
		inspect        bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &host, "ports?", &p, "allow_private?", &private,
		"methods??", &methods, "paths??", &paths, "inspect?", &inspect); err != nil {
		return nil, err
	}
	canon, err := plan.NormalizeHost(host)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	r := plan.Rule{Host: canon, Ports: []int(p), AllowPrivate: private, Inspect: inspect}
	if methods != nil {
		if r.Methods, err = plan.NormalizeMethods(methods); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
	}
	if paths != nil {
		if r.Paths, err = plan.NormalizePaths(paths); err != nil {
			return nil, fmt.Errorf("%s: %v", b.Name(), err)
		}
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	r.From = callerPos(thread)
	s.Rules = append(s.Rules, r)
	return starlark.None, nil
}

package builtins

import (
	"fmt"
	"path"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// mount(src, dst, readonly=False)
func mount(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "src", "dst"); err != nil {
		return nil, err
	}
	var (
		src, dst string
		readonly bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "src", &src, "dst", &dst, "readonly?", &readonly); err != nil {
		return nil, err
	}
	if src == "" {
		return nil, fmt.Errorf("%s: src is empty; give a path relative to the profile's directory, such as \".\", or one starting with ~/", b.Name())
	}
	if err := checkSandboxPath("dst", dst); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	dst = path.Clean(dst)
	if dst == "/" {
		return nil, fmt.Errorf("%s: dst \"/\" would replace the sandbox's root; mount under a directory such as /workspace", b.Name())
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	host := s.resolveHostPath(src)
	if err := checkSandboxPath("src", host); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	for _, m := range s.Mounts {
		if m.Target == dst {
			return nil, fmt.Errorf("%s: %s is already the target of the mount declared at %s", b.Name(), dst, m.From)
		}
	}
	s.Mounts = append(s.Mounts, plan.Mount{Source: src, HostPath: host, Target: dst, ReadOnly: readonly, From: callerPos(thread)})
	return starlark.None, nil
}

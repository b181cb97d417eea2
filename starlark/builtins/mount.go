package builtins

import (
	"fmt"
	"path"
	"slices"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// mount(src, dst, readonly=False, protect=[])
//
// A writable mount protects plan.DefaultProtect and the paths protect
// adds (relative to src; a trailing "/" for a directory).
func mount(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "src", "dst"); err != nil {
		return nil, err
	}
	var (
		src, dst string
		readonly bool
		protect  *starlark.List
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "src", &src, "dst", &dst, "readonly?", &readonly, "protect?", &protect); err != nil {
		return nil, err
	}
	var extra []string
	if protect != nil {
		if readonly && protect.Len() > 0 {
			return nil, fmt.Errorf("%s: protect is for writable mounts; a read-only mount protects everything under it", b.Name())
		}
		for i := 0; i < protect.Len(); i++ {
			s, ok := starlark.AsString(protect.Index(i))
			if !ok {
				return nil, fmt.Errorf("%s: protect[%d] is %s; want a string path such as \".env\"", b.Name(), i, protect.Index(i).Type())
			}
			if err := plan.CheckProtect(s); err != nil {
				return nil, fmt.Errorf("%s: %v", b.Name(), err)
			}
			extra = append(extra, s)
		}
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
	m := plan.Mount{Source: src, HostPath: host, Target: dst, ReadOnly: readonly, Protect: []string{}, From: callerPos(thread)}
	if !readonly {
		m.Protect = append(slices.Clone(plan.DefaultProtect), extra...)
		slices.Sort(m.Protect)
		m.Protect = slices.Compact(m.Protect)
	}
	s.Mounts = append(s.Mounts, m)
	return starlark.None, nil
}

package builtins

import (
	"fmt"
	"math"
	"slices"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// size is a byte count written as an int or a string such as "8GiB".
type size struct {
	bytes int64
	set   bool
}

// Unpack implements starlark.Unpacker.
func (s *size) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n < 1 {
			return fmt.Errorf("size %s is out of range; give a positive number of bytes or a string such as \"8GiB\"", v)
		}
		s.bytes, s.set = n, true
		return nil
	case starlark.String:
		n, err := plan.ParseSize(string(v))
		if err != nil {
			return err
		}
		s.bytes, s.set = n, true
		return nil
	}
	return fmt.Errorf("got %s, want a size: an int (bytes) or a string such as \"8GiB\"", v.Type())
}

// cpus is a CPU count, an int or a float.
type cpus struct {
	n   float64
	set bool
}

// Unpack implements starlark.Unpacker.
func (c *cpus) Unpack(v starlark.Value) error {
	var f float64
	switch v := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.Int:
		i, ok := v.Int64()
		if !ok {
			return fmt.Errorf("cpus %s is out of range", v)
		}
		f = float64(i)
	case starlark.Float:
		f = float64(v)
	default:
		return fmt.Errorf("got %s, want a number of CPUs such as 2 or 1.5", v.Type())
	}
	if !(f > 0) || f > 1024 || math.IsInf(f, 0) {
		return fmt.Errorf("cpus %v is out of range; give a number greater than 0 and at most 1024", f)
	}
	c.n, c.set = f, true
	return nil
}

// ports is a non-empty list of TCP ports, sorted and de-duplicated.
type ports []int

// Unpack implements starlark.Unpacker.
func (p *ports) Unpack(v starlark.Value) error {
	var out []int
	add := func(x starlark.Value) error {
		i, ok := x.(starlark.Int)
		if !ok {
			return fmt.Errorf("got %s in ports, want an int from 1 to 65535", x.Type())
		}
		n, ok := i.Int64()
		if !ok || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is out of range; ports are from 1 to 65535", i)
		}
		out = append(out, int(n))
		return nil
	}
	switch v := v.(type) {
	case starlark.Int:
		if err := add(v); err != nil {
			return err
		}
	case *starlark.List, starlark.Tuple:
		it := starlark.Iterate(v)
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			if err := add(x); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("got %s, want a list of ports such as [443, 8443]", v.Type())
	}
	if len(out) == 0 {
		return fmt.Errorf("ports is empty; give at least one port, such as [443]")
	}
	slices.Sort(out)
	*p = slices.Compact(out)
	return nil
}

// stringList is a list (or tuple) of strings.
type stringList []string

// Unpack implements starlark.Unpacker.
func (l *stringList) Unpack(v starlark.Value) error {
	it := starlark.Iterate(v)
	if it == nil {
		return fmt.Errorf("got %s, want a list of strings", v.Type())
	}
	defer it.Done()
	if _, ok := v.(starlark.String); ok {
		return fmt.Errorf("got string, want a list of strings")
	}
	if _, ok := v.(*starlark.Dict); ok {
		return fmt.Errorf("got dict, want a list of strings")
	}
	out := []string{}
	var x starlark.Value
	for it.Next(&x) {
		s, ok := x.(starlark.String)
		if !ok {
			return fmt.Errorf("got %s in a list of strings", x.Type())
		}
		out = append(out, string(s))
	}
	*l = out
	return nil
}

// stringDict is a dict from strings to strings, kept in key order.
type stringDict struct {
	keys   []string
	values map[string]string
}

// Unpack implements starlark.Unpacker.
func (d *stringDict) Unpack(v starlark.Value) error {
	dict, ok := v.(*starlark.Dict)
	if !ok {
		return fmt.Errorf("got %s, want a dict of strings to strings", v.Type())
	}
	d.values = map[string]string{}
	for _, item := range dict.Items() {
		k, ok := item[0].(starlark.String)
		if !ok {
			return fmt.Errorf("got %s key, want a dict of strings to strings", item[0].Type())
		}
		val, ok := item[1].(starlark.String)
		if !ok {
			return fmt.Errorf("value of %q is %s, want a string", string(k), item[1].Type())
		}
		d.keys = append(d.keys, string(k))
		d.values[string(k)] = string(val)
	}
	return nil
}

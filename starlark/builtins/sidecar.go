package builtins

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// sidecar(name, **options)
//
// Declares the sidecar registered under name (package sidecars), once per
// bottle; a bottle has exactly one egress sidecar (Unit.Egress). The
// options a sidecar takes, their defaults and their meaning are its unit's
// (Unit.Options, Unit.Build): see the build function of each unit package,
// such as sidecars/gitgate's.
func sidecar(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s: takes the sidecar's name as its one positional argument, then options by keyword, as in sidecar(\"supervise\", timeout = \"10m\")", b.Name())
	}
	nameV, ok := args[0].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("%s: name is %s, want a string, one of %s", b.Name(), args[0].Type(), strings.Join(sidecars.Names(), ", "))
	}
	name := string(nameV)
	unit, ok := sidecars.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%s: unknown sidecar %q; the known sidecars are %s", b.Name(), name, strings.Join(sidecars.Names(), ", "))
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	for _, sc := range s.Sidecars {
		if sc.Name == name {
			return nil, fmt.Errorf("%s: %s is already declared at %s; declare each sidecar once", b.Name(), name, sc.From)
		}
		if other, ok := sidecars.Lookup(sc.Name); ok && unit.Egress && other.Egress {
			return nil, fmt.Errorf("%s: a bottle has exactly one egress sidecar, and %s is already declared at %s", b.Name(), sc.Name, sc.From)
		}
	}
	o := &options{state: s, vals: map[string]starlark.Value{}}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if !slices.Contains(unit.Options, k) {
			return nil, fmt.Errorf("%s: %s has no option %q; its options are %s", b.Name(), name, k, strings.Join(unit.Options, ", "))
		}
		o.set(kv[0], kv[1])
	}
	sc := plan.Sidecar{Name: name, From: callerPos(thread)}
	if unit.Build != nil {
		if err := unit.Build(o, &sc); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", b.Name(), name, err)
		}
	}
	s.Sidecars = append(s.Sidecars, sc)
	return starlark.None, nil
}

// options is sidecars.Options over one sidecar's keyword options, or over
// a dict given as one of them.
type options struct {
	state *State
	keys  []sidecars.Key
	vals  map[string]starlark.Value // the string keys' values
}

var _ sidecars.Options = (*options)(nil)

// set records one option or dict entry.
func (o *options) set(k, v starlark.Value) {
	key := sidecars.Key{Repr: k.String()}
	if s, ok := k.(starlark.String); ok {
		key.Name, key.IsString = string(s), true
		o.vals[key.Name] = v
	}
	o.keys = append(o.keys, key)
}

func (o *options) get(name string) (starlark.Value, bool) {
	v, ok := o.vals[name]
	if ok && v == starlark.None {
		return nil, false
	}
	return v, ok
}

func (o *options) Has(name string) bool {
	_, ok := o.get(name)
	return ok
}

func (o *options) Keys() []sidecars.Key { return slices.Clone(o.keys) }

func (o *options) HostPath(p string) string { return o.state.resolveHostPath(p) }

func (o *options) String(name, def string) (string, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	s, ok := v.(starlark.String)
	if !ok {
		return "", fmt.Errorf("option %s is %s, want a string", name, v.Type())
	}
	return string(s), nil
}

func (o *options) Bool(name string, def bool) (bool, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	b, ok := v.(starlark.Bool)
	if !ok {
		return false, fmt.Errorf("option %s is %s, want True or False", name, v.Type())
	}
	return bool(b), nil
}

func (o *options) Int(name string, def, lo, hi int) (int, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	i, ok := v.(starlark.Int)
	if !ok {
		return 0, fmt.Errorf("option %s is %s, want an int", name, v.Type())
	}
	n, ok := i.Int64()
	if !ok || n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("option %s is %s, want an int from %d to %d", name, i, lo, hi)
	}
	return int(n), nil
}

func (o *options) Duration(name, def string) (string, error) {
	s, err := o.String(name, def)
	if err != nil {
		return "", err
	}
	return sidecars.ParseDuration(name, s)
}

func (o *options) Strings(name string, def []string) ([]string, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	var l stringList
	if err := l.Unpack(v); err != nil {
		return nil, fmt.Errorf("option %s: %v", name, err)
	}
	return []string(l), nil
}

func (o *options) Dict(name, want string) ([]sidecars.OptionItem, error) {
	v, ok := o.get(name)
	if !ok {
		return nil, nil
	}
	dict, ok := v.(*starlark.Dict)
	if !ok || dict.Len() == 0 {
		return nil, fmt.Errorf("option %s is %s, want %s", name, v.Type(), want)
	}
	var items []sidecars.OptionItem
	for _, kv := range dict.Items() {
		it := sidecars.OptionItem{Key: sidecars.Key{Repr: kv[0].String()}, Type: kv[1].Type()}
		if s, ok := kv[0].(starlark.String); ok {
			it.Key.Name, it.Key.IsString = string(s), true
		}
		switch v := kv[1].(type) {
		case starlark.String:
			it.Value = string(v)
		case *starlark.Dict:
			sub := &options{state: o.state, vals: map[string]starlark.Value{}}
			for _, e := range v.Items() {
				sub.set(e[0], e[1])
			}
			it.Value = sidecars.Options(sub)
		}
		items = append(items, it)
	}
	return items, nil
}

// DefaultEgressConfig is the built-in egress sidecar's configuration when
// a profile sets none of its options, as when bottle adds it itself; nil
// when the egress unit is not linked in.
func DefaultEgressConfig() *plan.EgressConfig {
	sc, err := sidecars.Default(plan.SidecarEgress)
	if err != nil {
		return nil
	}
	return sc.Egress
}

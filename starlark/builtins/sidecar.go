package builtins

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

// sidecarSchemas lists, per sidecar, the options a profile may set and the
// function that checks them and fills in defaults.
var sidecarSchemas = map[string]struct {
	options []string
	build   func(o *options, sc *plan.Sidecar) error
}{
	plan.SidecarEgress:    {[]string{"connect_timeout", "idle_timeout"}, buildEgress},
	plan.SidecarPipelock:  {[]string{"body_scan_action", "explain_blocks", "idle_timeout_seconds", "max_tunnel_seconds", "request_body_scanning"}, buildPipelock},
	plan.SidecarGitGate:   {[]string{"known_hosts", "max_push_size", "protected", "protected_tags", "remotes", "ssh_key", "token_env"}, buildGitGate},
	plan.SidecarSupervise: {[]string{"timeout"}, buildSupervise},
}

// sidecar(name, **config)
func sidecar(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s: takes the sidecar's name as its one positional argument, then options by keyword, as in sidecar(\"supervise\", timeout = \"10m\")", b.Name())
	}
	nameV, ok := args[0].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("%s: name is %s, want a string, one of %s", b.Name(), args[0].Type(), strings.Join(plan.SidecarNames, ", "))
	}
	name := string(nameV)
	schema, ok := sidecarSchemas[name]
	if !ok {
		return nil, fmt.Errorf("%s: unknown sidecar %q; the known sidecars are %s", b.Name(), name, strings.Join(plan.SidecarNames, ", "))
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	isEgress := func(n string) bool { return n == plan.SidecarEgress || n == plan.SidecarPipelock }
	for _, sc := range s.Sidecars {
		if sc.Name == name {
			return nil, fmt.Errorf("%s: %s is already declared at %s; declare each sidecar once", b.Name(), name, sc.From)
		}
		if isEgress(name) && isEgress(sc.Name) {
			return nil, fmt.Errorf("%s: a bottle has exactly one egress sidecar, and %s is already declared at %s", b.Name(), sc.Name, sc.From)
		}
	}
	o := &options{sidecar: name, state: s, vals: map[string]starlark.Value{}}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if !slices.Contains(schema.options, k) {
			return nil, fmt.Errorf("%s: %s has no option %q; its options are %s", b.Name(), name, k, strings.Join(schema.options, ", "))
		}
		o.vals[k] = kv[1]
	}
	sc := plan.Sidecar{Name: name, From: callerPos(thread)}
	if err := schema.build(o, &sc); err != nil {
		return nil, fmt.Errorf("%s: %s: %v", b.Name(), name, err)
	}
	s.Sidecars = append(s.Sidecars, sc)
	return starlark.None, nil
}

// options reads one sidecar's keyword options with their defaults.
type options struct {
	sidecar string
	state   *State
	vals    map[string]starlark.Value
}

func (o *options) get(name string) (starlark.Value, bool) {
	v, ok := o.vals[name]
	if ok && v == starlark.None {
		return nil, false
	}
	return v, ok
}

func (o *options) str(name, def string) (string, error) {
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

func (o *options) boolean(name string, def bool) (bool, error) {
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

func (o *options) integer(name string, def, lo, hi int) (int, error) {
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

func (o *options) duration(name, def string) (string, error) {
	s, err := o.str(name, def)
	if err != nil {
		return "", err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return "", fmt.Errorf("option %s is %q, want a positive duration such as \"30s\", \"10m\" or \"1h\"", name, s)
	}
	return d.String(), nil
}

func (o *options) strings(name string, def []string) ([]string, error) {
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

// DefaultEgressConfig is the built-in egress sidecar's configuration when
// a profile sets none of its options, as when bottle adds it itself.
func DefaultEgressConfig() *plan.EgressConfig {
	sc := plan.Sidecar{}
	// Defaults cannot fail to parse.
	_ = buildEgress(&options{vals: map[string]starlark.Value{}}, &sc)
	return sc.Egress
}

func buildEgress(o *options, sc *plan.Sidecar) error {
	var c plan.EgressConfig
	var err error
	if c.ConnectTimeout, err = o.duration("connect_timeout", "10s"); err != nil {
		return err
	}
	if c.IdleTimeout, err = o.duration("idle_timeout", "1h"); err != nil {
		return err
	}
	sc.Egress = &c
	return nil
}

func buildPipelock(o *options, sc *plan.Sidecar) error {
	var c plan.PipelockConfig
	var err error
	if c.ExplainBlocks, err = o.boolean("explain_blocks", true); err != nil {
		return err
	}
	if c.RequestBodyScanning, err = o.boolean("request_body_scanning", false); err != nil {
		return err
	}
	if c.BodyScanAction, err = o.str("body_scan_action", "block"); err != nil {
		return err
	}
	if c.BodyScanAction != "block" && c.BodyScanAction != "warn" {
		return fmt.Errorf("option body_scan_action is %q, want \"block\" or \"warn\"", c.BodyScanAction)
	}
	if c.IdleTimeoutSeconds, err = o.integer("idle_timeout_seconds", 3600, 1, 7*24*3600); err != nil {
		return err
	}
	if c.MaxTunnelSeconds, err = o.integer("max_tunnel_seconds", 24*3600, 1, 7*24*3600); err != nil {
		return err
	}
	sc.Pipelock = &c
	return nil
}

func buildSupervise(o *options, sc *plan.Sidecar) error {
	t, err := o.duration("timeout", "10m")
	if err != nil {
		return err
	}
	sc.Supervise = &plan.SuperviseConfig{Timeout: t}
	return nil
}

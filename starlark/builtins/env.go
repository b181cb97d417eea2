package builtins

import (
	"fmt"
	"regexp"
	"strings"

	"go.starlark.net/starlark"

	"github.com/bottle-dev/bottle/plan"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedEnv are set by bottle itself to route the agent through its sidecars.
var reservedEnv = map[string]bool{
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "ALL_PROXY": true,
}

func checkEnvName(name string) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
	}
	if reservedEnv[strings.ToUpper(name)] {
		return fmt.Errorf("%s is set by bottle to route the agent through its egress sidecar and cannot be set by a profile", name)
	}
	return nil
}

// addEnv records a literal environment variable, refusing duplicates.
func (s *State) addEnv(name, value, pos string) error {
	if err := checkEnvName(name); err != nil {
		return err
	}
	if err := s.checkEnvUnused(name); err != nil {
		return err
	}
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("value of %s holds a NUL byte", name)
	}
	s.Env = append(s.Env, plan.EnvVar{Name: name, Value: value, From: pos})
	return nil
}

func (s *State) checkEnvUnused(name string) error {
	for _, e := range s.Env {
		if e.Name == name {
			return fmt.Errorf("%s is already set at %s", name, e.From)
		}
	}
	for _, e := range s.Secrets {
		if e.Name == name {
			return fmt.Errorf("%s is already a secret declared at %s", name, e.From)
		}
	}
	return nil
}

// env(name, value)
func env(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, value string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "value", &value); err != nil {
		return nil, err
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.addEnv(name, value, callerPos(thread)); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	return starlark.None, nil
}

// secret(name, from_env=None, from_file=None, hosts=None)
//
// An environment variable of the agent whose value bottle reads from the
// host at launch. With hosts, the secret is bound to those hosts: the
// agent gets a placeholder, and the built-in egress sidecar puts the value
// in its place on requests to those hosts only. Each host must be allowed
// by an allow() rule, which the evaluator checks once the profile has run
// (plan.CheckEgressPolicy).
func secret(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := maxPositional(b, args, "name"); err != nil {
		return nil, err
	}
	var (
		name, fromEnv, fromFile string
		hosts                   stringList // nil when not given
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "from_env??", &fromEnv, "from_file??", &fromFile,
		"hosts??", &hosts); err != nil {
		return nil, err
	}
	s, err := stateOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := checkEnvName(name); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	if (fromEnv == "") == (fromFile == "") {
		return nil, fmt.Errorf("%s: %s needs exactly one source: from_env = \"HOST_VAR\" or from_file = \"path\"", b.Name(), name)
	}
	if fromEnv != "" && !envNameRE.MatchString(fromEnv) {
		return nil, fmt.Errorf("%s: from_env %q is not an environment variable name", b.Name(), fromEnv)
	}
	if err := s.checkEnvUnused(name); err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	sec := plan.Secret{Name: name, FromEnv: fromEnv, From: callerPos(thread)}
	if hosts != nil {
		if sec.Hosts, err = plan.NormalizeSecretHosts(hosts); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", b.Name(), name, err)
		}
	}
	if fromFile != "" {
		sec.FromFile = s.resolveHostPath(fromFile)
	}
	s.Secrets = append(s.Secrets, sec)
	return starlark.None, nil
}

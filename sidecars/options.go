package sidecars

import (
	"fmt"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// Options are the keyword options a profile gave one sidecar, as in
// sidecar("supervise", timeout = "10m"), seen through plain Go types so
// that a unit's schema (Unit.Build) needs nothing of the profile language.
// The evaluator implements it.
//
// An option set to None counts as unset. Each accessor returns def when the
// option is unset, and otherwise an error when its value is not what the
// accessor reads, worded "option <name> is <what>, want <what>", for the
// evaluator to prefix with the builtin and the sidecar's name.
type Options interface {
	// Has reports whether the option is set.
	Has(name string) bool
	// String reads a string.
	String(name, def string) (string, error)
	// Bool reads True or False.
	Bool(name string, def bool) (bool, error)
	// Int reads an int from lo to hi.
	Int(name string, def, lo, hi int) (int, error)
	// Duration reads a positive Go duration ("30s", "10m") and returns it
	// in canonical form ("10m0s"); def is parsed the same way.
	Duration(name, def string) (string, error)
	// Strings reads a list of strings.
	Strings(name string, def []string) ([]string, error)
	// Dict reads a non-empty dict, entries in the profile's order; want
	// says what the option should be, for the error when it is anything
	// else ("option <name> is <type>, want <want>"). It returns no entries
	// and no error when the option is unset.
	Dict(name, want string) ([]OptionItem, error)
	// Keys lists the options that were given (None included), in the
	// profile's order. A dict's entry that is itself a dict lists its keys
	// here, strings or not, for its unit to refuse the ones it does not
	// know.
	Keys() []Key
	// HostPath resolves a host path given in the profile: "~" and "~/..."
	// against the home directory, a relative path against the profile's
	// directory; the result is clean and absolute.
	HostPath(p string) string
}

// Key is an option's name or a dict's key as the profile wrote it.
type Key struct {
	// Name is the key when it is a string (IsString); "" otherwise.
	Name     string
	IsString bool
	// Repr is the key in the profile language's notation ("\"origin\"",
	// "1"), for messages.
	Repr string
}

// OptionItem is one entry of a dict option (Options.Dict).
type OptionItem struct {
	Key Key
	// Value is the entry's value: a string, Options when it is a dict
	// (its string keys are its options; Options.Keys lists every key), or
	// nil for anything else.
	Value any
	// Type is the value's type in the profile language ("string", "dict",
	// "list"), for messages.
	Type string
}

// NoOptions is a sidecar declared without options: every accessor returns
// its default, and HostPath returns its path as it is.
type NoOptions struct{}

func (NoOptions) Has(string) bool                                  { return false }
func (NoOptions) String(_, def string) (string, error)             { return def, nil }
func (NoOptions) Bool(_ string, def bool) (bool, error)            { return def, nil }
func (NoOptions) Int(_ string, def, _, _ int) (int, error)         { return def, nil }
func (NoOptions) Strings(_ string, def []string) ([]string, error) { return def, nil }
func (NoOptions) Dict(_, _ string) ([]OptionItem, error)           { return nil, nil }
func (NoOptions) Keys() []Key                                      { return nil }
func (NoOptions) HostPath(p string) string                         { return p }

// Duration returns def in canonical form.
func (NoOptions) Duration(name, def string) (string, error) { return ParseDuration(name, def) }

// ParseDuration checks that s, the value of option name, is a positive Go
// duration and returns it in canonical form ("10m" → "10m0s").
func ParseDuration(name, s string) (string, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return "", fmt.Errorf("option %s is %q, want a positive duration such as \"30s\", \"10m\" or \"1h\"", name, s)
	}
	return d.String(), nil
}

// Default is the plan sidecar named name as declared without options, as
// when bottle adds the egress sidecar itself.
func Default(name string) (plan.Sidecar, error) {
	u, err := Get(name)
	if err != nil {
		return plan.Sidecar{}, err
	}
	sc := plan.Sidecar{Name: name}
	if u.Build == nil {
		return sc, nil
	}
	if err := u.Build(NoOptions{}, &sc); err != nil {
		return plan.Sidecar{}, fmt.Errorf("%s: %v", name, err)
	}
	return sc, nil
}

//go:build linux

package smolvm

import (
	"fmt"
	"strconv"
	"strings"
)

// flagSpec describes one option of a subcommand, as smolvm's clap
// definitions (src/cli/machine.rs) declare it.
type flagSpec struct {
	long  string
	short byte
	// value is the clap value name ("NAME"); empty for a boolean switch.
	value string
	// multi allows the option more than once (clap Vec<T> fields).
	multi bool
	// since is the first smolvm version that has the option; the zero
	// value means every version this stand-in emulates.
	since [3]int
	// check validates a value the way clap's value_parser does; it returns
	// the text clap prints after "invalid value 'X' for '--opt <V>': ".
	check func(string) string
}

// trailing says what a subcommand does with arguments that are not options.
type trailing int

const (
	// noTrailing: any positional argument is an error.
	noTrailing trailing = iota
	// afterDashDash: a command is accepted only after "--" (clap last = true).
	afterDashDash
	// varArgRequired: the first positional starts the command, which is
	// required (clap trailing_var_arg = true, required = true).
	varArgRequired
)

type cmdSpec struct {
	usage    string
	flags    []flagSpec
	trailing trailing
	// required lists long names of options that must be given.
	required []string
	// conflicts lists pairs of options that cannot be combined.
	conflicts [][2]string
}

// parsed is the result of parsing a subcommand's arguments.
type parsed struct {
	values  map[string][]string
	command []string
}

func (p *parsed) has(long string) bool { return len(p.values[long]) > 0 }

func (p *parsed) last(long string) (string, bool) {
	v := p.values[long]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// usageError is a command-line error, which clap prints as "error: ..."
// followed by the usage, exiting with status 2.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string {
	return "error: " + e.msg + "\n\nUsage: " + e.usage + "\n\nFor more information, try '--help'.\n"
}

func display(f *flagSpec) string {
	if f.value == "" {
		return "--" + f.long
	}
	return "--" + f.long + " <" + f.value + ">"
}

// parseArgs parses args against spec the way clap does for smolvm's
// derive definitions, hiding options newer than version.
func parseArgs(spec *cmdSpec, args []string, version [3]int) (*parsed, error) {
	p := &parsed{values: map[string][]string{}}
	fail := func(format string, a ...any) error {
		return &usageError{msg: fmt.Sprintf(format, a...), usage: spec.usage}
	}
	byLong := map[string]*flagSpec{}
	byShort := map[byte]*flagSpec{}
	for i := range spec.flags {
		f := &spec.flags[i]
		if versionLess(version, f.since) {
			continue
		}
		byLong[f.long] = f
		if f.short != 0 {
			byShort[f.short] = f
		}
	}
	set := func(f *flagSpec, v string) error {
		if !f.multi && len(p.values[f.long]) > 0 {
			return fail("the argument '%s' cannot be used multiple times", display(f))
		}
		if f.check != nil {
			if msg := f.check(v); msg != "" {
				return fail("invalid value '%s' for '%s': %s", v, display(f), msg)
			}
		}
		p.values[f.long] = append(p.values[f.long], v)
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if spec.trailing == noTrailing {
				if i+1 < len(args) {
					return nil, fail("unexpected argument '%s' found", args[i+1])
				}
				return p, nil
			}
			p.command = append(p.command, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			f := byLong[name]
			if f == nil {
				return nil, fail("unexpected argument '--%s' found", name)
			}
			if f.value == "" {
				if hasVal {
					return nil, fail("unexpected value '%s' for '%s' found; no more were expected", val, display(f))
				}
				if err := set(f, "true"); err != nil {
					return nil, err
				}
				continue
			}
			if !hasVal {
				if !valueFollows(args, i) {
					return nil, fail("a value is required for '%s' but none was supplied", display(f))
				}
				i++
				val = args[i]
			}
			if err := set(f, val); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				f := byShort[a[j]]
				if f == nil {
					return nil, fail("unexpected argument '-%c' found", a[j])
				}
				if f.value == "" {
					if err := set(f, "true"); err != nil {
						return nil, err
					}
					continue
				}
				val := strings.TrimPrefix(a[j+1:], "=")
				if j+1 == len(a) {
					if !valueFollows(args, i) {
						return nil, fail("a value is required for '%s' but none was supplied", display(f))
					}
					i++
					val = args[i]
				}
				if err := set(f, val); err != nil {
					return nil, err
				}
				break
			}
		default:
			if spec.trailing != varArgRequired {
				return nil, fail("unexpected argument '%s' found", a)
			}
			p.command = append(p.command, args[i:]...)
			i = len(args)
		}
	}
	var missing []string
	for _, r := range spec.required {
		if !p.has(r) {
			missing = append(missing, "  "+display(byLong[r]))
		}
	}
	if spec.trailing == varArgRequired && len(p.command) == 0 {
		missing = append(missing, "  <COMMAND>...")
	}
	if len(missing) > 0 {
		return nil, fail("the following required arguments were not provided:\n%s", strings.Join(missing, "\n"))
	}
	for _, c := range spec.conflicts {
		if p.has(c[0]) && p.has(c[1]) {
			return nil, fail("the argument '%s' cannot be used with '%s'", display(byLong[c[0]]), display(byLong[c[1]]))
		}
	}
	return p, nil
}

// valueFollows reports whether args[i+1] can be the value of the option
// at args[i]: clap does not take a word starting with '-' as a value.
func valueFollows(args []string, i int) bool {
	return i+1 < len(args) && (len(args[i+1]) < 2 || args[i+1][0] != '-')
}

// uintCheck returns a value check for an unsigned integer of the given
// bit size, with Rust's messages for the parse failures clap reports.
func uintCheck(bits int) func(string) string {
	return func(s string) string {
		if s == "" {
			return "cannot parse integer from empty string"
		}
		if _, err := strconv.ParseUint(s, 10, bits); err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return "number too large to fit in target type"
			}
			return "invalid digit found in string"
		}
		return ""
	}
}

// parseVersion reads "1.8.0" or "v1.8.0".
func parseVersion(s string) ([3]int, error) {
	var v [3]int
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || strconv.Itoa(n) != p {
			return v, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
		}
		v[i] = n
	}
	return v, nil
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// Package pipelock is a stand-in for the pipelock command line, for tests
// only: bottle's testscript suites register Main as "pipelock", and
// cmd/pipelock builds it as a binary, so that bottle can be tested where
// pipelock is not installed.
//
// It follows pipelock 2.3.0 (github.com/luckyPipewrench/pipelock, tag
// v2.3.0, commit 7a3b7de4a555) and the cobra v1.10.2 and pflag v1.0.9 it is
// built with (pipelock go.mod:17, 49@v2.3.0). Every emulated flag, command,
// output line, endpoint and config key carries a citation of the form
// path:line@v2.3.0 (cobra and pflag lines are cited with their own tags).
// What the stand-in does not emulate it says so: it exits with status 3
// and a "fake pipelock: ... not emulated" message, or answers HTTP 501 with
// such a body, rather than guess.
//
// Commands:
//
//	pipelock --version | -v              "pipelock version V" on stdout
//	pipelock version                     version and build data on stderr
//	pipelock check [--config FILE]       strict parse and validation of the
//	                                     sections bottle renders (see the
//	                                     config package); summary or
//	                                     "Config validation FAILED: ..."
//	pipelock run --config FILE [--listen ADDR] [--mode M] [-- AGENT_ARGS]
//	                                     validates like check, listens on
//	                                     ADDR (default fetch_proxy.listen),
//	                                     answers /health as pipelock does
//	                                     and makes pipelock's forward-proxy
//	                                     decision up to its allow-list and
//	                                     blocklist (see serve.go); stops on
//	                                     SIGINT or SIGTERM.
//
// The persistent --home flag is accepted everywhere and ignored.
//
// Environment (the stand-in's own knobs, not pipelock's):
//
//	FAKE_PIPELOCK_LOG      file to which every invocation's argv is appended
//	                       (fakes.LogLine form).
//	FAKE_PIPELOCK_VERSION  version to report (default 2.3.0), to emulate
//	                       another release or a plain "go build" (0.1.0-dev).
package pipelock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bottle-dev/bottle/internal/fakes"
	"github.com/bottle-dev/bottle/internal/fakes/pipelock/config"
)

// Version is the pipelock release this stand-in follows and reports by default.
const Version = "2.3.0"

const (
	exitOK    = 0
	exitError = 1 // cmd/pipelock/main.go:29-32 and internal/cliutil/exit.go:55-61@v2.3.0: any error exits 1
	exitFake  = 3 // the stand-in's own: not emulated
)

// Main runs the stand-in with os.Args and the process environment and
// returns its exit status.
func Main() int {
	// internal/cli/runtime/run.go:172-176@v2.3.0: run stops on SIGINT and SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
}

// errNotEmulated reports something real pipelock accepts that the
// stand-in does not emulate; run exits exitFake with its message.
type errNotEmulated string

func (e errNotEmulated) Error() string {
	return "fake pipelock: " + string(e) + " is not emulated by this stand-in"
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if err := fakes.AppendLog(getenv("FAKE_PIPELOCK_LOG"), "pipelock", args); err != nil {
		fmt.Fprintf(stderr, "fake pipelock: %v\n", err)
		return exitFake
	}
	version := getenv("FAKE_PIPELOCK_VERSION")
	if version == "" {
		version = Version
	}
	err := dispatch(ctx, args, version, stdout, stderr)
	var ne errNotEmulated
	var ce *config.NotEmulatedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ne), errors.As(err, &ce):
		fmt.Fprintln(stderr, err)
		return exitFake
	default:
		// cmd/pipelock/main.go:29-32@v2.3.0: the root command silences
		// cobra's own printing (internal/cli/root.go:61-62@v2.3.0), and
		// main prints the error on its own line to stderr.
		fmt.Fprintln(stderr, err)
		return exitError
	}
}

func dispatch(ctx context.Context, args []string, version string, stdout, stderr io.Writer) error {
	// internal/cli/root.go:65-66@v2.3.0: --home is a persistent flag, valid
	// before or after the command. The stand-in has no home state to use.
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case a == "--home":
			if i+1 >= len(args) {
				return errors.New("flag needs an argument: --home") // pflag errors.go:72-79@v1.0.9
			}
			i++
		case strings.HasPrefix(a, "--home="):
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		// cobra prints the root command's help; not emulated.
		return errNotEmulated("pipelock without a command (help)")
	}
	switch rest[0] {
	case "--version", "-v":
		if len(rest) > 1 {
			return errNotEmulated("--version with further arguments")
		}
		// internal/cli/root.go:60@v2.3.0 sets the root command's Version;
		// cobra command.go:939-953, 2064-2072@v1.10.2 prints
		// "<name> version <Version>\n" to stdout and exits 0. Release
		// builds set Version from the tag without "v" (.goreleaser.yaml:26@v2.3.0).
		fmt.Fprintf(stdout, "pipelock version %s\n", version)
		return nil
	case "version":
		if _, _, err := parseFlags(rest[1:], nil); err != nil {
			return err
		}
		// internal/cli/version.go:20-25@v2.3.0, printed with cmd.Printf, which
		// writes to stderr (cobra command.go:1435-1447@v1.10.2). The build
		// data are the plain-build defaults (internal/cliutil/version.go:8-13@v2.3.0);
		// a release build shows its own.
		fmt.Fprintf(stderr, "pipelock version %s\n  build date: unknown\n  git commit: unknown\n  go version: unknown\n", version)
		return nil
	case "check":
		flags, _, err := parseFlags(rest[1:], checkFlags)
		if err != nil {
			return err
		}
		return check(flags, stderr)
	case "run":
		flags, pos, err := parseFlags(rest[1:], runFlags)
		if err != nil {
			return err
		}
		return serve(ctx, flags, pos, version, stdout, stderr)
	}
	if strings.HasPrefix(rest[0], "-") {
		// The root command's own flags are --home, --version and --help
		// (internal/cli/root.go:58-66@v2.3.0, cobra command.go:1238-1258@v1.10.2).
		switch name, _, _ := strings.Cut(strings.TrimLeft(rest[0], "-"), "="); name {
		case "help", "h":
			return errNotEmulated("--help")
		default:
			if strings.HasPrefix(rest[0], "--") {
				return fmt.Errorf("unknown flag: --%s", name) // pflag errors.go:39-40@v1.0.9
			}
			return fmt.Errorf("unknown shorthand flag: %q in %s", rest[0][1], rest[0]) // pflag errors.go:42-44@v1.0.9
		}
	}
	// internal/cli/root.go:68-123@v2.3.0 registers many more commands, and
	// cobra answers unknown ones with suggestions; neither is emulated.
	return errNotEmulated(fmt.Sprintf("command %q", rest[0]))
}

// flagSpec describes one flag of a command: its one-letter shorthand (0
// for none), whether it takes a value, and whether the stand-in emulates it.
type flagSpec struct {
	short    byte
	value    bool
	emulated bool
}

// checkFlags: internal/cli/diag/check.go:83-84@v2.3.0.
var checkFlags = map[string]flagSpec{
	"config": {short: 'c', value: true, emulated: true},
	"url":    {value: true},
}

// runFlags: internal/cli/runtime/run.go:183-193@v2.3.0.
var runFlags = map[string]flagSpec{
	"config":                    {short: 'c', value: true, emulated: true},
	"mode":                      {short: 'm', value: true, emulated: true},
	"listen":                    {short: 'l', value: true, emulated: true},
	"mcp-listen":                {value: true},
	"mcp-upstream":              {value: true},
	"reverse-proxy":             {},
	"reverse-upstream":          {value: true},
	"reverse-listen":            {value: true},
	"capture-output":            {value: true},
	"capture-duration":          {value: true},
	"capture-escrow-public-key": {value: true},
}

// parsedFlags maps a long flag name to its value; a flag given twice keeps
// its last value, as pflag does for string flags.
type parsedFlags map[string]string

// positional is what pflag leaves after the flags: the arguments, and
// where "--" was (-1 when absent), as cobra's ArgsLenAtDash reports it.
type positional struct {
	args   []string
	atDash int
}

// parseFlags parses args as pflag v1.0.9 does (flag.go:978-1160@v1.0.9):
// "--name value", "--name=value", "-n value", "-nvalue" and "-n=value";
// arguments may be interspersed with flags; "--" ends the flags. -h and
// --help exist on every cobra command and are not emulated.
func parseFlags(args []string, spec map[string]flagSpec) (parsedFlags, positional, error) {
	out := parsedFlags{}
	pos := positional{atDash: -1}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos.atDash = len(pos.args)
			pos.args = append(pos.args, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos.args = append(pos.args, a)
			continue
		}
		var name, val string
		var hasVal bool
		var sp flagSpec
		var ok bool
		if strings.HasPrefix(a, "--") {
			name, val, hasVal = strings.Cut(a[2:], "=")
			if name == "" || name[0] == '-' {
				return nil, pos, fmt.Errorf("bad flag syntax: %s", a) // pflag errors.go:141-143@v1.0.9
			}
			if name == "help" {
				return nil, pos, errNotEmulated("--help")
			}
			if sp, ok = spec[name]; !ok {
				return nil, pos, fmt.Errorf("unknown flag: --%s", name) // pflag errors.go:39-40@v1.0.9
			}
		} else {
			c := a[1]
			if c == 'h' {
				return nil, pos, errNotEmulated("-h")
			}
			for n, s := range spec {
				if s.short != 0 && s.short == c {
					name, sp, ok = n, s, true
				}
			}
			if !ok {
				return nil, pos, fmt.Errorf("unknown shorthand flag: %q in %s", c, a) // pflag errors.go:42-44@v1.0.9
			}
			if len(a) > 2 {
				val, hasVal = strings.TrimPrefix(a[2:], "="), true
			}
		}
		if !sp.emulated {
			return nil, pos, errNotEmulated("flag --" + name)
		}
		if sp.value && !hasVal {
			if i+1 >= len(args) {
				if a[1] != '-' {
					return nil, pos, fmt.Errorf("flag needs an argument: %q in %s", a[1], a) // pflag errors.go:72-76@v1.0.9
				}
				return nil, pos, fmt.Errorf("flag needs an argument: --%s", name) // pflag errors.go:78@v1.0.9
			}
			i++
			val = args[i]
		}
		out[name] = val
	}
	return out, pos, nil
}

// check is `pipelock check` (internal/cli/diag/check.go:33-80@v2.3.0).
// Its report goes to stderr: cmd.Println and cmd.Printf write to
// OutOrStderr (cobra command.go:1435-1447@v1.10.2) and pipelock sets no
// output writer. Positional arguments are ignored (cobra args.go:28-32@v1.10.2).
func check(flags parsedFlags, stderr io.Writer) error {
	if _, ok := flags["url"]; ok {
		return errNotEmulated("check --url")
	}
	path := flags["config"]
	if path == "" {
		fmt.Fprintln(stderr, "Using default config (no --config specified)") // check.go:51-54
		return nil
	}
	cfg, err := config.Load(path) // check.go:38-42
	if err != nil {
		var ne *config.NotEmulatedError
		if !errors.As(err, &ne) {
			fmt.Fprintf(stderr, "Config validation FAILED: %v\n", err)
		}
		return err
	}
	m := cfg.FetchProxy.Monitoring
	fmt.Fprintln(stderr, "Config validation: OK")                                // check.go:43
	fmt.Fprintf(stderr, "  Mode:           %s\n", cfg.Mode)                      // check.go:44
	fmt.Fprintf(stderr, "  Listen:         %s\n", cfg.FetchProxy.Listen)         // check.go:45
	fmt.Fprintf(stderr, "  API allowlist:  %d domains\n", len(cfg.APIAllowlist)) // check.go:46
	fmt.Fprintf(stderr, "  Blocklist:      %d patterns\n", len(m.Blocklist))     // check.go:47
	fmt.Fprintf(stderr, "  DLP patterns:   %d rules\n", len(cfg.DLP.Patterns))   // check.go:48
	fmt.Fprintf(stderr, "  Entropy thresh: %.1f bits\n", m.EntropyThreshold)     // check.go:49
	fmt.Fprintf(stderr, "  Max URL length: %d chars\n", m.MaxURLLength)          // check.go:50
	return nil
}

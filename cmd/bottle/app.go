package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitRuntime = 1 // a runtime failure: a backend, a sidecar, a file
	exitUsage   = 2 // bad command line or a profile error
	// exitPreflight: the host is not ready for the backend (missing
	// program, daemon down, device not accessible).
	exitPreflight = 3
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// CLI is bottle's command line.
type CLI struct {
	Globals

	Start     StartCmd     `cmd:"" help:"Start a bottle from a profile (or print its plan with --dry-run)."`
	Check     CheckCmd     `cmd:"" help:"Evaluate and validate a profile without starting anything."`
	Fetch     FetchCmd     `cmd:"" help:"Fetch the shared profile repositories a profile's bottle.root declares into the cache."`
	Ls        LsCmd        `cmd:"" help:"List bottles: running ones and what stopped ones left behind."`
	Stop      StopCmd      `cmd:"" help:"Stop a running bottle and tear it down."`
	Logs      LogsCmd      `cmd:"" help:"Print a bottle's sidecar log, or its egress refusals with --denied."`
	Cleanup   CleanupCmd   `cmd:"" help:"Remove the containers, networks, processes and state that stopped bottles left behind."`
	Policy    PolicyCmd    `cmd:"" help:"Ask what a profile's egress policy allows."`
	Approve   ApproveCmd   `cmd:"" help:"Approve a stuck agent's pending request (egress or question)."`
	Deny      DenyCmd      `cmd:"" help:"Deny a stuck agent's pending request."`
	Supervise SuperviseCmd `cmd:"" help:"Review the pending requests of every running bottle in a terminal UI."`
	Version   VersionCmd   `cmd:"" help:"Print bottle's version."`

	Sidecars SidecarsCmd `cmd:"" hidden:"" help:"Run a bottle's sidecars from their rendered configuration."`
	Guest    GuestCmd    `cmd:"" hidden:"" help:"Relay sidecar sockets to loopback and run a command, inside a microVM."`
	Evaluate EvaluateCmd `cmd:"" hidden:"" help:"Evaluate a profile for another bottle process: the request on stdin, the result on stdout."`

	InstallCompletions kongplete.InstallCompletions `cmd:"" help:"Install shell completion for bash, zsh or fish."`
}

// Globals are the dependencies every command receives.
type Globals struct {
	Stdout io.Writer       `kong:"-"`
	Stderr io.Writer       `kong:"-"`
	Ctx    context.Context `kong:"-"`
	// Passthrough holds the arguments after "--", for `start -- CMD ARGS`.
	Passthrough []string `kong:"-"`
}

// exitError carries an exit code with the error to print.
type exitError struct {
	code int
	err  error
	// detail is printed after the error line (a Starlark backtrace).
	detail string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// errSilent marks an exit code whose explanation the command already printed.
var errSilent = errors.New("")

type kongExit struct{ code int }

// Main runs bottle with args (without the program name) and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var passthrough []string
	for i, a := range args {
		if a == "--" {
			args, passthrough = args[:i], args[i+1:]
			break
		}
	}
	cli := CLI{Globals: Globals{Stdout: stdout, Stderr: stderr, Ctx: ctx, Passthrough: passthrough}}
	parser, err := kong.New(&cli,
		kong.Name("bottle"),
		kong.Description("Run an AI coding agent in a sandbox whose only way out is a set of sidecars bottle controls."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit{c}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "bottle: internal error: %v\n", err)
		return exitRuntime
	}
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(kongExit); ok {
				code = e.code
				if code != 0 {
					code = exitUsage
				}
				return
			}
			panic(r)
		}
	}()
	kongplete.Complete(parser, kongplete.WithPredictor("file", complete.PredictFiles("*.star")))

	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "bottle: %s\n", visible(err.Error(), true))
		fmt.Fprintf(stderr, "Run \"%s --help\" for usage.\n", commandPath(parser, args))
		return exitUsage
	}
	if len(passthrough) > 0 && kctx.Command() != "start" && kctx.Command() != "start <profile>" && kctx.Command() != "guest" {
		fmt.Fprintf(stderr, "bottle: %s takes no arguments after \"--\"\n", kctx.Command())
		return exitUsage
	}
	if err := kctx.Run(&cli.Globals); err != nil {
		return report(stderr, err)
	}
	return exitOK
}

// commandPath names the command args select, for the usage hint.
func commandPath(parser *kong.Kong, args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		for _, c := range parser.Model.Children {
			if c.Name == a {
				return "bottle " + a
			}
		}
		break
	}
	return "bottle"
}

// report prints err for people and returns the exit code it carries.
func report(stderr io.Writer, err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err == errSilent {
			return ee.code
		}
		fmt.Fprintf(stderr, "bottle: %s\n", visible(ee.err.Error(), true))
		if ee.detail != "" {
			fmt.Fprintln(stderr, visible(ee.detail, true))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "bottle: %s\n", visible(err.Error(), true))
	return exitRuntime
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints bottle's version.
func (VersionCmd) Run(g *Globals) error {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	_, err := fmt.Fprintf(g.Stdout, "bottle %s\n", v)
	return err
}

// stateHome is the directory holding every bottle's state directory.
func stateHome() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bottle"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w (set XDG_STATE_HOME or HOME)", err)
	}
	return filepath.Join(home, ".local", "state", "bottle"), nil
}

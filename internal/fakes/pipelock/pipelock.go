// Package pipelock is a stand-in for the pipelock command line, for tests
// only: bottle's testscript suite registers Main as "pipelock" so that
// scripts can check the configs bottle renders where pipelock is not
// installed.
//
// It follows pipelock 2.3.0 (github.com/luckyPipewrench/pipelock, tag
// v2.3.0): `pipelock check --config FILE` as internal/cli/diag/check.go
// implements it, on top of config.Load (internal/config/load.go,
// normalize.go, validate.go) restricted to the sections bottle renders
// (see config), plus `pipelock --version`, `pipelock version` and a
// `pipelock run` that validates and serves only /health. Errors go to
// stderr with pipelock's wording and exit status 1, as cobra reports them.
//
// Commands:
//
//	pipelock --version              "pipelock version <version>"
//	pipelock version                the version and placeholder build data
//	pipelock check [--config FILE]  strict parse and validation; prints
//	                                pipelock's summary on success and
//	                                "Config validation FAILED: ..." plus the
//	                                error on failure. --url is not emulated
//	                                (exit 3).
//	pipelock run [--config FILE] [--listen ADDR]
//	                                validates like check, then listens on
//	                                ADDR (default fetch_proxy.listen) until
//	                                SIGINT or SIGTERM, answering GET /health
//	                                with 200 and JSON, and every other
//	                                request, CONNECT included, with 403
//	                                "blocked: ...": the stand-in forwards
//	                                nothing.
//
// Environment:
//
//	FAKE_PIPELOCK_LOG      file to which every invocation's argv is appended
//	                       (fakes.LogLine form).
//	FAKE_PIPELOCK_VERSION  version to report (default 2.3.0).
package pipelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/internal/fakes"
)

// Version is the pipelock release this stand-in follows and reports by default.
const Version = "2.3.0"

const (
	exitOK    = 0
	exitError = 1
	exitFake  = 3
)

// Main runs the stand-in with os.Args and the process environment and
// returns its exit status.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
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
	fail := func(err error) int {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	// Strip the persistent --home flag wherever it appears before the command.
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--home":
			i++
		case strings.HasPrefix(a, "--home="):
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		fmt.Fprintln(stdout, "Pipelock is an application-layer firewall (fake stand-in; see pipelock --help)")
		return exitOK
	}
	switch rest[0] {
	case "--version", "-v":
		fmt.Fprintf(stdout, "pipelock version %s\n", version)
		return exitOK
	case "version":
		fmt.Fprintf(stdout, "pipelock version %s\n  build date: unknown\n  git commit: unknown\n  go version: unknown\n", version)
		return exitOK
	case "check":
		flags, err := parseFlags(rest[1:], map[string]string{"config": "c", "url": ""})
		if err != nil {
			return fail(err)
		}
		if flags["url"] != "" {
			fmt.Fprintln(stderr, "fake pipelock: check --url is not implemented by this stand-in")
			return exitFake
		}
		return check(flags["config"], stdout, stderr)
	case "run":
		flags, err := parseFlags(rest[1:], map[string]string{"config": "c", "listen": "l", "mode": "m"})
		if err != nil {
			return fail(err)
		}
		return serve(ctx, flags, version, stdout, stderr)
	}
	if strings.HasPrefix(rest[0], "-") {
		return fail(fmt.Errorf("unknown flag: %s", rest[0]))
	}
	fmt.Fprintf(stderr, "fake pipelock: command %q is not implemented by this stand-in\n", rest[0])
	return exitFake
}

// parseFlags parses pflag-style options: "--name value", "--name=value",
// "-n value" and "-nvalue", for the string options in spec (long name to
// short name, "" for none). Positional arguments are refused, as pipelock's
// check and run take none.
func parseFlags(args []string, spec map[string]string) (map[string]string, error) {
	short := map[string]string{}
	for long, s := range spec {
		if s != "" {
			short[s] = long
		}
	}
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var name, val string
		hasVal := false
		switch {
		case strings.HasPrefix(a, "--"):
			name, val, hasVal = strings.Cut(a[2:], "=")
			if _, ok := spec[name]; !ok {
				return nil, fmt.Errorf("unknown flag: --%s", name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			long, ok := short[a[1:2]]
			if !ok {
				return nil, fmt.Errorf("unknown shorthand flag: '%s' in %s", a[1:2], a)
			}
			name = long
			if len(a) > 2 {
				val, hasVal = strings.TrimPrefix(a[2:], "="), true
			}
		default:
			return nil, fmt.Errorf("unknown command %q for \"pipelock\"", a)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			val = args[i]
		}
		out[name] = val
	}
	return out, nil
}

func check(path string, stdout, stderr io.Writer) int {
	if path == "" {
		fmt.Fprintln(stdout, "Using default config (no --config specified)")
		return exitOK
	}
	cfg, err := load(path)
	if err != nil {
		fmt.Fprintf(stderr, "Config validation FAILED: %v\n", err)
		fmt.Fprintln(stderr, err)
		return exitError
	}
	fmt.Fprintln(stdout, "Config validation: OK")
	fmt.Fprintf(stdout, "  Mode:           %s\n", cfg.Mode)
	fmt.Fprintf(stdout, "  Listen:         %s\n", cfg.FetchProxy.Listen)
	fmt.Fprintf(stdout, "  API allowlist:  %d domains\n", len(cfg.APIAllowlist))
	return exitOK
}

func load(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return loadConfig(path, data)
}

func serve(ctx context.Context, flags map[string]string, version string, stdout, stderr io.Writer) int {
	listen := "127.0.0.1:8888"
	if path := flags["config"]; path != "" {
		cfg, err := load(path)
		if err != nil {
			fmt.Fprintf(stderr, "loading config: %v\n", err)
			return exitError
		}
		listen = cfg.FetchProxy.Listen
	}
	if l := flags["listen"]; l != "" {
		listen = l
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "listen %s: %v\n", listen, err)
		return exitError
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/health" {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]string{"status": "healthy", "version": version})
				return
			}
			http.Error(w, "blocked: fake pipelock forwards nothing", http.StatusForbidden)
		}),
	}
	fmt.Fprintf(stdout, "{\"level\":\"info\",\"event\":\"startup\",\"listen\":%q,\"note\":\"fake pipelock stand-in, forwards nothing\"}\n", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return exitError
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "shutdown: %v\n", err)
		return exitError
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return exitError
	}
	return exitOK
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/sidecars"
)

// StopGrace is how long a sidecar may take to stop gracefully once asked.
const StopGrace = sidecars.StopGrace

// ControllerPoll is how often Run checks that the controlling bottle
// lives (Config.Controller).
var ControllerPoll = 250 * time.Millisecond

// watchController closes gone when the lock file at path can be locked:
// its holder, the controlling bottle start, has died. It checks every
// ControllerPoll until ctx ends.
func watchController(ctx context.Context, path string, gone chan<- struct{}) {
	f, err := os.Open(path)
	if err != nil {
		close(gone) // no lock file: no controller to wait for
		return
	}
	defer f.Close()
	tick := time.NewTicker(ControllerPoll)
	defer tick.Stop()
	for {
		// A shared lock is refused while the controller holds its
		// exclusive one; the kernel drops that lock when it dies.
		if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			close(gone)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// The sidecar server types are the registry's (package sidecars).
type (
	Service  = sidecars.Service
	Reloader = sidecars.Reloader
	Factory  = sidecars.Factory
	Env      = sidecars.Env
)

func factory(name string) (Factory, bool) {
	u, ok := sidecars.Lookup(name)
	if !ok {
		return nil, false
	}
	return u.New, true
}

func registered() []string { return sidecars.Names() }

// Ready is the content of the ready file: the sidecar process and where
// each sidecar listens.
type Ready struct {
	PID       int                 `json:"pid"`
	Listeners map[string][]Listen `json:"listeners"`
}

// ReadReady reads the ready file of a state directory.
func ReadReady(stateDir string) (*Ready, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, ReadyFile))
	if err != nil {
		return nil, fmt.Errorf("read ready file: %w", err)
	}
	var r Ready
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ready file: %w", err)
	}
	return &r, nil
}

type result struct {
	name string
	err  error
}

// Run runs the sidecars configured in configPath until ctx is done, the
// process gets SIGTERM or SIGINT, or the controlling bottle dies
// (Config.Controller), then stops them gracefully and returns nil. It returns an error when startup fails or any sidecar stops on its
// own. Once every sidecar listens it writes the ready file (ReadyFile in the
// state directory, mode 0600) and prints "ready" on stdout. On SIGHUP it
// re-reads the file and reloads every sidecar that can (Reloader), printing
// "reloaded" or "reload failed: ..." on stdout.
func Run(ctx context.Context, configPath string, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return err
	}
	if err := checkStateDir(cfg.StateDir); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(cfg.Sidecars))
	for _, name := range names {
		if _, ok := factory(name); !ok {
			return fmt.Errorf("sidecar config %s: unknown sidecar %q; known: %s", configPath, name, strings.Join(registered(), ", "))
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := &Env{Slug: cfg.Slug, StateDir: cfg.StateDir, Stderr: stderr}
	results := make(chan result, len(names))
	running := 0
	serve := func(name string, svc Service) {
		running++
		go func() { results <- result{name, svc.Serve(ctx)} }()
	}
	// drain waits for every started service to return.
	drain := func() error {
		var errs []error
		for ; running > 0; running-- {
			if r := <-results; r.err != nil {
				errs = append(errs, fmt.Errorf("sidecar %q: %w", r.name, r.err))
			}
		}
		return errors.Join(errs...)
	}

	ready := Ready{PID: os.Getpid(), Listeners: map[string][]Listen{}}
	var started []string
	for _, name := range names {
		f, _ := factory(name)
		svc, err := f(ctx, cfg.Sidecars[name], env)
		if err != nil {
			cancel()
			for _, s := range started {
				serve(s, env.Service(s))
			}
			return errors.Join(fmt.Errorf("start sidecar %q: %w", name, err), drain())
		}
		env.SetService(name, svc)
		started = append(started, name)
		ready.Listeners[name] = svc.Listeners()
	}
	for _, name := range started {
		serve(name, env.Service(name))
	}

	readyPath := filepath.Join(cfg.StateDir, ReadyFile)
	b, err := json.Marshal(ready)
	if err == nil {
		err = sidecars.WriteFileAtomic(readyPath, append(b, '\n'), 0o600)
	}
	if err != nil {
		cancel()
		return errors.Join(fmt.Errorf("report readiness: %w", err), drain())
	}
	defer os.Remove(readyPath)
	fmt.Fprintln(stdout, "ready")

	controllerGone := make(chan struct{})
	if cfg.Controller != "" {
		go watchController(ctx, cfg.Controller, controllerGone)
	}
	for {
		select {
		case <-controllerGone:
			fmt.Fprintln(stderr, "bottle sidecars: the controlling bottle is gone; stopping")
			cancel()
			return drain()
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := reload(configPath, env, started); err != nil {
					fmt.Fprintf(stdout, "reload failed: %v\n", err)
				} else {
					fmt.Fprintln(stdout, "reloaded")
				}
				continue
			}
			cancel()
			return drain()
		case <-ctx.Done():
			return drain()
		case r := <-results:
			running--
			cancel()
			err := r.err
			if err == nil {
				err = errors.New("stopped on its own")
			}
			return errors.Join(fmt.Errorf("sidecar %q: %w", r.name, err), drain())
		}
	}
}

// RunLogged is Run with a log: everything the sidecars print goes to stdout
// and stderr and is also appended to the file at logPath, which rotates at
// sidecars.MaxLogBytes (sidecars.OpenLog). So do the standard logger's
// lines (an HTTP server's errors), the error Run fails with, and the
// process's fatal error or unhandled panic, so that the file holds all of
// it where stdout and stderr are not kept (Launch discards them).
func RunLogged(ctx context.Context, configPath, logPath string, stdout, stderr io.Writer) error {
	f, err := sidecars.OpenLog(logPath)
	if err != nil {
		return fmt.Errorf("open the sidecar log: %w", err)
	}
	defer f.Close()
	stdout, stderr = io.MultiWriter(stdout, f), io.MultiWriter(stderr, f)
	if err := f.CrashOutput(); err != nil {
		fmt.Fprintf(stderr, "bottle sidecars: %v\n", err)
	}
	defer log.SetOutput(log.Writer())
	log.SetOutput(stderr)
	err = Run(ctx, configPath, stdout, stderr)
	if err != nil {
		// The caller reports it on stderr; the log has it too.
		fmt.Fprintf(f, "bottle sidecars: %v\n", err)
	}
	return err
}

// reload re-reads the configuration and hands each reloadable service its
// new section. Sections that appeared or disappeared need a restart.
func reload(configPath string, env *Env, running []string) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return err
	}
	var errs []error
	for name := range cfg.Sidecars {
		if !slices.Contains(running, name) {
			errs = append(errs, fmt.Errorf("sidecar %q is new; it starts only with a restart", name))
		}
	}
	for _, name := range running {
		spec, ok := cfg.Sidecars[name]
		if !ok {
			errs = append(errs, fmt.Errorf("sidecar %q was removed; it stops only with a restart", name))
			continue
		}
		if r, ok := env.Service(name).(Reloader); ok {
			if err := r.Reload(spec); err != nil {
				errs = append(errs, fmt.Errorf("reload sidecar %q: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

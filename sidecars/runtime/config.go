// Package runtime runs a bottle's sidecars in one process and launches that
// process from the host.
//
// `bottle sidecars --config FILE` calls Run: it reads the rendered sidecar
// configuration (Config, a JSON file), starts every sidecar it names, writes
// a ready file once all of them listen, reloads them on SIGHUP and stops
// them on SIGTERM or SIGINT. Each section is served by the sidecar unit
// registered under its name (sidecars.Register, from the unit's package).
//
// Launch, on the host, starts that command in its own process group with
// its output in the state directory, holds the state directory's lock while
// it lives, waits for readiness and stops it again (Handle.Stop).
package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// ConfigVersion is the version of the configuration file format.
const ConfigVersion = 1

// Files Run and Launch keep in the state directory.
const (
	// ReadyFile holds a Ready value once every sidecar listens.
	ReadyFile = "sidecars.ready"
	// PIDFile holds the sidecar process's pid while Launch's handle lives.
	PIDFile = "sidecars.pid"
	// LockFile is locked (flock) while the sidecars of the directory run.
	LockFile = "sidecars.lock"
	// LogFile receives the sidecar process's stdout and stderr.
	LogFile = "sidecars.log"
	// EgressLogFile is the default egress decision log (JSON lines).
	EgressLogFile = "egress.jsonl"
)

// Config is the rendered sidecar configuration of one bottle.
type Config struct {
	// Version is ConfigVersion.
	Version int `json:"version"`
	// Slug names the bottle.
	Slug string `json:"slug"`
	// StateDir is the bottle's state directory, an absolute path of mode
	// 0700; the ready file and default logs go there.
	StateDir string `json:"state_dir"`
	// Controller, when set, is a lock file (flock) that the controlling
	// bottle start holds for as long as it lives: the state directory's
	// bottle.lock, as this process sees it. When it can be locked, the
	// controller is gone (killed, even by SIGKILL), and the sidecars stop
	// within ControllerPoll, so that the sandbox loses every way out.
	Controller string `json:"controller,omitempty"`
	// Sidecars holds one section per sidecar to run, keyed by its
	// registered name ("egress", "git-gate", "supervise"); each section's
	// form belongs to its sidecar's unit (sidecars.Unit.Section).
	Sidecars map[string]json.RawMessage `json:"sidecars"`
}

// Listen is an address a sidecar listens on (sidecars.Listen).
type Listen = sidecars.Listen

// LoadConfig reads and checks a configuration file. Unknown fields are
// errors, so that a misspelt key never silently loosens a policy.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sidecar config: %w", err)
	}
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("sidecar config %s: %w", path, err)
	}
	if c.Version != ConfigVersion {
		return nil, fmt.Errorf("sidecar config %s: version %d, want %d", path, c.Version, ConfigVersion)
	}
	if !filepath.IsAbs(c.StateDir) {
		return nil, fmt.Errorf("sidecar config %s: state_dir %q is not an absolute path", path, c.StateDir)
	}
	if len(c.Sidecars) == 0 {
		return nil, fmt.Errorf("sidecar config %s: no sidecars", path)
	}
	return &c, nil
}

// WriteConfig writes c to path atomically with mode 0600.
func WriteConfig(path string, c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sidecar config: %w", err)
	}
	return sidecars.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error { return sidecars.Decode(b, v) }

// checkStateDir makes sure dir exists as a directory that only its owner
// can enter, creating it with mode 0700 when missing.
func checkStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("state directory %s has mode %04o; it must be 0700 (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// Render builds the sidecar configuration of a configured plan (see
// sidecars.Configure): each sidecar's section comes from its unit and
// listens on the plan's socket path with the given socket mode (0 for
// 0600). stateDir is the state directory as the sidecar process sees it.
func Render(p *plan.Plan, stateDir string, socketMode uint32) (*Config, error) {
	c := &Config{Version: ConfigVersion, Slug: p.Slug, StateDir: stateDir, Sidecars: map[string]json.RawMessage{}}
	for _, sc := range p.Sidecars {
		u, err := sidecars.Get(sc.Name)
		if err != nil {
			return nil, err
		}
		if sc.Listen.Network != "unix" || sc.Listen.Address == "" {
			return nil, fmt.Errorf("the %s sidecar has no socket; the plan was not configured for a backend", sc.Name)
		}
		raw, err := u.Section(p, sc, Listen{Network: "unix", Address: sc.Listen.Address, Mode: socketMode})
		if err != nil {
			return nil, fmt.Errorf("render the %s sidecar's configuration: %w", sc.Name, err)
		}
		c.Sidecars[sc.Name] = raw
	}
	return c, nil
}

package pipelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is pipelock's loopback port in the sandbox.
const Port = 8888

// preflightListen is the listen address the preflight renders the
// configuration with for `pipelock check`.
const preflightListen = "127.0.0.1:8888"

// ErrCannotRun says that this build cannot run pipelock yet: it renders and
// checks pipelock's configuration, but does not start pipelock in a bottle.
var ErrCannotRun = errors.New("this build of bottle checks pipelock profiles but cannot run pipelock yet; use the built-in egress sidecar, or check the profile with --dry-run")

// Unit is pipelock as the bottle's egress sidecar.
var Unit = &sidecars.Unit{
	Name:    plan.SidecarPipelock,
	Egress:  true,
	Port:    Port,
	Options: options,
	Build:   build,
	Validate: func(p *plan.Plan, _ plan.Sidecar) error {
		// Refuse what pipelock cannot enforce rather than widen silently.
		return CheckRules(p)
	},
	Env: func(_ *plan.Plan, _ plan.Sidecar, url string) []string { return sidecars.ProxyEnv(url) },
	Section: func(p *plan.Plan, _ plan.Sidecar, listen sidecars.Listen) (json.RawMessage, error) {
		cfg, err := Render(p, preflightListen)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"listen": listen, "config": string(cfg)})
	},
	Preflight: preflight,
	New: func(context.Context, json.RawMessage, *sidecars.Env) (sidecars.Service, error) {
		return nil, ErrCannotRun
	},
}

func init() { sidecars.Register(Unit) }

// preflight renders pipelock's configuration and, when a pipelock binary
// is on PATH (or named by BOTTLE_PIPELOCK), runs `pipelock check --config`
// on it and returns its complaints; then it reports that this build cannot
// run pipelock. It writes only a temporary file, removed again.
func preflight(ctx context.Context, p *plan.Plan, _ plan.Sidecar, h sidecars.Host) error {
	cfg, err := Render(p, preflightListen)
	if err != nil {
		return err
	}
	name := h.Getenv("BOTTLE_PIPELOCK")
	if name == "" {
		name = "pipelock"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return ErrCannotRun
	}
	dir, err := os.MkdirTemp("", "bottle-pipelock-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pipelock.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bin, "check", "--config", path).CombinedOutput()
	if err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(string(out)), path, "the rendered pipelock.yaml")
		return errors.Join(fmt.Errorf("pipelock %s rejects the configuration bottle rendered for this profile: %s", Version, msg), ErrCannotRun)
	}
	return ErrCannotRun
}

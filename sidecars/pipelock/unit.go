package pipelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is pipelock's loopback port in the sandbox, where bottle guest
// relays its socket.
const Port = 8888

// Files pipelock's server keeps in the state directory.
const (
	// ConfigFile is the rendered configuration pipelock runs with.
	ConfigFile = "pipelock.yaml"
	// LogFile receives pipelock's output: its JSON log lines and errors.
	LogFile = "pipelock.log"
)

// renderListen is the fetch_proxy.listen the rendered file names; Start
// overrides it with --listen, so any valid address will do.
const renderListen = "127.0.0.1:8888"

// Spec is the "pipelock" section of the sidecar configuration.
type Spec struct {
	// Listen is the unix socket the sandbox reaches; the server bridges
	// it onto pipelock's loopback TCP port.
	Listen sidecars.Listen `json:"listen"`
	// Config is pipelock's rendered YAML configuration (Render).
	Config string `json:"config"`
}

// Unit is pipelock as the bottle's egress sidecar. pipelock is taken from
// the host that runs the sidecars (Find: $BOTTLE_PIPELOCK or PATH; the
// docker backend copies the host's binary into the bundle image and names
// it there), checked against Version, and run on a loopback TCP port; the
// bottle's socket is bridged onto that port.
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
		cfg, err := Render(p, renderListen)
		if err != nil {
			return nil, err
		}
		return json.Marshal(Spec{Listen: listen, Config: string(cfg)})
	},
	Preflight: preflight,
	New:       newService,
}

func init() { sidecars.Register(Unit) }

// preflight finds pipelock on the host, checks its version, and runs
// `pipelock check` on the configuration rendered for this plan. It writes
// only a temporary file, removed again.
func preflight(ctx context.Context, p *plan.Plan, _ plan.Sidecar, _ sidecars.Host) error {
	cfg, err := Render(p, renderListen)
	if err != nil {
		return err
	}
	bin, err := Find()
	if err != nil {
		return err
	}
	if err := CheckVersion(ctx, bin); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bottle-pipelock-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, ConfigFile)
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return err
	}
	return CheckConfig(ctx, bin, path)
}

// newService checks the binary again where the sidecars run, writes the
// configuration into the state directory, starts pipelock and binds the
// socket. Serve bridges until ctx ends or pipelock exits on its own (an
// error: the bottle has lost its egress).
func newService(ctx context.Context, raw json.RawMessage, env *sidecars.Env) (sidecars.Service, error) {
	var spec Spec
	if err := sidecars.Decode(raw, &spec); err != nil {
		return nil, fmt.Errorf("pipelock section: %w", err)
	}
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	if err := CheckVersion(ctx, bin); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(env.StateDir, ConfigFile)
	if err := os.WriteFile(cfgPath, []byte(spec.Config), 0o600); err != nil {
		return nil, fmt.Errorf("pipelock: %w", err)
	}
	logf, err := sidecars.OpenLog(filepath.Join(env.StateDir, LogFile))
	if err != nil {
		return nil, fmt.Errorf("pipelock: %w", err)
	}
	proc, err := Start(ctx, bin, cfgPath, logf)
	if err != nil {
		logf.Close()
		return nil, err
	}
	ln, err := sidecars.Bind(spec.Listen)
	if err != nil {
		proc.Stop(sidecars.StopGrace)
		logf.Close()
		return nil, fmt.Errorf("pipelock: %w", err)
	}
	return &sidecars.ServiceFunc{Listen: sidecars.Bound(ln), Run: func(ctx context.Context) error {
		defer logf.Close()
		bctx, stop := context.WithCancel(ctx)
		bridged := make(chan error, 1)
		go func() { bridged <- Bridge(bctx, ln, proc.Addr()) }()
		var died error
		select {
		case <-ctx.Done():
		case <-proc.Done():
			died = errors.New("pipelock exited on its own; see " + LogFile + " in the state directory")
		case err := <-bridged:
			bridged <- err
			died = fmt.Errorf("the bridge to pipelock stopped: %w", err)
		}
		stop()
		berr := <-bridged
		serr := proc.Stop(sidecars.StopGrace)
		if died != nil {
			return died
		}
		return errors.Join(berr, serr)
	}}, nil
}

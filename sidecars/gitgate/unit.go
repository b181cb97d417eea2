package gitgate

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// Port is the git gate's loopback port in the sandbox.
const Port = 8080

// LogFile is the git gate's decision log in the state directory.
const LogFile = "git-gate.jsonl"

// Spec is the "git-gate" section of the sidecar configuration.
type Spec struct {
	Listen  sidecars.Listen  `json:"listen"`
	Remotes []plan.GitRemote `json:"remotes"`
	// MaxPushBytes is plan.GitGateConfig.MaxPushBytes.
	MaxPushBytes int64 `json:"max_push_bytes"`
}

// Unit is the git gate: the agent's git remotes are rewritten to it
// (url.<gate>/<name>.git.insteadOf <upstream>), and it forwards pushes
// that pass the secret scan with credentials only it holds.
var Unit = &sidecars.Unit{
	Name:      plan.SidecarGitGate,
	Port:      Port,
	Options:   options,
	Build:     build,
	Env:       agentEnv,
	Section:   section,
	Preflight: preflight,
	New:       newService,
}

func init() { sidecars.Register(Unit) }

// agentEnv rewrites each remote's upstream URL to the gate through git's
// GIT_CONFIG_COUNT/KEY/VALUE variables, so that `git push origin` goes to
// the gate and no credential or config file enters the sandbox.
func agentEnv(_ *plan.Plan, sc plan.Sidecar, url string) []string {
	if sc.GitGate == nil || len(sc.GitGate.Remotes) == 0 {
		return nil
	}
	env := []string{"GIT_CONFIG_COUNT=" + strconv.Itoa(len(sc.GitGate.Remotes))}
	for i, r := range sc.GitGate.Remotes {
		n := strconv.Itoa(i)
		env = append(env,
			"GIT_CONFIG_KEY_"+n+"=url."+url+RemotePath(r.Name)+".insteadOf",
			"GIT_CONFIG_VALUE_"+n+"="+r.URL)
	}
	return env
}

func section(_ *plan.Plan, sc plan.Sidecar, listen sidecars.Listen) (json.RawMessage, error) {
	if sc.GitGate == nil {
		return nil, fmt.Errorf("the git-gate sidecar has no configuration")
	}
	return json.Marshal(Spec{Listen: listen, Remotes: sc.GitGate.Remotes, MaxPushBytes: sc.GitGate.MaxPushBytes})
}

// preflight checks the gate's credentials, host files and variables,
// before anything starts.
func preflight(_ context.Context, _ *plan.Plan, sc plan.Sidecar, h sidecars.Host) error {
	if sc.GitGate == nil {
		return nil
	}
	gate, err := New(Config{Remotes: sc.GitGate.Remotes, StateDir: h.StateDir, MaxPushBytes: sc.GitGate.MaxPushBytes})
	if err != nil {
		return err
	}
	return gate.Preflight()
}

func newService(_ context.Context, raw json.RawMessage, env *sidecars.Env) (sidecars.Service, error) {
	var spec Spec
	if err := sidecars.Decode(raw, &spec); err != nil {
		return nil, fmt.Errorf("git-gate section: %w", err)
	}
	logf, err := sidecars.OpenLog(filepath.Join(env.StateDir, LogFile))
	if err != nil {
		return nil, err
	}
	gate, err := New(Config{Remotes: spec.Remotes, StateDir: env.StateDir, Log: logf, MaxPushBytes: spec.MaxPushBytes})
	if err == nil {
		err = gate.Preflight()
	}
	if err != nil {
		logf.Close()
		return nil, err
	}
	ln, err := sidecars.Bind(spec.Listen)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("git-gate: %w", err)
	}
	return &sidecars.ServiceFunc{
		Listen: sidecars.Bound(ln),
		Run: func(ctx context.Context) error {
			defer logf.Close()
			return gate.Serve(ctx, ln)
		},
	}, nil
}

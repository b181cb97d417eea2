// Package all registers every sidecar beyond the built-in egress proxy with
// the sidecar runtime (what `bottle sidecars` runs) and with the backends
// (how a plan's sidecar becomes its section of the rendered
// configuration). Importing it for its side effects is what makes git-gate
// and supervise available in a bottle.
package all

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/gitgate"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
	"github.com/bottle-dev/bottle/sidecars/supervise"
)

// GitGateSpec is the "git-gate" section of the sidecar configuration.
type GitGateSpec struct {
	Listen  srt.Listen       `json:"listen"`
	Remotes []plan.GitRemote `json:"remotes"`
	// MaxPushBytes is plan.GitGateConfig.MaxPushBytes.
	MaxPushBytes int64 `json:"max_push_bytes"`
}

// SuperviseSpec is the "supervise" section of the sidecar configuration.
type SuperviseSpec struct {
	Listen  srt.Listen `json:"listen"`
	Timeout string     `json:"timeout"`
}

// GitGateLogFile is the git gate's decision log in the state directory.
const GitGateLogFile = "git-gate.jsonl"

func init() {
	srt.Register(plan.SidecarGitGate, newGitGate)
	srt.Register(plan.SidecarSupervise, newSupervise)
	backends.RegisterSection(plan.SidecarGitGate, func(sc plan.Sidecar, _ *plan.Plan, l srt.Listen) (json.RawMessage, error) {
		return json.Marshal(GitGateSpec{Listen: l, Remotes: sc.GitGate.Remotes, MaxPushBytes: sc.GitGate.MaxPushBytes})
	})
	backends.RegisterSection(plan.SidecarSupervise, func(sc plan.Sidecar, _ *plan.Plan, l srt.Listen) (json.RawMessage, error) {
		return json.Marshal(SuperviseSpec{Listen: l, Timeout: sc.Supervise.Timeout})
	})
}

func decode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// service adapts a serve function and its listener to srt.Service.
type service struct {
	ln    srt.Listen
	serve func(ctx context.Context) error
}

func (s *service) Listeners() []srt.Listen         { return []srt.Listen{s.ln} }
func (s *service) Serve(ctx context.Context) error { return s.serve(ctx) }

func newGitGate(_ context.Context, raw json.RawMessage, env *srt.Env) (srt.Service, error) {
	var spec GitGateSpec
	if err := decode(raw, &spec); err != nil {
		return nil, fmt.Errorf("git-gate section: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(env.StateDir, GitGateLogFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	gate, err := gitgate.New(gitgate.Config{Remotes: spec.Remotes, StateDir: env.StateDir, Log: logf, MaxPushBytes: spec.MaxPushBytes})
	if err == nil {
		err = gate.Preflight()
	}
	if err != nil {
		logf.Close()
		return nil, err
	}
	ln, err := srt.Bind(spec.Listen)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("git-gate: %w", err)
	}
	return &service{
		ln: srt.Listen{Network: ln.Addr().Network(), Address: ln.Addr().String()},
		serve: func(ctx context.Context) error {
			defer logf.Close()
			return gate.Serve(ctx, ln)
		},
	}, nil
}

// egressControl is what supervise needs of the running egress proxy.
type egressControl interface {
	supervise.RuleSource
	supervise.RuleAdder
}

func newSupervise(_ context.Context, raw json.RawMessage, env *srt.Env) (srt.Service, error) {
	var spec SuperviseSpec
	if err := decode(raw, &spec); err != nil {
		return nil, fmt.Errorf("supervise section: %w", err)
	}
	timeout, err := supervise.ParseTimeout(spec.Timeout)
	if err != nil {
		return nil, err
	}
	proxy, ok := env.Service(plan.SidecarEgress).(egressControl)
	if !ok {
		return nil, errors.New("supervise adds approved rules to the built-in egress sidecar, which this bottle does not run")
	}
	audit, err := supervise.OpenAudit(env.StateDir)
	if err != nil {
		return nil, err
	}
	srv, err := supervise.New(supervise.Config{StateDir: env.StateDir, Timeout: timeout, Rules: proxy, Adder: proxy, Audit: audit})
	if err != nil {
		audit.Close()
		return nil, err
	}
	ln, err := srt.Bind(spec.Listen)
	if err != nil {
		audit.Close()
		return nil, fmt.Errorf("supervise: %w", err)
	}
	return &service{
		ln: srt.Listen{Network: ln.Addr().Network(), Address: ln.Addr().String()},
		serve: func(ctx context.Context) error {
			defer audit.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), srt.StopGrace)
			defer cancel()
			return errors.Join(srv.Shutdown(sctx), <-errc)
		},
	}, nil
}

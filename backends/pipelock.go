package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/render"
)

// PipelockListen is where pipelock listens when it is a bottle's egress
// sidecar.
const PipelockListen = "0.0.0.0:8888"

// PreflightPipelock checks a plan whose egress sidecar is pipelock: it
// renders pipelock's configuration and, when a pipelock binary is on PATH
// (or named by BOTTLE_PIPELOCK), runs `pipelock check --config` on it and
// returns its complaints. It writes only a temporary file, removed again.
func PreflightPipelock(ctx context.Context, p *plan.Plan, r Runner) error {
	if p.Egress.Sidecar != plan.SidecarPipelock {
		return nil
	}
	cfg, err := render.Pipelock(p, PipelockListen)
	if err != nil {
		return err
	}
	name := os.Getenv("BOTTLE_PIPELOCK")
	if name == "" {
		name = "pipelock"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil // nothing to check with here; the pinned image is checked at launch
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
	if _, err := r.Output(ctx, Cmd{Path: bin, Args: []string{"check", "--config", path}}); err != nil {
		msg := strings.ReplaceAll(err.Error(), path, "the rendered pipelock.yaml")
		return fmt.Errorf("pipelock %s rejects the configuration bottle rendered for this profile: %s", render.PipelockVersion, msg)
	}
	return nil
}

// ErrPipelockUnavailable says that this build cannot run pipelock yet: it
// renders and checks pipelock's configuration, but does not yet put
// pipelock's binary, from its image pinned by digest, into a bottle.
var ErrPipelockUnavailable = errors.New("this build of bottle checks pipelock profiles but cannot run pipelock yet; use the built-in egress sidecar, or check the profile with --dry-run")

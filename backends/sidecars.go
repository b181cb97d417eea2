package backends

import (
	"encoding/json"
	"fmt"

	"github.com/bottle-dev/bottle/plan"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// SidecarSections renders one plan sidecar into its section of the sidecar
// configuration; sidecars other than the built-in egress register one with
// RegisterSection. listen is where the sidecar listens in the process that
// runs it.
type SidecarSections func(sc plan.Sidecar, p *plan.Plan, listen srt.Listen) (json.RawMessage, error)

var sections = map[string]SidecarSections{
	plan.SidecarEgress: func(sc plan.Sidecar, p *plan.Plan, listen srt.Listen) (json.RawMessage, error) {
		return json.Marshal(srt.EgressSpec{
			Listen:         listen,
			Rules:          p.Egress.Rules,
			ConnectTimeout: sc.Egress.ConnectTimeout,
			IdleTimeout:    sc.Egress.IdleTimeout,
		})
	},
}

// RegisterSection lets a sidecar package render its own configuration section.
func RegisterSection(name string, f SidecarSections) {
	mu.Lock()
	defer mu.Unlock()
	sections[name] = f
}

// SidecarConfig renders the sidecar configuration `bottle sidecars` runs
// from. stateDir is the state directory as the sidecar process sees it
// (the host path, or the mount point inside the docker bundle); listen maps
// each sidecar to its listener there.
func SidecarConfig(p *plan.Plan, stateDir string, listen func(plan.Sidecar) srt.Listen) (*srt.Config, error) {
	c := &srt.Config{Version: srt.ConfigVersion, Slug: p.Slug, StateDir: stateDir, Sidecars: map[string]json.RawMessage{}}
	for _, sc := range p.Sidecars {
		mu.Lock()
		f, ok := sections[sc.Name]
		mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("the %s sidecar is not available in this build", sc.Name)
		}
		raw, err := f(sc, p, listen(sc))
		if err != nil {
			return nil, fmt.Errorf("render the %s sidecar's configuration: %w", sc.Name, err)
		}
		c.Sidecars[sc.Name] = raw
	}
	return c, nil
}

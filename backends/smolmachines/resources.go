package smolmachines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
)

// listed is one machine of `smolvm machine ls --json`.
type listed struct {
	Name   string            `json:"name"`
	State  string            `json:"state"`
	Labels map[string]string `json:"labels"`
}

// Resources lists every machine named bottle-... and labelled with a
// bottle slug, running or not.
func (s *Backend) Resources(ctx context.Context) ([]backends.Resource, error) {
	if _, err := s.cli(); err != nil {
		return nil, nil // no smolvm here: nothing of ours either
	}
	raw, err := s.out(ctx, "machine", "ls", "--json")
	if err != nil {
		return nil, fmt.Errorf("list microVMs: %w", err)
	}
	return parseList(raw)
}

// parseList picks bottle's machines out of `machine ls --json`.
func parseList(raw []byte) ([]backends.Resource, error) {
	var ms []listed
	if err := json.Unmarshal(raw, &ms); err != nil {
		return nil, fmt.Errorf("read smolvm's machine list: %w", err)
	}
	var out []backends.Resource
	for _, m := range ms {
		slug := m.Labels[LabelSlug]
		if !strings.HasPrefix(m.Name, machinePrefix) || slug == "" {
			continue
		}
		out = append(out, backends.Resource{Backend: plan.BackendSmolmachines, Kind: "machine", Name: m.Name, Slug: slug,
			Owner: m.Labels[backends.LabelOwner], Running: m.State == "running"})
	}
	return out, nil
}

// Remove stops and deletes machines; those already gone are not an error.
func (s *Backend) Remove(ctx context.Context, rs []backends.Resource) error {
	var errs []error
	for _, r := range rs {
		if r.Backend != plan.BackendSmolmachines || r.Kind != "machine" {
			continue
		}
		if err := s.removeMachine(ctx, r.Name, true, io.Discard); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

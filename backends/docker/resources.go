package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
)

// listed is one line of `docker ps` or `docker network ls` with
// --format '{{json .}}'; Labels is "k=v,k=v".
type listed struct {
	Names  string `json:"Names"`
	Name   string `json:"Name"`
	Labels string `json:"Labels"`
	// State is a container's: "running", "exited", ...
	State string `json:"State"`
}

func (l listed) label(key string) string {
	for _, kv := range strings.Split(l.Labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Resources lists every container, volume and network labelled by bottle
// (bottles no longer make networks, but earlier versions did).
func (d *Backend) Resources(ctx context.Context) ([]backends.Resource, error) {
	if _, err := d.cli(); err != nil {
		return nil, nil // no docker here: nothing of ours either
	}
	var out []backends.Resource
	for _, q := range []struct {
		kind string
		args []string
	}{
		{"container", []string{"ps", "--all", "--no-trunc", "--filter", "label=" + LabelSlug, "--format", "{{json .}}"}},
		{"volume", []string{"volume", "ls", "--filter", "label=" + LabelSlug, "--format", "{{json .}}"}},
		{"network", []string{"network", "ls", "--no-trunc", "--filter", "label=" + LabelSlug, "--format", "{{json .}}"}},
	} {
		raw, err := d.out(ctx, q.args...)
		if err != nil {
			return nil, fmt.Errorf("list bottle %ss: %w", q.kind, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if line == "" {
				continue
			}
			var l listed
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				return nil, fmt.Errorf("read docker's answer: %w", err)
			}
			name := l.Names
			if name == "" {
				name = l.Name
			}
			out = append(out, backends.Resource{Backend: plan.BackendDocker, Kind: q.kind, Name: name, Slug: l.label(LabelSlug),
				Owner: l.label(backends.LabelOwner), Running: l.State == "running"})
		}
	}
	return out, nil
}

// Remove deletes containers first, then volumes and networks; resources
// already gone are not an error.
func (d *Backend) Remove(ctx context.Context, rs []backends.Resource) error {
	var errs []error
	for _, kind := range []string{"container", "volume", "network"} {
		for _, r := range rs {
			if r.Backend != plan.BackendDocker || r.Kind != kind {
				continue
			}
			var err error
			switch kind {
			case "container":
				err = d.removeContainer(ctx, r.Name)
			case "volume":
				err = d.removeVolume(ctx, r.Name)
				if err != nil && strings.Contains(err.Error(), "volume is in use") && r.Slug != "" && r.Owner != "" {
					// A container of the same bottle that came after the
					// listing holds it: one a docker CLI created while it
					// outlived a killed bottle. It goes, then the volume.
					if err = d.removeLateContainers(ctx, r); err == nil {
						err = d.removeVolume(ctx, r.Name)
					}
				}
			default:
				if _, err = d.out(ctx, "network", "rm", r.Name); err != nil && notFound(err) {
					err = nil
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeLateContainers removes the containers of r's bottle that exist
// now, whether or not an earlier listing had them: those whose slug and
// owner labels are r's exactly, matched by the daemon (a label filter
// compares one label's whole value, where docker's listing joins them all
// in one "k=v,k=v" string a value's comma can fake), removed by ID. A
// volume made before owner labels gets none removed: a container without
// an owner label may be another owner's, and only the daemon's label map
// could tell its absence from an empty value; Remove does not call this
// for one.
func (d *Backend) removeLateContainers(ctx context.Context, r backends.Resource) error {
	raw, err := d.out(ctx, "ps", "--all", "--no-trunc", "--filter", "label="+LabelSlug+"="+r.Slug,
		"--filter", "label="+backends.LabelOwner+"="+r.Owner, "--format", "{{.ID}}")
	if err != nil {
		return fmt.Errorf("list the containers of bottle %s: %w", r.Slug, err)
	}
	var errs []error
	for _, id := range strings.Fields(string(raw)) {
		errs = append(errs, d.removeContainer(ctx, id))
	}
	return errors.Join(errs...)
}

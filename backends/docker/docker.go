// Package docker is bottle's Docker backend. It drives the docker CLI
// (found on PATH, or named by BOTTLE_DOCKER, so podman and remote contexts
// work) and parses its JSON output, never its tables.
//
// A bottle is a socket volume, a sidecar bundle container and the agent
// container. The agent runs with --network none: it has only a loopback
// device. Its sidecars listen on unix sockets in the volume, which the
// agent mounts read-only; bottle guest, its entrypoint, relays each socket
// onto the agent's loopback. The bundle alone has a network (the daemon's
// default one) and listens on no TCP port: every outbound connection goes
// through its egress proxy.
// Every resource is named bottle-<slug>-... and labelled
// dev.bottle.slug=<slug>, so that bottle cleanup finds what a killed run
// left behind.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/plan"
)

// Labels on every resource.
const (
	LabelSlug   = backends.LabelSlug
	LabelDigest = backends.LabelDigest
	LabelRole   = "dev.bottle.role"
)

// Backend is the docker backend.
type Backend struct {
	// Runner runs the docker CLI; nil means backends.Exec.
	Runner backends.Runner
	// Docker is the CLI's path; empty means $BOTTLE_DOCKER, else "docker" on PATH.
	Docker string

	mu            sync.Mutex
	version, arch string // the daemon's, once asked
}

func init() { backends.Register(plan.BackendDocker, &Backend{}) }

func (d *Backend) runner() backends.Runner {
	if d.Runner != nil {
		return d.Runner
	}
	return backends.Exec{}
}

// cli returns the docker CLI's path or a one-line fix.
func (d *Backend) cli() (string, error) {
	name := d.Docker
	if name == "" {
		name = os.Getenv("BOTTLE_DOCKER")
	}
	if name == "" {
		name = "docker"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("the docker CLI (%s) was not found; install Docker (for example apt-get install docker.io) or set BOTTLE_DOCKER to its path", name)
	}
	return p, nil
}

func (d *Backend) out(ctx context.Context, args ...string) ([]byte, error) {
	cli, err := d.cli()
	if err != nil {
		return nil, err
	}
	return d.runner().Output(ctx, backends.Cmd{Path: cli, Args: args})
}

// names are the resource names of one bottle.
type names struct {
	slug, volume, bundle, agent string
}

// namesFor names a launch's resources. The socket volume's name ends in a
// random suffix: docker's volume create reuses an existing volume without
// a word, so a name that another bottle could hold (one of the same slug,
// under another state home) would let this launch mount and then remove
// that bottle's sockets.
func namesFor(slug string) names {
	p := "bottle-" + slug
	var r [4]byte
	rand.Read(r[:])
	return names{slug: slug, volume: p + "-sockets-" + hex.EncodeToString(r[:]), bundle: p + "-sidecars", agent: p + "-agent"}
}

func labels(p *plan.Plan, role string) []string {
	return []string{
		"--label", LabelSlug + "=" + p.Slug,
		"--label", backends.LabelOwner + "=" + backends.PlanOwner(p),
		"--label", LabelDigest + "=" + p.Digest,
		"--label", LabelRole + "=" + role,
	}
}

// server asks the daemon for its version and architecture, once per
// process: preflight and launch share the answer.
func (d *Backend) server(ctx context.Context) (version, arch string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.version != "" {
		return d.version, d.arch, nil
	}
	out, err := d.out(ctx, "version", "--format", "{{json .}}")
	var v struct {
		Server *struct {
			Version string `json:"Version"`
			Arch    string `json:"Arch"`
		} `json:"Server"`
	}
	if jerr := json.Unmarshal(out, &v); jerr == nil && v.Server != nil && v.Server.Version != "" && v.Server.Arch != "" {
		d.version, d.arch = v.Server.Version, v.Server.Arch
		return d.version, d.arch, nil
	}
	if err == nil {
		err = errors.New("no server version and architecture in its answer")
	}
	msg := err.Error()
	if strings.Contains(msg, "permission denied") {
		return "", "", fmt.Errorf("the Docker daemon refused the connection (%v); add yourself to the docker group or set DOCKER_HOST", firstLine(msg))
	}
	return "", "", fmt.Errorf("the Docker daemon does not answer (%v); start it (for example systemctl start docker) or check DOCKER_HOST and your docker context", firstLine(msg))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

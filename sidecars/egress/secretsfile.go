package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bottle-dev/bottle/plan"
)

// SecretsFile is the file in the state directory through which bottle
// hands the egress sidecar the secrets' values at launch: JSON, a list of
// Secret, mode 0600 in the 0700 state directory. The sidecar removes it as
// soon as it has read it, so that the values live on only in its memory.
const SecretsFile = "egress-secrets.json"

// CAFile is the name of the file, next to its socket, in which the egress
// sidecar publishes its CA's certificate (PEM, no key) when it intercepts
// some hosts. bottle guest reads it from there (docker: the socket
// volume) or from the staged guest directory (smolmachines, to which the
// backend copies it) and installs the sandbox's CA bundle.
const CAFile = "egress-ca.pem"

// planSecrets are the plan's secrets as the proxy sees them, with no
// values: enough to tell which hosts are intercepted.
func planSecrets(p *plan.Plan) []Secret {
	var out []Secret
	for _, s := range p.Secrets {
		out = append(out, Secret{Name: s.Name, Hosts: s.Hosts})
	}
	return out
}

// inspectAll reports whether the plan's egress sidecar intercepts every
// allowed host.
func inspectAll(p *plan.Plan) bool {
	for _, sc := range p.Sidecars {
		if sc.Name == plan.SidecarEgress && sc.Egress != nil && sc.Egress.InspectAll {
			return true
		}
	}
	return false
}

// Intercepts reports whether the plan's egress proxy terminates TLS for
// some host, so that the sandbox must trust the bottle's CA: it is the
// built-in egress sidecar, and a secret is bound to hosts, a rule has
// methods, paths or inspect, or the sidecar inspects every host.
func Intercepts(p *plan.Plan) bool {
	if p.Egress.Sidecar != plan.SidecarEgress {
		return false
	}
	return len(InterceptedNames(p.Egress.Rules, planSecrets(p), inspectAll(p))) > 0
}

// PrepareSecrets makes the values the agent gets for the plan's secrets,
// from their real values: a fresh placeholder (Placeholder) for each
// secret bound to hosts, the value itself for a visible one. When the
// plan's egress sidecar is the built-in one and has secrets, it hands
// them, with their placeholders and hosts, to the sidecar through write
// (SecretsFile; write must create the file 0600).
func PrepareSecrets(p *plan.Plan, values map[string]string, write func(name string, data []byte) error) (map[string]string, error) {
	agent := make(map[string]string, len(p.Secrets))
	var handed []Secret
	for _, s := range p.Secrets {
		v, ok := values[s.Name]
		if !ok {
			return nil, fmt.Errorf("secret %s: no value was read", s.Name)
		}
		sec := Secret{Name: s.Name, Value: v, Hosts: s.Hosts}
		agent[s.Name] = v
		if len(s.Hosts) > 0 {
			if v == "" {
				return nil, fmt.Errorf("secret %s is empty; a secret bound to hosts needs a value (set at %s)", s.Name, s.From)
			}
			ph, err := Placeholder(v)
			if err != nil {
				return nil, err
			}
			sec.Placeholder = ph
			agent[s.Name] = ph
		}
		handed = append(handed, sec)
	}
	if p.Egress.Sidecar != plan.SidecarEgress || len(handed) == 0 {
		return agent, nil
	}
	b, err := json.Marshal(handed)
	if err != nil {
		return nil, err
	}
	if err := write(SecretsFile, b); err != nil {
		return nil, fmt.Errorf("hand the secrets to the egress sidecar: %w", err)
	}
	return agent, nil
}

// takeSecrets reads and removes the secrets file at path.
func takeSecrets(path string) ([]Secret, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("egress: the secrets file %s is gone; the sidecar reads it once, at start", filepath.Base(path))
	}
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	os.Remove(path)
	var out []Secret
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("egress: the secrets file: %w", err)
	}
	return out, nil
}

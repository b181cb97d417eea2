package egress

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// TestPrepareSecrets: the agent gets a fresh placeholder for a secret
// bound to hosts and the value of a visible one; the values go to the
// egress sidecar only, through the secrets file, which the sidecar removes
// once it has read it. With pipelock no file is written.
func TestPrepareSecrets(t *testing.T) {
	p := &plan.Plan{
		Egress: plan.Egress{Sidecar: plan.SidecarEgress},
		Secrets: []plan.Secret{
			{Name: "API_KEY", FromEnv: "API_KEY", Hosts: []string{"api.example.com"}},
			{Name: "NPM_TOKEN", FromEnv: "NPM_TOKEN"},
		},
	}
	real, npm := "sk-ant-api03-"+strings.Repeat("x7", 40), "npm_"+strings.Repeat("y", 36)
	dir := t.TempDir()
	var written []string
	write := func(name string, data []byte) error {
		written = append(written, name)
		return os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	agent, err := PrepareSecrets(p, map[string]string{"API_KEY": real, "NPM_TOKEN": npm}, write)
	if err != nil {
		t.Fatal(err)
	}
	ph := agent["API_KEY"]
	if ph == real || strings.Contains(ph, real) || !strings.HasPrefix(ph, "sk-ant-api03-"+PlaceholderMarker) {
		t.Errorf("the agent's bound secret is %q; want a placeholder", ph)
	}
	if agent["NPM_TOKEN"] != npm {
		t.Errorf("the agent's visible secret is %q; want its value", agent["NPM_TOKEN"])
	}
	if len(written) != 1 || written[0] != SecretsFile {
		t.Fatalf("written %v; want only %s", written, SecretsFile)
	}
	got, err := takeSecrets(filepath.Join(dir, SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []Secret{
		{Name: "API_KEY", Value: real, Placeholder: ph, Hosts: []string{"api.example.com"}},
		{Name: "NPM_TOKEN", Value: npm},
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("the sidecar got %s; want %s", gb, wb)
	}
	if _, err := os.Stat(filepath.Join(dir, SecretsFile)); !os.IsNotExist(err) {
		t.Errorf("the secrets file is still there after the sidecar read it: %v", err)
	}
	if _, err := takeSecrets(filepath.Join(dir, SecretsFile)); err == nil {
		t.Error("the secrets file was read twice")
	}

	// A second launch gets another placeholder.
	again, err := PrepareSecrets(p, map[string]string{"API_KEY": real, "NPM_TOKEN": npm}, write)
	if err != nil {
		t.Fatal(err)
	}
	if again["API_KEY"] == ph {
		t.Error("two launches got the same placeholder")
	}

	// pipelock cannot substitute: no file, visible values only.
	p.Egress.Sidecar = plan.SidecarPipelock
	p.Secrets = p.Secrets[1:]
	written = nil
	if _, err := PrepareSecrets(p, map[string]string{"NPM_TOKEN": npm}, write); err != nil {
		t.Fatal(err)
	}
	if len(written) != 0 {
		t.Errorf("with pipelock the values were written to %v", written)
	}
}

package backends

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func TestClaimLocksAndRefusesATakenSlug(t *testing.T) {
	home := filepath.Join(t.TempDir(), "bottle")
	dir := filepath.Join(home, "p-123456")
	st, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode: %v, %v", fi.Mode(), err)
	}
	if _, err := Claim(dir); !errors.Is(err, ErrTaken) {
		t.Fatalf("second Claim = %v, want ErrTaken", err)
	}
	if !Locked(dir) {
		t.Fatalf("a claimed directory is not locked")
	}
	if err := st.WriteInfo(Info{Slug: "p-123456", Backend: "docker", PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, InfoFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("info file mode %v", fi.Mode())
	}
	entries, err := Scan(home)
	if err != nil || len(entries) != 1 || !entries[0].Running || entries[0].Info.Backend != "docker" {
		t.Fatalf("Scan = %+v, %v", entries, err)
	}
	if err := st.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Release left the directory: %v", err)
	}
	if err := st.Release(); err != nil {
		t.Errorf("a second Release = %v, want nil", err)
	}
}

func TestScanSeesAbandonedDirectories(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "gone-abcdef")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, InfoFile), []byte(`{"slug":"gone-abcdef","backend":"docker","pid":1}`), 0o600)
	os.WriteFile(filepath.Join(dir, LockFile), nil, 0o600)
	entries, err := Scan(home)
	if err != nil || len(entries) != 1 || entries[0].Running {
		t.Fatalf("an unlocked directory with an info file counts as running: %+v, %v", entries, err)
	}
	if entries, _ := Scan(filepath.Join(home, "missing")); entries != nil {
		t.Errorf("a missing home lists bottles")
	}
}

func gatePlan() *plan.Plan {
	return &plan.Plan{
		Agent:  plan.Agent{Command: []string{"claude"}},
		Egress: plan.Egress{Sidecar: plan.SidecarEgress},
		Sidecars: []plan.Sidecar{
			{Name: plan.SidecarEgress, Listen: plan.Listener{URL: "http://proxy.internal:3128"}, Egress: &plan.EgressConfig{}},
			{Name: plan.SidecarGitGate, Listen: plan.Listener{URL: "http://git-gate:8080"}, GitGate: &plan.GitGateConfig{Remotes: []plan.GitRemote{
				{Name: "docs", URL: "https://example.com/docs.git"}, {Name: "origin", URL: "git@github.com:acme/app.git"}}}},
			{Name: plan.SidecarSupervise, Listen: plan.Listener{URL: "http://supervise:8765/mcp"}, Supervise: &plan.SuperviseConfig{Timeout: "10m0s"}},
		},
	}
}

func TestAgentEnvironment(t *testing.T) {
	p := gatePlan()
	env := ProxyEnv(p, []string{"supervise", "git-gate"})
	for _, want := range []string{"HTTPS_PROXY=http://proxy.internal:3128", "http_proxy=http://proxy.internal:3128", "NO_PROXY=git-gate,supervise"} {
		if !slices.Contains(env, want) {
			t.Errorf("proxy env %v lacks %s", env, want)
		}
	}
	git := GitEnv(p)
	want := []string{
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=url.http://git-gate:8080/docs.git.insteadOf", "GIT_CONFIG_VALUE_0=https://example.com/docs.git",
		"GIT_CONFIG_KEY_1=url.http://git-gate:8080/origin.git.insteadOf", "GIT_CONFIG_VALUE_1=git@github.com:acme/app.git",
	}
	if !slices.Equal(git, want) {
		t.Errorf("GitEnv = %v\nwant %v", git, want)
	}
	if GitEnv(&plan.Plan{}) != nil {
		t.Errorf("GitEnv without a gate is not empty")
	}

	cmd, extra, err := AgentCommand(&Bottle{Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd) != 3 || cmd[1] != "--mcp-config" || !strings.Contains(cmd[2], `"url":"http://supervise:8765/mcp"`) {
		t.Errorf("claude is not given the supervise server: %q", cmd)
	}
	if !slices.Contains(extra, "MCP_TOOL_TIMEOUT=660000") {
		t.Errorf("MCP_TOOL_TIMEOUT not set past the supervise timeout: %v", extra)
	}
	// A one-off command runs as given.
	cmd, extra, _ = AgentCommand(&Bottle{Plan: p, Command: []string{"make", "test"}})
	if !slices.Equal(cmd, []string{"make", "test"}) || extra != nil {
		t.Errorf("one-off command changed: %q %v", cmd, extra)
	}
}

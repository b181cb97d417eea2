package pipelock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	unit "github.com/bottle-dev/bottle/sidecars/pipelock"
)

func runFake(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pipelock.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	if _, out, _ := runFake(t, nil, "--version"); out != "pipelock version 2.3.0\n" {
		t.Errorf("--version = %q", out)
	}
	if _, out, _ := runFake(t, map[string]string{"FAKE_PIPELOCK_VERSION": "3.5.0"}, "version"); !strings.HasPrefix(out, "pipelock version 3.5.0\n") {
		t.Errorf("version = %q", out)
	}
}

// TestRenderedConfigsPass checks every golden config of the renderer and
// a freshly rendered one.
func TestRenderedConfigsPass(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("..", "..", "..", "sidecars", "pipelock", "testdata", "pipelock_*.yaml"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no rendered goldens found (%v)", err)
	}
	cfg := plan.PipelockConfig{RequestBodyScanning: true, BodyScanAction: "block", IdleTimeoutSeconds: 60, MaxTunnelSeconds: 600}
	p := &plan.Plan{
		Egress:   plan.Egress{Sidecar: plan.SidecarPipelock, Rules: []plan.Rule{{Host: "api.anthropic.com", Ports: []int{443}}}},
		Sidecars: []plan.Sidecar{{Name: plan.SidecarPipelock, Pipelock: &cfg}},
	}
	fresh, err := unit.Render(p, "0.0.0.0:8888")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append(goldens, writeConfig(t, string(fresh))) {
		code, out, errs := runFake(t, nil, "check", "--config", path)
		if code != 0 || !strings.HasPrefix(out, "Config validation: OK\n  Mode:           strict\n") {
			t.Errorf("check %s: exit %d\nstdout: %s\nstderr: %s", path, code, out, errs)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	const base = "version: 1\nmode: strict\napi_allowlist: [a.example.com]\n"
	tests := map[string]struct{ yaml, want string }{
		"unknown top key":  {base + "allowlist: [b.example.com]\n", "line 4: field allowlist not found in type config.Config"},
		"unknown nested":   {base + "forward_proxy:\n  enabled: true\n  idle_timeout: 5\n", "field idle_timeout not found in type config.ForwardProxy"},
		"dlp typo":         {base + "dlp:\n  scan_envs: true\n", "field scan_envs not found in type config.DLP"},
		"bad type":         {base + "enforce: 3\n", "cannot unmarshal !!int `3` into bool"},
		"bad mode":         {"mode: paranoid\napi_allowlist: [a.example.com]\n", `invalid config: invalid mode "paranoid": must be strict, balanced, or audit`},
		"strict empty":     {"mode: strict\n", "invalid config: strict mode requires at least one domain in api_allowlist"},
		"two documents":    {base + "---\nmode: audit\n", "multiple YAML documents not supported"},
		"body action":      {base + "request_body_scanning:\n  enabled: true\n  action: strip\n", `invalid request_body_scanning.action "strip": must be warn or block`},
		"header mode":      {base + "request_body_scanning:\n  header_mode: some\n", `invalid request_body_scanning.header_mode "some"`},
		"log output":       {base + "logging:\n  output: file\n", `logging.file is required when output is "file"`},
		"log format":       {base + "logging:\n  format: xml\n", `invalid logging format "xml"`},
		"dlp action":       {base + "dlp:\n  action: strip\n", `dlp.action "strip" is not supported`},
		"dlp regex":        {base + "dlp:\n  patterns:\n    - name: x\n      regex: '('\n", `DLP pattern "x" has invalid regex`},
		"trusted bare":     {base + "trusted_domains: ['*']\n", "trusted_domains[0]: bare wildcard disables all SSRF protection"},
		"trusted tld":      {base + "trusted_domains: ['*.com']\n", `trusted_domains[0] "*.com": wildcard must target a concrete domain`},
		"trusted url":      {base + "trusted_domains: ['https://a.example.com']\n", "use a hostname pattern, not a URL or host:port"},
		"trusted glob":     {base + "trusted_domains: ['a*.example.com']\n", "only exact hosts and *.example.com wildcards are supported"},
		"exclusion bare *": {base + "fetch_proxy:\n  monitoring:\n    subdomain_entropy_exclusions: ['*']\n", "only exact hosts and *.example.com wildcards"},
		"negative rate":    {base + "fetch_proxy:\n  monitoring:\n    max_requests_per_minute: -1\n", "max_requests_per_minute must be >= 0"},
		"not yaml":         {"mode: [strict\n", "parsing config"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			code, out, errs := runFake(t, nil, "check", "--config", path)
			if code != 1 || !strings.HasPrefix(errs, "Config validation FAILED: ") || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", code, out, errs, tc.want)
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	// Omitted request_body_scanning turns on with action warn, which is
	// valid; an omitted mode is balanced, which needs no allowlist.
	for _, y := range []string{"mode: strict\napi_allowlist: [a.example.com]\n", "", "version: 1\n"} {
		if code, _, errs := runFake(t, nil, "check", "-c", writeConfig(t, y)); code != 0 {
			t.Errorf("check of %q: exit %d: %s", y, code, errs)
		}
	}
}

func TestArgs(t *testing.T) {
	path := writeConfig(t, "mode: audit\n")
	for _, args := range [][]string{{"check", "--config=" + path}, {"check", "-c" + path}, {"--home", "/tmp/h", "check", "-c", path}, {"check"}} {
		if code, _, errs := runFake(t, nil, args...); code != 0 {
			t.Errorf("%q: exit %d: %s", args, code, errs)
		}
	}
	for args, want := range map[string]string{
		"check --conf x":       "unknown flag: --conf",
		"check -x":             "unknown shorthand flag: 'x' in -x",
		"check --config":       "flag needs an argument: --config",
		"check extra":          `unknown command "extra" for "pipelock"`,
		"--bogus":              "unknown flag: --bogus",
		"check --config /nope": "reading config /nope",
	} {
		code, _, errs := runFake(t, nil, strings.Fields(args)...)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d, stderr %q, want 1 and %q", args, code, errs, want)
		}
	}
	if code, _, _ := runFake(t, nil, "check", "--url", "https://example.com"); code != 3 {
		t.Errorf("check --url: exit %d, want 3 (not emulated)", code)
	}
	logPath := filepath.Join(t.TempDir(), "argv.log")
	runFake(t, map[string]string{"FAKE_PIPELOCK_LOG": logPath}, "check", "--config", "/x y")
	if b, _ := os.ReadFile(logPath); string(b) != "pipelock check --config '/x y'\n" {
		t.Errorf("argv log = %q", b)
	}
}

func TestRun(t *testing.T) {
	path := writeConfig(t, "mode: strict\napi_allowlist: [a.example.com]\nfetch_proxy:\n  listen: 127.0.0.1:0\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"run", "--config", path}, func(string) string { return "" }, pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read startup line: %v (stderr %s)", err, errb.String())
	}
	var startup struct{ Listen string }
	if err := json.Unmarshal([]byte(line), &startup); err != nil {
		t.Fatalf("startup line %q: %v", line, err)
	}
	go io.Copy(io.Discard, pr)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + startup.Listen + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health status %d", resp.StatusCode)
	}
	conn, err := net.DialTimeout("tcp", startup.Listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 403") {
		t.Errorf("CONNECT answer %q, %v; want 403", status, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run exited %d after cancel: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}

	bad := writeConfig(t, "mode: strict\n")
	if code, _, errs := runFake(t, nil, "run", "-c", bad); code != 1 || !strings.Contains(errs, "strict mode requires") {
		t.Errorf("run with an invalid config: exit %d, %s", code, errs)
	}
}

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
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	sidecar "github.com/bottle-dev/bottle/sidecars/pipelock"
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
	if code, out, errs := runFake(t, nil, "--version"); code != 0 || out != "pipelock version 2.3.0\n" || errs != "" {
		t.Errorf("--version = %d, %q, %q", code, out, errs)
	}
	if _, out, _ := runFake(t, nil, "-v"); out != "pipelock version 2.3.0\n" {
		t.Errorf("-v = %q", out)
	}
	// cobra's cmd.Printf writes to stderr.
	code, out, errs := runFake(t, map[string]string{"FAKE_PIPELOCK_VERSION": "3.5.0"}, "version")
	if code != 0 || out != "" || !strings.HasPrefix(errs, "pipelock version 3.5.0\n  build date: ") {
		t.Errorf("version = %d, %q, %q", code, out, errs)
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
	fresh, err := sidecar.Render(p, "127.0.0.1:8888")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append(goldens, writeConfig(t, string(fresh))) {
		code, out, errs := runFake(t, nil, "check", "--config", path)
		if code != 0 || out != "" || !strings.HasPrefix(errs, "Config validation: OK\n  Mode:           strict\n") ||
			!strings.Contains(errs, "  DLP patterns:   48 rules\n  Entropy thresh: 4.5 bits\n  Max URL length: 2048 chars\n") {
			t.Errorf("check %s: exit %d\nstdout: %s\nstderr: %s", path, code, out, errs)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	const base = "version: 1\nmode: strict\napi_allowlist: [a.example.com]\n"
	loose := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(loose, []byte("s3cr3t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ yaml, want string }{
		"unknown top key":  {base + "allowlist: [b.example.com]\n", "line 4: field allowlist not found in type config.Config"},
		"unknown nested":   {base + "forward_proxy:\n  enabled: true\n  idle_timeout: 5\n", "field idle_timeout not found in type config.ForwardProxy"},
		"dlp typo":         {base + "dlp:\n  scan_envs: true\n", "field scan_envs not found in type config.DLP"},
		"monitoring typo":  {base + "fetch_proxy:\n  monitoring:\n    max_url: 5\n", "field max_url not found in type config.Monitoring"},
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
		"dlp validator":    {base + "dlp:\n  patterns:\n    - name: x\n      regex: x\n      validator: crc\n", `DLP pattern "x" has unknown validator "crc" (valid: luhn, mod97, aba, wif)`},
		"secrets missing":  {base + "dlp:\n  secrets_file: nope\n", `secrets_file "`},
		"secrets perms":    {base + "dlp:\n  secrets_file: " + loose + "\n", "has unsafe permissions (mode 0644): restrict to 0600 or 0640"},
		"trusted bare":     {base + "trusted_domains: ['*']\n", "trusted_domains[0]: bare wildcard disables all SSRF protection"},
		"trusted tld":      {base + "trusted_domains: ['*.com']\n", `trusted_domains[0] "*.com": wildcard must target a concrete domain`},
		"trusted url":      {base + "trusted_domains: ['https://a.example.com']\n", "use a hostname pattern, not a URL or host:port"},
		"trusted glob":     {base + "trusted_domains: ['a*.example.com']\n", "only exact hosts and *.example.com wildcards are supported"},
		"exclusion bare *": {base + "fetch_proxy:\n  monitoring:\n    subdomain_entropy_exclusions: ['*']\n", "only exact hosts and *.example.com wildcards"},
		"negative data":    {base + "fetch_proxy:\n  monitoring:\n    max_data_per_minute: -1\n", "max_data_per_minute must be >= 0"},
		"empty blocklist":  {base + "fetch_proxy:\n  monitoring:\n    blocklist: ['']\n", "invalid config: empty blocklist entry"},
		"not yaml":         {"mode: [strict\n", "parsing config"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			code, out, errs := runFake(t, nil, "check", "--config", path)
			if code != 1 || out != "" || !strings.HasPrefix(errs, "Config validation FAILED: ") || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", code, out, errs, tc.want)
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	// Omitted request_body_scanning turns on with action warn, which is
	// valid; an omitted mode is balanced, which needs no allowlist; a
	// listen address is not checked until run binds it; null sections
	// take their defaults.
	for _, y := range []string{
		"mode: strict\napi_allowlist: [a.example.com]\n", "", "version: 1\n",
		"fetch_proxy:\n  listen: nonsense\n", "kill_switch:\nwebsocket_proxy: ~\n",
		// ApplyDefaults turns a non-positive rate into 60 before validation.
		"fetch_proxy:\n  monitoring:\n    max_requests_per_minute: -1\n",
	} {
		if code, _, errs := runFake(t, nil, "check", "-c", writeConfig(t, y)); code != 0 || !strings.HasPrefix(errs, "Config validation: OK\n") {
			t.Errorf("check of %q: exit %d: %s", y, code, errs)
		}
	}
	code, _, errs := runFake(t, nil, "check", "-c", writeConfig(t, "dlp:\n  include_defaults: false\n  patterns:\n    - name: a\n      regex: a\n"))
	if code != 0 || !strings.Contains(errs, "  DLP patterns:   1 rules\n") {
		t.Errorf("include_defaults false: exit %d: %s", code, errs)
	}
	code, _, errs = runFake(t, nil, "check", "-c", writeConfig(t, "dlp:\n  patterns:\n    - name: IBAN\n      regex: a\n    - name: mine\n      regex: b\n"))
	if code != 0 || !strings.Contains(errs, "  DLP patterns:   49 rules\n") {
		t.Errorf("merged patterns: exit %d: %s", code, errs)
	}
}

func TestNotEmulated(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--url", "https://example.com"},
		{"check", "-c", writeConfig(t, "kill_switch:\n  enabled: true\n")},
		{"check", "--help"},
		{"run", "--mcp-listen", "127.0.0.1:1"},
		{"run"},
		{"generate", "config"},
		{},
	} {
		if code, _, errs := runFake(t, nil, args...); code != 3 || !strings.Contains(errs, "fake pipelock: ") || !strings.Contains(errs, "not emulated") {
			t.Errorf("%q: exit %d, %q; want 3 and a not-emulated message", args, code, errs)
		}
	}
}

func TestArgs(t *testing.T) {
	path := writeConfig(t, "mode: audit\n")
	for _, args := range [][]string{
		{"check", "--config=" + path}, {"check", "-c" + path}, {"check", "-c=" + path},
		{"--home", "/tmp/h", "check", "-c", path}, {"check", "--home=/x", "-c", path},
		{"check"}, {"check", "extra", "-c", path},
	} {
		if code, _, errs := runFake(t, nil, args...); code != 0 {
			t.Errorf("%q: exit %d: %s", args, code, errs)
		}
	}
	for args, want := range map[string]string{
		"check --conf x":       "unknown flag: --conf",
		"check -x":             "unknown shorthand flag: 'x' in -x",
		"check --config":       "flag needs an argument: --config",
		"check -c":             "flag needs an argument: 'c' in -c",
		"check ---c x":         "bad flag syntax: ---c",
		"--bogus":              "unknown flag: --bogus",
		"check --config /nope": "reading config /nope",
		"run --version":        "unknown flag: --version",
		"run -c x extra":       `unexpected arguments ["extra"]; pass agent args after --`,
		"run -c x a -- b":      `unexpected arguments before --: ["a"]`,
	} {
		code, _, errs := runFake(t, nil, strings.Fields(args)...)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d, stderr %q, want 1 and %q", args, code, errs, want)
		}
	}
	logPath := filepath.Join(t.TempDir(), "argv.log")
	runFake(t, map[string]string{"FAKE_PIPELOCK_LOG": logPath}, "check", "--config", "/x y")
	if b, _ := os.ReadFile(logPath); string(b) != "pipelock check --config '/x y'\n" {
		t.Errorf("argv log = %q", b)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startRun runs `pipelock run` on addr until the test ends and waits for
// /health.
func startRun(t *testing.T, yaml, addr string, extra ...string) (stdout, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	args := append([]string{"run", "--config", writeConfig(t, yaml), "--listen", addr}, extra...)
	go func() { done <- run(ctx, args, func(string) string { return "" }, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("run exited %d after cancel: %s", code, stderr)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop after its context ended")
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			return stdout, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /health: %v; stderr %s", err, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawRequest sends req on a fresh connection to addr and returns the
// status line, the X-Pipelock-Hint header and the body.
func rawRequest(t *testing.T, addr, req string) (status, hint, body string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status, resp.Header.Get("X-Pipelock-Hint"), string(b)
}

func TestRun(t *testing.T) {
	addr := freeAddr(t)
	conf := "mode: strict\nexplain_blocks: true\napi_allowlist: ['*.example.com']\n" +
		"fetch_proxy:\n  listen: 0.0.0.0:8888\n  monitoring:\n    blocklist: [bad.example.com]\n" +
		"forward_proxy:\n  enabled: true\nrequest_body_scanning:\n  enabled: false\n"
	stdout, stderr := startRun(t, conf, addr)

	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || h["status"] != "healthy" || h["version"] != "2.3.0" || h["mode"] != "strict" ||
		h["forward_proxy_enabled"] != true || h["dlp_patterns"] != 48.0 {
		t.Errorf("/health = %d %v (%v)", resp.StatusCode, h, err)
	}

	const hint = "Domain not on the allowlist. In strict mode, only allowlisted domains are reachable."
	for _, tc := range []struct{ req, status, hint, body string }{
		{"CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n", "403 Forbidden", hint, "CONNECT blocked: domain not in allowlist: other.test\n"},
		{"CONNECT Other.Test HTTP/1.1\r\nHost: Other.Test\r\n\r\n", "403 Forbidden", hint, "CONNECT blocked: domain not in allowlist: other.test\n"},
		{"CONNECT 0x7f000001:22 HTTP/1.1\r\nHost: 0x7f000001:22\r\n\r\n", "403 Forbidden", hint, "CONNECT blocked: domain not in allowlist: 127.0.0.1\n"},
		{"CONNECT bad.example.com:443 HTTP/1.1\r\nHost: bad.example.com:443\r\n\r\n", "403 Forbidden",
			"Domain is on the blocklist. Remove from fetch_proxy.monitoring.blocklist if legitimate.",
			"CONNECT blocked: domain blocked: bad.example.com matches bad.example.com\n"},
		{"GET http://other.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n", "403 Forbidden", hint, "blocked: domain not in allowlist: other.test\n"},
		{"GET http://a.example.com/%2e%2e/x HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "403 Forbidden",
			"Path traversal sequence detected. Review the URL for directory escape attempts.", "blocked: path traversal sequence in URL\n"},
		{"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", "501 Not Implemented", "", ""},
		{"CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n", "501 Not Implemented", "", ""},
		{"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "404 Not Found", "", "404 page not found\n"},
	} {
		status, gotHint, body := rawRequest(t, addr, tc.req)
		if status != tc.status || gotHint != tc.hint || (tc.body != "" && body != tc.body) ||
			(tc.status == "501 Not Implemented" && !strings.HasPrefix(body, "fake pipelock: ")) {
			t.Errorf("%q:\n got %s, hint %q, body %q\nwant %s, hint %q, body %q", tc.req, status, gotHint, body, tc.status, tc.hint, tc.body)
		}
	}

	var startup map[string]string
	line, _, _ := strings.Cut(stdout.String(), "\n")
	if err := json.Unmarshal([]byte(line), &startup); err != nil || startup["event"] != "startup" || startup["listen"] != addr ||
		startup["component"] != "pipelock" || startup["message"] != "pipelock started" || len(startup["config_hash"]) != 64 {
		t.Errorf("startup log line %q (%v)", line, err)
	}
	if !strings.Contains(stderr.String(), "Pipelock v2.3.0 starting\n  Mode:   strict\n  Listen: "+addr+"\n") {
		t.Errorf("startup banner:\n%s", stderr)
	}
}

func TestRunForwardProxyOff(t *testing.T) {
	addr := freeAddr(t)
	startRun(t, "mode: strict\napi_allowlist: [a.example.com]\n", addr)
	if status, _, body := rawRequest(t, addr, "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n"); status != "405 Method Not Allowed" || body != "CONNECT not supported\n" {
		t.Errorf("CONNECT with the forward proxy off: %s %q", status, body)
	}
	if status, _, body := rawRequest(t, addr, "GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n"); status != "405 Method Not Allowed" || body != "forward proxy not enabled\n" {
		t.Errorf("absolute URI with the forward proxy off: %s %q", status, body)
	}
}

func TestRunFailures(t *testing.T) {
	good := writeConfig(t, "mode: strict\napi_allowlist: [a.example.com]\n")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"invalid config": {[]string{"run", "-c", writeConfig(t, "mode: strict\n")}, "loading config: invalid config: strict mode requires at least one domain in api_allowlist"},
		"mode override":  {[]string{"run", "-c", writeConfig(t, "mode: audit\n"), "--mode", "strict"}, "invalid config: strict mode requires at least one domain in api_allowlist"},
		"bad listen":     {[]string{"run", "-c", good, "--listen", "nonsense"}, "proxy error: listen tcp: address nonsense: missing port in address"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errs := runFake(t, nil, tc.args...)
			// The error is main's last line; the banner comes first when
			// the failure is the bind.
			if code != 1 || !strings.HasSuffix(errs, tc.want+"\n") {
				t.Errorf("exit %d, stderr:\n%s\nwant 1 and a last line of %q", code, errs, tc.want)
			}
		})
	}
}

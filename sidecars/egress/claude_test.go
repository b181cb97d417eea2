package egress

// Claude Code, the agent of bottle's shipped profile, through the
// intercepting proxy: the real CLI, as published, holds only the
// placeholder of its API key, and the real key reaches the Anthropic API,
// a mock on loopback, only at the proxy.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// The pinned releases.
//
// Claude Code's package is a thin wrapper: its install script puts the
// native binary of the platform, from a package of its own
// (@anthropic-ai/claude-code-linux-x64 and so on), in place of the bin
// stub, and the CLI is that binary (a Bun executable, which reads
// HTTPS_PROXY and NODE_EXTRA_CA_CERTS as Node does). The package declares
// that it needs Node.js 22 or later to install; Debian 12's Node is 18.
// Node comes from the same package registry as Claude Code: its
// node-<os>-<cpu> packages hold the official binaries.
const (
	claudeCodeVersion = "2.1.332"
	claudeNodeVersion = "22.23.3"
)

// claudeAPIHost is the host the shipped profile binds the API key to
// (profiles/lib/claude.star).
const claudeAPIHost = "api.anthropic.com"

// claudeHosts are the names Claude Code calls in print mode with the
// profile's environment (found by watching the proxy's log): the mock API
// answers them, and the proxy's rules allow nothing else.
var claudeHosts = []string{claudeAPIHost}

// claudeReply is what the mock API answers every message with.
const claudeReply = "Hello from the mock Messages API, through bottle's proxy."

// needOrSkip skips the test, saying why, or fails it under BOTTLE_CI,
// where it must run.
func needOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("BOTTLE_CI") != "" {
		t.Fatalf("CI must run this: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// claudeInstaller installs the pinned Node.js and Claude Code into a cache
// directory that test runs share, so that only the first run downloads.
type claudeInstaller struct {
	t        *testing.T
	root     string // the cache directory
	platform string // "linux-x64", "linux-arm64"
	npm      string // found on first use
}

// claudePlatform is the platform suffix of the registry's Node packages,
// or "" where the test does not run.
func claudePlatform() string {
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || cpu == "" {
		return ""
	}
	return "linux-" + cpu
}

// run runs a command and returns its output, failing the test if it fails.
func (ci *claudeInstaller) run(dir string, env []string, timeout time.Duration, name string, args ...string) string {
	ci.t.Helper()
	out, err := runFor(dir, env, timeout, name, args...)
	if err != nil {
		ci.t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runFor(dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// registry returns npm after checking that the package registry knows pkg,
// and skips the test (fails it in CI) if npm or the registry is missing.
func (ci *claudeInstaller) registry(pkg string) string {
	ci.t.Helper()
	if ci.npm == "" {
		ci.npm = needTool(ci.t, "npm")
		needTool(ci.t, "node") // npm runs on it
	}
	if out, err := runFor("", nil, 2*time.Minute, ci.npm, "view", pkg, "version"); err != nil {
		if len(out) > 2000 {
			out = "..." + out[len(out)-2000:]
		}
		needOrSkip(ci.t, "the package registry is unavailable (npm view %s: %v)\n%s", pkg, err, out)
	}
	return ci.npm
}

// staging makes a directory to install into, beside the final one, so that
// a rename moves an installation into place whole.
func (ci *claudeInstaller) staging() string {
	ci.t.Helper()
	dir, err := os.MkdirTemp(ci.root, ".staging-")
	if err != nil {
		ci.t.Fatal(err)
	}
	ci.t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// commit moves a staged installation into place. If another run got there
// first, its installation is as good.
func (ci *claudeInstaller) commit(staged, dir string) {
	ci.t.Helper()
	if err := os.Rename(staged, dir); err != nil {
		if _, serr := os.Stat(dir); serr != nil {
			ci.t.Fatal(err)
		}
	}
}

// versionOf runs bin --version and returns what it prints, or "".
func (ci *claudeInstaller) versionOf(bin string) string {
	out, err := runFor("", []string{"HOME=" + ci.t.TempDir()}, time.Minute, bin, "--version")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// node returns the pinned Node.js binary, installing it first if needed.
func (ci *claudeInstaller) node() string {
	ci.t.Helper()
	dir := filepath.Join(ci.root, "node-v"+claudeNodeVersion+"-"+ci.platform)
	bin := filepath.Join(dir, "bin", "node")
	if ci.versionOf(bin) == "v"+claudeNodeVersion {
		return bin
	}
	pkg := "node-" + ci.platform + "@" + claudeNodeVersion
	npm := ci.registry(pkg)
	staged := ci.staging()
	ci.run(staged, nil, 10*time.Minute, npm, "pack", "--silent", pkg)
	tgz, _ := filepath.Glob(filepath.Join(staged, "*.tgz"))
	if len(tgz) != 1 {
		ci.t.Fatalf("npm pack %s left %v", pkg, tgz)
	}
	dst := filepath.Join(staged, "node")
	if err := extractFiles(tgz[0], dst, "package/", "bin/node", "LICENSE"); err != nil {
		ci.t.Fatalf("%s: %v", pkg, err)
	}
	if v := ci.versionOf(filepath.Join(dst, "bin", "node")); v != "v"+claudeNodeVersion {
		ci.t.Fatalf("%s holds a node that says %q", pkg, v)
	}
	ci.commit(dst, dir)
	return bin
}

// extractFiles writes the named regular files of a gzipped tar, whose
// names there start with prefix, below dst.
func extractFiles(tgz, dst, prefix string, names ...string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	left := slices.Clone(names)
	for len(left) > 0 {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("%v; not found: %v", err, left)
		}
		name, ok := strings.CutPrefix(h.Name, prefix)
		i := slices.Index(left, name)
		if !ok || i < 0 || h.Typeflag != tar.TypeReg {
			continue
		}
		left = slices.Delete(left, i, i+1)
		p := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode)&0o755|0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// claude returns the pinned Claude Code CLI, installing it first if needed
// as its documentation says, with npm install, npm running on the pinned
// node.
func (ci *claudeInstaller) claude() string {
	ci.t.Helper()
	dir := filepath.Join(ci.root, "claude-code-"+claudeCodeVersion+"-"+ci.platform)
	bin := filepath.Join(dir, "node_modules", ".bin", "claude")
	if strings.HasPrefix(ci.versionOf(bin), claudeCodeVersion+" ") {
		return bin
	}
	node := ci.node()
	npm := ci.registry("@anthropic-ai/claude-code@" + claudeCodeVersion)
	staged := ci.staging()
	dst := filepath.Join(staged, "claude")
	path := "PATH=" + filepath.Dir(node) + string(os.PathListSeparator) + os.Getenv("PATH")
	ci.run(staged, []string{path}, 15*time.Minute, npm, "install", "--prefix", dst,
		"--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error",
		"@anthropic-ai/claude-code@"+claudeCodeVersion)
	// The package's install script, run here rather than by npm: whether
	// npm runs a dependency's scripts depends on its version and
	// configuration.
	ci.run(filepath.Join(dst, "node_modules", "@anthropic-ai", "claude-code"), []string{path}, 5*time.Minute, node, "install.cjs")
	if v := ci.versionOf(filepath.Join(dst, "node_modules", ".bin", "claude")); !strings.HasPrefix(v, claudeCodeVersion+" ") {
		ci.t.Fatalf("the installed claude says %q, want version %s", v, claudeCodeVersion)
	}
	ci.commit(dst, dir)
	return bin
}

// installClaude returns the pinned Claude Code CLI, from the cache
// (os.UserCacheDir()/bottle-test) or installed there.
func installClaude(t *testing.T) string {
	t.Helper()
	platform := claudePlatform()
	if platform == "" {
		needOrSkip(t, "the Claude Code test runs on linux/amd64 and linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		needOrSkip(t, "no cache directory to install Node.js and Claude Code in: %v", err)
	}
	ci := &claudeInstaller{t: t, root: filepath.Join(cache, "bottle-test"), platform: platform}
	if err := os.MkdirAll(ci.root, 0o755); err != nil {
		t.Fatal(err)
	}
	// What killed runs left.
	old, _ := filepath.Glob(filepath.Join(ci.root, ".staging-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(d)
		}
	}
	return ci.claude()
}

// mockRequest is a request the mock API received.
type mockRequest struct {
	Method, Host, URI string
	Header            http.Header
	Body              string
	Authorized        bool
}

// mockAnthropic is enough of the Anthropic API for claude -p: the Messages
// API, streamed or not, token counting, and what Claude Code asks for at
// start (its organization's policy limits and managed settings, of which
// an API key's has none). It answers 401 to a request without the real key.
type mockAnthropic struct {
	key  string
	ca   *CA
	addr netip.AddrPort

	mu   sync.Mutex
	reqs []mockRequest
}

func (m *mockAnthropic) requests() []mockRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.reqs)
}

func (m *mockAnthropic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	authorized := r.Header.Get("X-Api-Key") == m.key || r.Header.Get("Authorization") == "Bearer "+m.key
	m.mu.Lock()
	m.reqs = append(m.reqs, mockRequest{Method: r.Method, Host: r.Host, URI: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body), Authorized: authorized})
	m.mu.Unlock()
	if !authorized {
		anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/messages":
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
			return
		}
		if req.Stream {
			streamMessage(w, req.Model)
			return
		}
		writeJSON(w, map[string]any{
			"id": "msg_mock01", "type": "message", "role": "assistant", "model": req.Model,
			"content":     []any{map[string]any{"type": "text", "text": claudeReply}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 12, "output_tokens": 14},
		})
	case r.Method == "POST" && r.URL.Path == "/v1/messages/count_tokens":
		writeJSON(w, map[string]any{"input_tokens": 12})
	case r.Method == "GET" && r.URL.Path == "/api/claude_code/policy_limits":
		writeJSON(w, map[string]any{"restrictions": map[string]any{}})
	case r.Method == "GET" && r.URL.Path == "/api/claude_code/settings":
		anthropicError(w, http.StatusNotFound, "not_found_error", "no managed settings")
	default:
		anthropicError(w, http.StatusNotFound, "not_found_error", "not found: "+r.URL.Path)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// streamMessage answers a streamed message as the Messages API does, with
// server-sent events from message_start to message_stop, the text in two
// deltas, each event flushed on its own.
func streamMessage(w http.ResponseWriter, model string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	half := len(claudeReply) / 2
	events := []map[string]any{
		{"type": "message_start", "message": map[string]any{
			"id": "msg_mock02", "type": "message", "role": "assistant", "model": model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 12, "output_tokens": 1}}},
		{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}},
		{"type": "ping"},
		{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": claudeReply[:half]}},
		{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": claudeReply[half:]}},
		{"type": "content_block_stop", "index": 0},
		{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 14}},
		{"type": "message_stop"},
	}
	for _, ev := range events {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev["type"], data)
		w.(http.Flusher).Flush()
	}
}

// startMockAnthropic serves the mock API over TLS, with a CA of its own for
// claudeHosts. It listens on port 443 of a loopback address, as the real
// API does, when it may bind it (as root, as in CI); else on a free port of
// 127.0.0.1, which Claude Code is then pointed at with ANTHROPIC_BASE_URL.
func startMockAnthropic(t *testing.T, key string) *mockAnthropic {
	t.Helper()
	ca, err := NewCA(claudeHosts)
	if err != nil {
		t.Fatal(err)
	}
	m := &mockAnthropic{key: key, ca: ca}
	cfg := &tls.Config{GetCertificate: ca.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
	// An address of 127/8 other than 127.0.0.1, where nothing else listens
	// on 443.
	var b [2]byte
	rand.Read(b[:])
	ln, err := tls.Listen("tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, b[0], b[1] | 1}), 443).String(), cfg)
	if err != nil {
		t.Logf("the mock API cannot listen on port 443 (%v); Claude Code is pointed at its port with ANTHROPIC_BASE_URL", err)
		if ln, err = tls.Listen("tcp", "127.0.0.1:0", cfg); err != nil {
			t.Fatal(err)
		}
	}
	m.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	srv := &http.Server{Handler: m}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

// TestClaudeCodeThroughProxy runs the real Claude Code CLI in print mode
// through the intercepting proxy, as a bottle runs it: its API key is the
// placeholder, it trusts the bottle's CA through NODE_EXTRA_CA_CERTS, its
// environment is the shipped profile's, and its only way out is the proxy,
// whose rules allow the API host alone. The real key reaches the API, and
// nothing the proxy's outbound scan refuses is in what Claude Code sends.
func TestClaudeCodeThroughProxy(t *testing.T) {
	claude := installClaude(t)

	real := "sk-ant-" + "api03-" + randomToken("", 93) + "AA" // the shape of an Anthropic API key
	ph, err := Placeholder(real)
	if err != nil {
		t.Fatal(err)
	}
	mock := startMockAnthropic(t, real)
	roots := x509.NewCertPool()
	roots.AddCert(mock.ca.Certificate())
	res := fakeResolver{}
	var rules []plan.Rule
	for _, h := range claudeHosts {
		res[h] = []netip.Addr{mock.addr.Addr()}
		rules = append(rules, plan.Rule{Host: h, Ports: []int{int(mock.addr.Port())}, AllowPrivate: true, From: "//lib/claude.star:18:5"})
	}
	tp := startProxy(t, "tcp", Options{
		Resolver:      res,
		Rules:         rules,
		Secrets:       []Secret{{Name: "ANTHROPIC_API_KEY", Value: real, Placeholder: ph, Hosts: []string{claudeAPIHost}}},
		UpstreamRoots: roots,
	})
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := "http://" + c.RemoteAddr().String()
	c.Close()
	home, tmp := t.TempDir(), t.TempDir()
	caFile := filepath.Join(tmp, "bottle-ca.pem")
	if err := os.WriteFile(caFile, tp.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	debugFile := filepath.Join(tmp, "claude-debug.log")

	// The environment a bottle gives the agent, and nothing of the
	// caller's (its own key, base URL or proxy settings).
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + tmp,
		"LANG=C.UTF-8",
		"TERM=dumb",
		"HTTPS_PROXY=" + proxyURL, "HTTP_PROXY=" + proxyURL,
		"https_proxy=" + proxyURL, "http_proxy=" + proxyURL,
		"NO_PROXY=", "no_proxy=",
		"NODE_EXTRA_CA_CERTS=" + caFile,
		"ANTHROPIC_API_KEY=" + ph,
		"DISABLE_TELEMETRY=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	}
	if p := mock.addr.Port(); p != 443 {
		env = append(env, "ANTHROPIC_BASE_URL=https://"+claudeAPIHost+":"+strconv.Itoa(int(p)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, claude, "-p", "say hi", "--debug-file", debugFile)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("claude -p ran for %s", time.Since(start).Round(time.Millisecond))
	reqs := mock.requests()
	events := tp.log.events(t)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("stdout: %s\nstderr: %s", stdout.String(), stderr.String())
		for _, r := range reqs {
			t.Logf("the mock API got %s %s %s (authorized %v)", r.Method, r.Host, r.URI, r.Authorized)
		}
		t.Logf("the proxy's log:\n%s", tp.log.String())
		if b, err := os.ReadFile(debugFile); err == nil {
			t.Logf("claude's debug log, the end:\n%s", b[max(0, len(b)-16000):])
		}
	})

	if err != nil || !strings.Contains(stdout.String(), claudeReply) {
		t.Errorf("claude -p: %v; want the mock's reply on stdout", err)
	}

	// The API got the real key on every request, never the placeholder,
	// and a streamed message. Each body went through the proxy's outbound
	// scan in windows; the gitleaks rules find nothing in it whole either.
	dlp, err := NewDLP(nil)
	if err != nil {
		t.Fatal(err)
	}
	var streamed bool
	for _, r := range reqs {
		t.Logf("Claude Code called %s %s %s (%d bytes of body)", r.Method, r.Host, r.URI, len(r.Body))
		if !r.Authorized {
			t.Errorf("%s %s reached the API without the real key (x-api-key %q)", r.Method, r.URI, shortValue(r.Header.Get("X-Api-Key")))
		}
		if strings.Contains(fmt.Sprint(r.Header), ph) || strings.Contains(r.Body, ph) {
			t.Errorf("%s %s reached the API with the placeholder", r.Method, r.URI)
		}
		if leak := dlp.ScanText("request body", r.Body, nil); leak != nil {
			t.Errorf("%s %s: the outbound scan let through a body its rules match whole: %v", r.Method, r.URI, leak)
		}
		var msg struct {
			Stream bool `json:"stream"`
		}
		if path, _, _ := strings.Cut(r.URI, "?"); r.Method == "POST" && path == "/v1/messages" && json.Unmarshal([]byte(r.Body), &msg) == nil && msg.Stream {
			streamed = true
		}
	}
	if !streamed {
		t.Error("the API got no streamed message")
	}

	// Every request was the API host's, intercepted, with the key put in;
	// none was refused, by the rules or by the outbound scan.
	var substituted bool
	for _, ev := range events {
		switch {
		case !ev.Allowed && strings.Contains(ev.Reason, "outbound scan"):
			t.Errorf("the proxy's outbound scan refused Claude Code's %s %s%s: %s", ev.Method, ev.Host, ev.Path, ev.Reason)
		case !ev.Allowed:
			t.Errorf("the proxy refused Claude Code's %s %s:%d%s: %s (does the profile need another host?)", ev.Method, ev.Host, ev.Port, ev.Path, ev.Reason)
		case ev.Error != "":
			t.Errorf("%s %s%s failed at the proxy: %s", ev.Method, ev.Host, ev.Path, ev.Error)
		case !ev.Intercepted:
			t.Errorf("%s %s was not intercepted", ev.Method, ev.Host)
		case ev.Method != "CONNECT" && !slices.Equal(ev.Substituted, []string{"ANTHROPIC_API_KEY"}):
			t.Errorf("%s %s%s: substituted %v, want the API key", ev.Method, ev.Host, ev.Path, ev.Substituted)
		case ev.Method == "POST" && ev.Path == "/v1/messages":
			substituted = true
		}
	}
	if !substituted || !strings.Contains(tp.log.String(), `"substituted":["ANTHROPIC_API_KEY"]`) {
		t.Error(`the proxy's log has no message request with "substituted":["ANTHROPIC_API_KEY"]`)
	}

	// The real key never reached Claude Code: not in its output, its
	// files or its debug log; nor is it in the proxy's log.
	if strings.Contains(stdout.String()+stderr.String(), real) {
		t.Error("Claude Code's output holds the real key")
	}
	if strings.Contains(tp.log.String(), real) || strings.Contains(tp.log.String(), ph) {
		t.Error("the proxy's log holds the real key or the placeholder")
	}
	for _, dir := range []string{home, tmp} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), real) {
					t.Errorf("Claude Code's %s holds the real key", p)
				}
			}
			return nil
		})
	}
}

// shortValue shows the start of a credential, enough to tell the
// placeholder from a key.
func shortValue(v string) string {
	if len(v) > 24 {
		return v[:24] + "..."
	}
	return v
}

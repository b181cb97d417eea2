package all_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottle-dev/bottle/plan"
	_ "github.com/bottle-dev/bottle/sidecars/all"
	"github.com/bottle-dev/bottle/sidecars/egress"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
	"github.com/bottle-dev/bottle/sidecars/supervise"
)

// TestApprovedEgressReachesTheRunningProxy runs the egress proxy and the
// supervise server in one sidecar process, as a bottle does, and follows a
// request from a real MCP client through `bottle approve` (supervise.Answer)
// to the proxy's decision: before approval the host is refused for want of
// a rule, after it the rule is there, live, with no restart.
func TestApprovedEgressReachesTheRunningProxy(t *testing.T) {
	state := t.TempDir()
	if err := os.Chmod(state, 0o700); err != nil {
		t.Fatal(err)
	}
	egressSpec, _ := json.Marshal(egress.Spec{Listen: srt.Listen{Network: "tcp", Address: "127.0.0.1:0"},
		Rules: []plan.Rule{{Host: "api.example.com", Ports: []int{443}, From: "//t.star:1:1"}}})
	superviseSpec, _ := json.Marshal(map[string]any{"listen": srt.Listen{Network: "unix", Address: filepath.Join(state, "supervise.sock")}, "timeout": "30s"})
	cfg := &srt.Config{Version: srt.ConfigVersion, Slug: "t", StateDir: state,
		Sidecars: map[string]json.RawMessage{"egress": egressSpec, "supervise": superviseSpec}}
	cfgPath := filepath.Join(state, "sidecars.json")
	if err := srt.WriteConfig(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srt.Run(ctx, cfgPath, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecars: %v", err)
		}
	})
	var ready *srt.Ready
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := srt.ReadReady(state)
		if err == nil {
			ready = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecars not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	proxyAddr := ready.Listeners["egress"][0].Address

	// denialOf asks the proxy for host:port and returns its answer.
	denialOf := func(hostPort string) string {
		c, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostPort, hostPort)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	if got := denialOf("localhost.example.test:8443"); !strings.Contains(got, "403") || !strings.Contains(got, "no rule allows this host") {
		t.Fatalf("before approval: %s", got)
	}

	// The agent's MCP client, over the sidecar's unix socket.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(state, "supervise.sock"))
	}}}
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	session, err := client.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: "http://supervise/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer session.Close()

	result := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := session.CallTool(cctx, &mcp.CallToolParams{Name: "request_egress",
			Arguments: map[string]any{"host": "localhost.example.test", "port": 8443, "reason": "fetch the test fixtures"}})
		if err != nil {
			t.Errorf("request_egress: %v", err)
		}
		result <- res
	}()
	// The operator sees the proposal and approves it, as `bottle approve` does.
	var id string
	for id == "" {
		pending, err := supervise.Pending(state)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 1 {
			id = pending[0].ID
			if pending[0].Host != "localhost.example.test" || pending[0].Port != 8443 {
				t.Fatalf("proposal %+v", pending[0])
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := supervise.Answer(state, id, true, "ok for the fixtures"); err != nil {
		t.Fatal(err)
	}
	res := <-result
	if res == nil || res.IsError {
		t.Fatalf("request_egress failed: %+v", res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out supervise.EgressResult
	json.Unmarshal(b, &out)
	if out.Status != "approved" {
		t.Fatalf("request_egress = %s, want approved", b)
	}
	// The running proxy has the rule now: the refusal is no longer for
	// want of a rule (this name does not resolve to a public address, which
	// the proxy refuses on its own; supervise never grants private access).
	if got := denialOf("localhost.example.test:8443"); strings.Contains(got, "no rule allows this host") || strings.Contains(got, "allowed only on other ports") {
		t.Errorf("after approval the proxy still has no rule: %s", got)
	}
	audit, _ := os.ReadFile(filepath.Join(state, supervise.AuditFile))
	if !strings.Contains(string(audit), `"rule_added"`) {
		t.Errorf("the audit log does not record the added rule:\n%s", audit)
	}
}

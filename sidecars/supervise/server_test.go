package supervise

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottle-dev/bottle/plan"
)

// ruleList is a small in-memory allow-list: the part of the egress proxy
// the supervise server talks to.
type ruleList struct {
	mu    sync.Mutex
	rules []plan.Rule
	fail  error
}

func (l *ruleList) Rules() []plan.Rule {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rules)
}

func (l *ruleList) set(rules []plan.Rule, fail error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules, l.fail = rules, fail
}

func (l *ruleList) AddRule(r plan.Rule) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	if _, err := plan.NormalizeHost(r.Host); err != nil {
		return err
	}
	l.rules = append(l.rules, r)
	return nil
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) events(t *testing.T) []AuditEvent {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var evs []AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return evs
}

type fixture struct {
	srv      *Server
	stateDir string
	rules    *ruleList
	audit    *syncBuffer
	session  *mcp.ClientSession
}

// start runs a real server on a real listener ("tcp" on loopback or
// "unix") and connects the SDK's client to it.
func start(t *testing.T, network string, mod func(*Config)) *fixture {
	t.Helper()
	return startProtocol(t, network, "", mod)
}

// startProtocol is start with the client asking for an MCP protocol
// version ("" for the SDK's newest, which the server negotiates down).
func startProtocol(t *testing.T, network, protocol string, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{stateDir: t.TempDir(), rules: &ruleList{}, audit: &syncBuffer{}}
	cfg := Config{StateDir: f.stateDir, Timeout: time.Minute, Rules: f.rules, Adder: f.rules, Audit: f.audit,
		PollInterval: 10 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv

	var l net.Listener
	endpoint := ""
	client := &http.Client{}
	switch network {
	case "tcp":
		l, err = net.Listen("tcp", "127.0.0.1:0")
		endpoint = "http://" + l.Addr().String() + Path
	case "unix":
		dir, derr := os.MkdirTemp("", "sv")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "supervise.sock")
		l, err = net.Listen("unix", sock)
		endpoint = "http://supervise" + Path
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
	default:
		t.Fatalf("unknown network %q", network)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		// A connection the client opened but has not used yet keeps
		// http.Server.Shutdown waiting up to 5s; Shutdown then cuts it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: client},
		&mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	f.session = cs
	return f
}

func (f *fixture) call(t *testing.T, ctx context.Context, tool string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := f.session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return res
}

// waitPending polls the queue, as an operator would, until n proposals wait.
func waitPending(t *testing.T, stateDir string, n int) []Proposal {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := Pending(stateDir)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if len(ps) == n {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d pending proposals, have %d", n, len(ps))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func structured[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	var out T
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return out
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

type callResult struct {
	res *mcp.CallToolResult
	err error
}

// callAsync calls a tool that blocks for the operator.
func (f *fixture) callAsync(ctx context.Context, tool string, args any) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		res, err := f.session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		ch <- callResult{res, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan callResult) *mcp.CallToolResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("call: %v", r.err)
		}
		return r.res
	case <-time.After(10 * time.Second):
		t.Fatal("tool call did not return")
	}
	return nil
}

func eventNames(evs []AuditEvent) []string {
	var names []string
	for _, ev := range evs {
		names = append(names, ev.Event)
	}
	return names
}

func TestToolsList(t *testing.T) {
	f := start(t, "tcp", nil)
	res, err := f.session.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	if len(tools) != 3 {
		t.Fatalf("tools = %v, want 3", slices.Collect(func(yield func(string) bool) {
			for n := range tools {
				yield(n)
			}
		}))
	}
	want := map[string][]string{
		"request_egress": {"host", "port", "reason"},
		"ask_operator":   {"question"},
		"current_policy": nil,
	}
	for name, required := range want {
		tool, ok := tools[name]
		if !ok {
			t.Fatalf("tool %s missing", name)
		}
		if tool.Description == "" {
			t.Errorf("%s: no description", name)
		}
		schema, ok := tool.InputSchema.(map[string]any)
		if !ok {
			t.Fatalf("%s: input schema is %T", name, tool.InputSchema)
		}
		if schema["type"] != "object" || schema["additionalProperties"] != false {
			t.Errorf("%s: schema %v is not a closed object", name, schema)
		}
		var got []string
		if r, ok := schema["required"].([]any); ok {
			for _, v := range r {
				got = append(got, v.(string))
			}
		}
		if !slices.Equal(got, required) {
			t.Errorf("%s: required = %v, want %v", name, got, required)
		}
		if tool.OutputSchema == nil {
			t.Errorf("%s: no output schema", name)
		}
	}
	port := tools["request_egress"].InputSchema.(map[string]any)["properties"].(map[string]any)["port"].(map[string]any)
	if port["type"] != "integer" || port["minimum"] != 1.0 || port["maximum"] != 65535.0 {
		t.Errorf("port schema = %v", port)
	}
}

func TestRequestEgressApproved(t *testing.T) {
	for _, c := range []struct{ network, protocol string }{
		{"tcp", ""}, {"unix", ""}, {"tcp", "2025-06-18"}, {"unix", "2025-03-26"},
	} {
		t.Run(c.network+"/"+c.protocol, func(t *testing.T) {
			f := startProtocol(t, c.network, c.protocol, nil)
			if c.protocol != "" {
				if got := f.session.InitializeResult().ProtocolVersion; got != c.protocol {
					t.Fatalf("negotiated %s, want %s", got, c.protocol)
				}
			}
			ch := f.callAsync(context.Background(), "request_egress",
				map[string]any{"host": "Registry.Example.ORG.", "port": 443, "reason": "npm install needs the registry"})

			p := waitPending(t, f.stateDir, 1)[0]
			if p.Kind != KindEgress || p.Host != "registry.example.org" || p.Port != 443 ||
				p.Reason != "npm install needs the registry" || p.Status != StatusPending || !ValidID(p.ID) {
				t.Fatalf("proposal = %+v", p)
			}
			if got := p.Expires.Sub(p.Created); got != time.Minute {
				t.Errorf("proposal lifetime = %v, want the 1m timeout", got)
			}
			fi, err := os.Stat(filepath.Join(f.stateDir, "queue", p.ID+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("proposal file mode = %v, want 0600", fi.Mode().Perm())
			}
			di, err := os.Stat(filepath.Join(f.stateDir, "queue"))
			if err != nil {
				t.Fatal(err)
			}
			if di.Mode().Perm() != 0o700 {
				t.Errorf("queue dir mode = %v, want 0700", di.Mode().Perm())
			}

			// `bottle approve` runs in another process; here another goroutine.
			answered := make(chan error, 1)
			go func() { answered <- Answer(f.stateDir, p.ID, true, "ok for this task") }()
			if err := <-answered; err != nil {
				t.Fatalf("Answer: %v", err)
			}

			res := receive(t, ch)
			out := structured[EgressResult](t, res)
			want := EgressResult{ID: p.ID, Status: StatusApproved, Host: "registry.example.org", Port: 443, Note: "ok for this task"}
			if out != want {
				t.Errorf("result = %+v, want %+v", out, want)
			}
			if !strings.Contains(text(res), "approved") || !strings.Contains(text(res), "ok for this task") {
				t.Errorf("text = %q", text(res))
			}
			wantRule := plan.Rule{Host: "registry.example.org", Ports: []int{443}, From: "supervise:" + p.ID}
			if rules := f.rules.Rules(); len(rules) != 1 || rules[0].Host != wantRule.Host ||
				!slices.Equal(rules[0].Ports, wantRule.Ports) || rules[0].From != wantRule.From || rules[0].AllowPrivate {
				t.Errorf("rules = %+v, want [%+v]", rules, wantRule)
			}
			stored, err := readProposal(f.stateDir, p.ID)
			if err != nil || stored.Status != StatusApproved {
				t.Errorf("stored proposal = %+v, %v; want status approved", stored, err)
			}
			if err := Answer(f.stateDir, p.ID, false, ""); !errors.Is(err, ErrAlreadyAnswered) {
				t.Errorf("second Answer = %v, want ErrAlreadyAnswered", err)
			}

			evs := f.audit.events(t)
			if got := eventNames(evs); !slices.Equal(got, []string{EventProposed, EventDecided, EventRuleAdded}) {
				t.Fatalf("audit events = %v", got)
			}
			for _, ev := range evs {
				if ev.ID != p.ID || ev.Sidecar != "supervise" || ev.Time.IsZero() || ev.Host != "registry.example.org" {
					t.Errorf("audit event %+v", ev)
				}
			}
			if evs[0].Reason != p.Reason || evs[0].Expires.IsZero() {
				t.Errorf("proposed event = %+v", evs[0])
			}
			if evs[1].Status != StatusApproved || evs[1].By != ByOperator || evs[1].Note != "ok for this task" {
				t.Errorf("decided event = %+v", evs[1])
			}
			if evs[2].Rule == nil || evs[2].Rule.From != "supervise:"+p.ID {
				t.Errorf("rule event = %+v", evs[2])
			}

			// Asking again is answered from the allow-list, with no proposal.
			again := structured[EgressResult](t, f.call(t, context.Background(), "request_egress",
				map[string]any{"host": "registry.example.org", "port": 443, "reason": "again"}))
			if again.Status != StatusAlreadyAllowed || again.ID != "" {
				t.Errorf("second request = %+v, want already_allowed", again)
			}
			if n := len(f.audit.events(t)); n != 3 {
				t.Errorf("already-allowed request wrote audit events: %d", n)
			}
		})
	}
}

func TestRequestEgressEdited(t *testing.T) {
	f := start(t, "tcp", nil)
	ch := f.callAsync(context.Background(), "request_egress",
		map[string]any{"host": "objects.githubusercontent.com", "port": 443, "reason": "release download"})
	p := waitPending(t, f.stateDir, 1)[0]
	if err := Answer(f.stateDir, p.ID, true, "widened", WithEdit("*.GitHubUserContent.com", 8443)); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	out := structured[EgressResult](t, receive(t, ch))
	if out.Status != StatusApproved || out.Host != "*.githubusercontent.com" || out.Port != 8443 {
		t.Errorf("result = %+v", out)
	}
	rules := f.rules.Rules()
	if len(rules) != 1 || rules[0].Host != "*.githubusercontent.com" || !slices.Equal(rules[0].Ports, []int{8443}) {
		t.Errorf("rules = %+v", rules)
	}
	evs := f.audit.events(t)
	if evs[1].EditedHost != "*.githubusercontent.com" || evs[1].EditedPort != 8443 || evs[1].Host != "objects.githubusercontent.com" {
		t.Errorf("decided event = %+v", evs[1])
	}
}

func TestRequestEgressDenied(t *testing.T) {
	f := start(t, "unix", nil)
	ch := f.callAsync(context.Background(), "request_egress",
		map[string]any{"host": "pastebin.com", "port": 443, "reason": "share logs"})
	p := waitPending(t, f.stateDir, 1)[0]
	if err := Answer(f.stateDir, p.ID, false, "no uploads"); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	out := structured[EgressResult](t, receive(t, ch))
	if out.Status != StatusDenied || out.Note != "no uploads" || out.ID != p.ID {
		t.Errorf("result = %+v", out)
	}
	if rules := f.rules.Rules(); len(rules) != 0 {
		t.Errorf("denied request added rules %+v", rules)
	}
	if got := eventNames(f.audit.events(t)); !slices.Equal(got, []string{EventProposed, EventDecided}) {
		t.Errorf("audit events = %v", got)
	}
	if ps, _ := Pending(f.stateDir); len(ps) != 0 {
		t.Errorf("still pending: %+v", ps)
	}
}

func TestRequestEgressTimeout(t *testing.T) {
	f := start(t, "tcp", func(c *Config) { c.Timeout = 200 * time.Millisecond })
	startT := time.Now()
	res := f.call(t, context.Background(), "request_egress",
		map[string]any{"host": "example.com", "port": 80, "reason": "docs"})
	out := structured[EgressResult](t, res)
	if out.Status != StatusTimedOut {
		t.Fatalf("result = %+v, want timed_out", out)
	}
	if el := time.Since(startT); el < 200*time.Millisecond {
		t.Errorf("returned after %v, before the timeout", el)
	}
	d, ok, err := readDecision(f.stateDir, out.ID)
	if err != nil || !ok || d.Status != StatusTimedOut || d.By != BySupervise {
		t.Errorf("decision = %+v, %v, %v", d, ok, err)
	}
	if err := Answer(f.stateDir, out.ID, true, "too late"); !errors.Is(err, ErrAlreadyAnswered) {
		t.Errorf("late Answer = %v, want ErrAlreadyAnswered", err)
	}
	if len(f.rules.Rules()) != 0 {
		t.Error("timed-out request added a rule")
	}
	evs := f.audit.events(t)
	if len(evs) != 2 || evs[1].Status != StatusTimedOut || evs[1].By != BySupervise {
		t.Errorf("audit = %+v", evs)
	}
}

func TestAskOperator(t *testing.T) {
	f := start(t, "unix", nil)
	ch := f.callAsync(context.Background(), "ask_operator", map[string]any{"question": "Which branch should I push to?"})
	p := waitPending(t, f.stateDir, 1)[0]
	if p.Kind != KindQuestion || p.Question != "Which branch should I push to?" || p.Host != "" {
		t.Fatalf("proposal = %+v", p)
	}
	if err := Answer(f.stateDir, p.ID, true, "feature/login"); err != nil {
		t.Fatal(err)
	}
	res := receive(t, ch)
	out := structured[QuestionResult](t, res)
	if out != (QuestionResult{ID: p.ID, Status: "answered", Answer: "feature/login"}) {
		t.Errorf("result = %+v", out)
	}
	if !strings.Contains(text(res), "feature/login") {
		t.Errorf("text = %q", text(res))
	}
	if len(f.rules.Rules()) != 0 {
		t.Error("a question added a rule")
	}

	ch = f.callAsync(context.Background(), "ask_operator", map[string]any{"question": "May I delete the cache?"})
	p = waitPending(t, f.stateDir, 1)[0]
	if err := Answer(f.stateDir, p.ID, false, "keep it"); err != nil {
		t.Fatal(err)
	}
	if out := structured[QuestionResult](t, receive(t, ch)); out.Status != "declined" || out.Answer != "keep it" {
		t.Errorf("declined result = %+v", out)
	}
}

func TestMalformedArguments(t *testing.T) {
	f := start(t, "tcp", nil)
	long := strings.Repeat("x", MaxReasonChars+1)
	cases := []struct {
		name string
		tool string
		args any
	}{
		{"missing host", "request_egress", map[string]any{"port": 443, "reason": "r"}},
		{"missing port", "request_egress", map[string]any{"host": "example.com", "reason": "r"}},
		{"missing reason", "request_egress", map[string]any{"host": "example.com", "port": 443}},
		{"port 0", "request_egress", map[string]any{"host": "example.com", "port": 0, "reason": "r"}},
		{"port 70000", "request_egress", map[string]any{"host": "example.com", "port": 70000, "reason": "r"}},
		{"port -1", "request_egress", map[string]any{"host": "example.com", "port": -1, "reason": "r"}},
		{"port fraction", "request_egress", map[string]any{"host": "example.com", "port": 443.5, "reason": "r"}},
		{"port string", "request_egress", map[string]any{"host": "example.com", "port": "443", "reason": "r"}},
		{"host number", "request_egress", map[string]any{"host": 5, "port": 443, "reason": "r"}},
		{"host null", "request_egress", map[string]any{"host": nil, "port": 443, "reason": "r"}},
		{"host ip", "request_egress", map[string]any{"host": "1.2.3.4", "port": 443, "reason": "r"}},
		{"host ipv6", "request_egress", map[string]any{"host": "[::1]", "port": 443, "reason": "r"}},
		{"host wildcard", "request_egress", map[string]any{"host": "*.example.com", "port": 443, "reason": "r"}},
		{"host with port", "request_egress", map[string]any{"host": "example.com:443", "port": 443, "reason": "r"}},
		{"host single label", "request_egress", map[string]any{"host": "localhost", "port": 443, "reason": "r"}},
		{"empty reason", "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": "  "}},
		{"long reason", "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": long}},
		{"extra argument", "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": "r", "allow_private": true}},
		{"arguments array", "request_egress", []any{"example.com", 443}},
		{"question missing", "ask_operator", map[string]any{}},
		{"question number", "ask_operator", map[string]any{"question": 1}},
		{"question empty", "ask_operator", map[string]any{"question": ""}},
		{"policy extra", "current_policy", map[string]any{"x": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := f.session.CallTool(context.Background(), &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
			if err != nil {
				t.Fatalf("protocol error instead of a tool error: %v", err)
			}
			if !res.IsError {
				t.Fatalf("no error; result %s", text(res))
			}
			if text(res) == "" {
				t.Error("error result without a message")
			}
		})
	}
	if ps, err := Pending(f.stateDir); err != nil || len(ps) != 0 {
		t.Errorf("malformed requests left proposals: %+v, %v", ps, err)
	}
	if evs := f.audit.events(t); len(evs) != 0 {
		t.Errorf("malformed requests were audited as proposals: %+v", evs)
	}
	// Still serving.
	out := structured[PolicyResult](t, f.call(t, context.Background(), "current_policy", map[string]any{}))
	if out.Rules == nil || len(out.Rules) != 0 {
		t.Errorf("policy = %+v", out)
	}
}

func TestMalformedIsToolError(t *testing.T) {
	// The cases the issue names must come back as tool errors (IsError),
	// which the agent sees and can correct, not as protocol failures.
	f := start(t, "tcp", nil)
	for _, args := range []map[string]any{
		{"port": 443, "reason": "r"},
		{"host": "example.com", "port": 0, "reason": "r"},
		{"host": "example.com", "port": 70000, "reason": "r"},
		{"host": "1.2.3.4", "port": 443, "reason": "r"},
		{"host": "example.com", "port": "443", "reason": "r"},
	} {
		res := f.call(t, context.Background(), "request_egress", args)
		if !res.IsError {
			t.Errorf("%v: not a tool error: %s", args, text(res))
		}
	}
	res := f.call(t, context.Background(), "request_egress", map[string]any{"host": "1.2.3.4", "port": 443, "reason": "r"})
	if !strings.Contains(text(res), "IP") {
		t.Errorf("IP refusal does not say why: %q", text(res))
	}
}

func TestCurrentPolicy(t *testing.T) {
	f := start(t, "tcp", nil)
	f.rules.set([]plan.Rule{
		{Host: "registry.example.org", Ports: []int{443}, From: "//bottle.star:3:6"},
		{Host: "api.anthropic.com", Ports: []int{443}, From: "//base.star:1:1"},
		{Host: "db.internal.example", Ports: []int{5432}, AllowPrivate: true, From: "//bottle.star:4:6"},
	}, nil)
	out := structured[PolicyResult](t, f.call(t, context.Background(), "current_policy", nil))
	want := []PolicyRule{
		{Host: "api.anthropic.com", Ports: []int{443}, From: "//base.star:1:1"},
		{Host: "db.internal.example", Ports: []int{5432}, AllowPrivate: true, From: "//bottle.star:4:6"},
		{Host: "registry.example.org", Ports: []int{443}, From: "//bottle.star:3:6"},
	}
	if len(out.Rules) != len(want) {
		t.Fatalf("rules = %+v", out.Rules)
	}
	for i := range want {
		g, w := out.Rules[i], want[i]
		if g.Host != w.Host || !slices.Equal(g.Ports, w.Ports) || g.AllowPrivate != w.AllowPrivate || g.From != w.From {
			t.Errorf("rule %d = %+v, want %+v", i, g, w)
		}
	}
	// A wildcard rule covers a subdomain request without asking.
	f.rules.set([]plan.Rule{{Host: "*.example.com", Ports: []int{443}}}, nil)
	if out := structured[EgressResult](t, f.call(t, context.Background(), "request_egress",
		map[string]any{"host": "a.example.com", "port": 443, "reason": "r"})); out.Status != StatusAlreadyAllowed {
		t.Errorf("covered request = %+v", out)
	}
}

func TestRuleAdderFails(t *testing.T) {
	f := start(t, "tcp", nil)
	f.rules.set(nil, errors.New("proxy is reloading"))
	ch := f.callAsync(context.Background(), "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": "r"})
	p := waitPending(t, f.stateDir, 1)[0]
	if err := Answer(f.stateDir, p.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	res := receive(t, ch)
	if !res.IsError || !strings.Contains(text(res), "proxy is reloading") {
		t.Errorf("result = %v %q, want a tool error naming the cause", res.IsError, text(res))
	}
	evs := f.audit.events(t)
	if got := eventNames(evs); !slices.Equal(got, []string{EventProposed, EventDecided, EventRuleFailed}) {
		t.Fatalf("audit = %v", got)
	}
	if evs[2].Error == "" || evs[2].Rule == nil {
		t.Errorf("rule_failed event = %+v", evs[2])
	}
}

func TestCancelledRequest(t *testing.T) {
	f := start(t, "tcp", nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := f.callAsync(ctx, "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": "r"})
	p := waitPending(t, f.stateDir, 1)[0]
	cancel()
	if r := <-ch; r.err == nil {
		t.Errorf("cancelled call returned %v", text(r.res))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, ok, err := readDecision(f.stateDir, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if d.Status != StatusCancelled || d.By != BySupervise {
				t.Errorf("decision = %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cancellation never recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := Answer(f.stateDir, p.ID, true, ""); !errors.Is(err, ErrAlreadyAnswered) {
		t.Errorf("Answer after cancel = %v", err)
	}
}

func TestMaxPending(t *testing.T) {
	f := start(t, "tcp", func(c *Config) { c.MaxPending = 1 })
	ch := f.callAsync(context.Background(), "ask_operator", map[string]any{"question": "first?"})
	p := waitPending(t, f.stateDir, 1)[0]
	res := f.call(t, context.Background(), "ask_operator", map[string]any{"question": "second?"})
	if !res.IsError || !strings.Contains(text(res), "already waiting") {
		t.Errorf("second request = %v %q", res.IsError, text(res))
	}
	if err := Answer(f.stateDir, p.ID, true, "yes"); err != nil {
		t.Fatal(err)
	}
	receive(t, ch)
	// The slot is free again.
	ch = f.callAsync(context.Background(), "ask_operator", map[string]any{"question": "third?"})
	p = waitPending(t, f.stateDir, 1)[0]
	if err := Answer(f.stateDir, p.ID, true, "yes"); err != nil {
		t.Fatal(err)
	}
	receive(t, ch)
}

func TestShutdownCancelsWaiting(t *testing.T) {
	f := start(t, "tcp", nil)
	ch := f.callAsync(context.Background(), "ask_operator", map[string]any{"question": "still there?"})
	p := waitPending(t, f.stateDir, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-ch // the call ends one way or the other
	d, ok, err := readDecision(f.stateDir, p.ID)
	if err != nil || !ok || d.Status != StatusCancelled {
		t.Errorf("decision = %+v, %v, %v", d, ok, err)
	}
}

func TestProgressNotifications(t *testing.T) {
	f := start(t, "tcp", func(c *Config) { c.ProgressInterval = 20 * time.Millisecond })
	got := make(chan *mcp.ProgressNotificationParams, 16)
	c := mcp.NewClient(&mcp.Implementation{Name: "progress", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			select {
			case got <- req.Params:
			default:
			}
		},
	})
	// Reuse the fixture's server through a second TCP listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	go f.srv.Serve(l)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: "http://" + addr + Path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "ask_operator", Arguments: map[string]any{"question": "progress?"}}
	params.SetProgressToken("tok-1")
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(context.Background(), params)
		done <- err
	}()
	p := waitPending(t, f.stateDir, 1)[0]
	select {
	case n := <-got:
		if n.ProgressToken != "tok-1" || !strings.Contains(n.Message, p.ID) || n.Total != 60 {
			t.Errorf("progress = %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress notification")
	}
	if err := Answer(f.stateDir, p.ID, true, "fine"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAuditFailureRefusesRequest(t *testing.T) {
	dir := t.TempDir()
	audit, err := OpenAudit(dir)
	if err != nil {
		t.Fatal(err)
	}
	audit.Close() // every write now fails
	f := start(t, "tcp", func(c *Config) { c.Audit = audit })
	res := f.call(t, context.Background(), "request_egress", map[string]any{"host": "example.com", "port": 443, "reason": "r"})
	if !res.IsError || !strings.Contains(text(res), "audit") {
		t.Errorf("result = %v %q, want an audit error", res.IsError, text(res))
	}
	if ps, _ := Pending(f.stateDir); len(ps) != 0 {
		t.Errorf("unaudited proposal is answerable: %+v", ps)
	}
}

func TestNotFoundOutsideMCPPath(t *testing.T) {
	f := start(t, "tcp", nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(l)
	resp, err := http.Get("http://" + l.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d", resp.StatusCode)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	rl := &ruleList{}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no state dir":  {Rules: rl, Adder: rl, Audit: &syncBuffer{}},
		"no rules":      {StateDir: dir, Adder: rl, Audit: &syncBuffer{}},
		"no adder":      {StateDir: dir, Rules: rl, Audit: &syncBuffer{}},
		"no audit":      {StateDir: dir, Rules: rl, Adder: rl},
		"negative":      {StateDir: dir, Rules: rl, Adder: rl, Audit: &syncBuffer{}, Timeout: -1},
		"missing dir":   {StateDir: filepath.Join(dir, "nope"), Rules: rl, Adder: rl, Audit: &syncBuffer{}},
		"file as state": {StateDir: file, Rules: rl, Adder: rl, Audit: &syncBuffer{}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultTimeout, "90s": 90 * time.Second, "1h": time.Hour} {
		if got, err := ParseTimeout(in); err != nil || got != want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0s", "-5m", "10", "soon"} {
		if _, err := ParseTimeout(in); err == nil {
			t.Errorf("ParseTimeout(%q) accepted", in)
		}
	}
}

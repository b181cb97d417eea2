// Package supervise is bottle's supervision channel: an MCP server through
// which a blocked agent asks the human operator for more, and the queue the
// operator answers from.
//
// Every request becomes a proposal file in the bottle's queue directory
// (<state dir>/queue/<id>.json). The tool call blocks until a decision file
// (<id>.answer.json) appears: written by the operator through Answer (the
// `bottle approve`/`bottle deny` commands and the terminal UI call it), or
// by the server itself when the request times out or is cancelled. An
// approved egress request becomes a rule of the running egress proxy at once
// (RuleAdder). Proposals, decisions and rule changes are appended to the
// bottle's audit log as JSON lines.
package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bottle-dev/bottle/plan"
)

// RuleSource gives the egress proxy's current allow-list.
type RuleSource interface {
	Rules() []plan.Rule
}

// RuleAdder adds a rule to the running egress proxy; the rule takes effect
// for new connections at once.
type RuleAdder interface {
	AddRule(plan.Rule) error
}

// Defaults for the zero values of Config.
const (
	DefaultTimeout          = 10 * time.Minute
	DefaultPollInterval     = 250 * time.Millisecond
	DefaultProgressInterval = 15 * time.Second
	DefaultMaxPending       = 8
)

// sessionIdleTimeout closes MCP sessions nobody has used for this long.
const sessionIdleTimeout = 24 * time.Hour

// Path is where Handler serves the MCP endpoint.
const Path = "/mcp"

// Config configures a Server.
type Config struct {
	// StateDir is the bottle's state directory; the queue lives in
	// StateDir/queue (created 0700).
	StateDir string
	// Timeout is how long a request waits for the operator; 0 means
	// DefaultTimeout. See ParseTimeout for plan.SuperviseConfig.Timeout.
	Timeout time.Duration
	// Rules is the egress proxy's allow-list, for current_policy and to
	// answer requests for hosts already allowed without asking anyone.
	Rules RuleSource
	// Adder receives the rules the operator approves.
	Adder RuleAdder
	// Audit receives one JSON line per AuditEvent. Each event is a single
	// Write call. Required: a failed audit write fails the request.
	Audit io.Writer
	// PollInterval is how often a waiting request looks for an answer
	// file; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// ProgressInterval is how often a waiting request sends an MCP
	// progress notification (when the client asked for progress), which
	// keeps clients with an idle timeout from giving up; 0 means
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// MaxPending bounds how many requests may wait for the operator at
	// once; 0 means DefaultMaxPending.
	MaxPending int
	// Logger receives the MCP transport's logs; nil discards them.
	Logger *slog.Logger
}

// ParseTimeout parses plan.SuperviseConfig.Timeout: a positive Go duration
// such as "10m", or "" for DefaultTimeout.
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("supervise timeout %q: %w (use a Go duration such as \"10m\")", s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("supervise timeout %q must be positive", s)
	}
	return d, nil
}

// Server is the supervise MCP server of one bottle.
type Server struct {
	cfg     Config
	mcp     *mcp.Server
	handler http.Handler
	http    *http.Server

	closing   chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex // guards waiting
	waiting int

	auditMu sync.Mutex // serialises audit writes
}

// New checks cfg, creates the queue directory and returns a server ready to
// Serve.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.StateDir == "":
		return nil, errors.New("supervise: no state directory")
	case cfg.Rules == nil:
		return nil, errors.New("supervise: no rule source")
	case cfg.Adder == nil:
		return nil, errors.New("supervise: no rule adder")
	case cfg.Audit == nil:
		return nil, errors.New("supervise: no audit log")
	case cfg.Timeout < 0 || cfg.PollInterval < 0 || cfg.ProgressInterval < 0 || cfg.MaxPending < 0:
		return nil, errors.New("supervise: negative timeout, interval or limit")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	fi, err := os.Stat(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("supervise: state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("supervise: state directory %q is not a directory", cfg.StateDir)
	}
	if err := ensureQueue(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("supervise: %w", err)
	}

	s := &Server{cfg: cfg, closing: make(chan struct{})}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "bottle-supervise", Version: "1"}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       cfg.Logger,
	})
	s.addTools()
	mux := http.NewServeMux()
	mux.Handle(Path, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		Logger:         cfg.Logger,
		SessionTimeout: sessionIdleTimeout,
	}))
	s.handler = mux
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Handler returns the server's HTTP handler: streamable-HTTP MCP at Path,
// 404 elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves MCP on l until Shutdown; it may be called for several
// listeners (a TCP address and a unix socket). It returns nil after
// Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("supervise: serve on %s: %w", l.Addr(), err)
	}
	return nil
}

// Shutdown ends every waiting request (each is recorded as cancelled
// unless the operator answered first), stops accepting connections and
// waits for open ones until ctx ends, then closes them. It returns nil
// when already shut down.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	// Open sessions hold streams that never go idle; end them so that
	// Shutdown does not have to wait for ctx.
	for ss := range s.mcp.Sessions() {
		_ = ss.Close() // the session is going away either way
	}
	if err := s.http.Shutdown(ctx); err != nil {
		// Streams a client keeps open never go idle: cut them.
		if cerr := s.http.Close(); cerr != nil {
			return fmt.Errorf("supervise: close: %w", cerr)
		}
	}
	return nil
}

// instructions tells the agent what the server is for.
const instructions = `This server connects you to the human operator of your sandbox. ` +
	`Network access goes through an egress proxy that only allows listed hosts and ports. ` +
	`When a connection is refused by the proxy and your task really needs that host, call request_egress; ` +
	`call current_policy first to see what is already allowed. ` +
	`Use ask_operator when you are blocked and need a human decision or information. ` +
	`Both block until the operator answers or the request times out.`

// EgressResult is the result of request_egress.
type EgressResult struct {
	// ID is the proposal ID; empty for StatusAlreadyAllowed.
	ID string `json:"id,omitempty"`
	// Status is approved, denied, timed_out, cancelled or already_allowed.
	Status Status `json:"status"`
	// Host and Port are what is allowed now when approved (the operator
	// may have edited them), else what was requested.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Note is the operator's note.
	Note string `json:"note,omitempty"`
}

// StatusAlreadyAllowed is the request_egress result for a host and port the
// allow-list already covers; no proposal is made.
const StatusAlreadyAllowed Status = "already_allowed"

// QuestionResult is the result of ask_operator.
type QuestionResult struct {
	ID string `json:"id"`
	// Status is answered, declined, timed_out or cancelled.
	Status string `json:"status"`
	// Answer is the operator's answer (their note).
	Answer string `json:"answer,omitempty"`
}

// PolicyResult is the result of current_policy.
type PolicyResult struct {
	Rules []PolicyRule `json:"rules"`
}

// PolicyRule is one allow-list entry as the agent sees it.
type PolicyRule struct {
	Host  string `json:"host"`
	Ports []int  `json:"ports"`
	// AllowPrivate: the host may resolve to private addresses.
	AllowPrivate bool `json:"allow_private,omitempty"`
	// From is where the rule came from: a profile position or
	// "supervise:<proposal id>".
	From string `json:"from"`
}

type egressArgs struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Reason string `json:"reason"`
}

type questionArgs struct {
	Question string `json:"question"`
}

type policyArgs struct{}

var egressSchema = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "host": {"type": "string", "minLength": 1, "maxLength": 253,
      "description": "DNS name the sandbox needs to reach, such as \"registry.example.org\". Not an IP address, not a wildcard."},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535,
      "description": "TCP port, usually 443."},
    "reason": {"type": "string", "minLength": 1, "maxLength": %d,
      "description": "Why the task needs this host, for the operator who decides."}
  },
  "required": ["host", "port", "reason"],
  "additionalProperties": false
}`, MaxReasonChars))

var questionSchema = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "question": {"type": "string", "minLength": 1, "maxLength": %d,
      "description": "The question for the operator, with the context they need to answer it."}
  },
  "required": ["question"],
  "additionalProperties": false
}`, MaxQuestionChars))

var policySchema = json.RawMessage(`{"type": "object", "properties": {}, "additionalProperties": false}`)

func (s *Server) addTools() {
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:  "request_egress",
		Title: "Request network access",
		Description: "Ask the operator to allow the sandbox to reach host:port through the egress proxy. " +
			"Blocks until the operator approves or denies, or the request times out. " +
			"On approval the proxy allows the host at once: retry the failed request. " +
			"On denial, do not ask again for the same host.",
		InputSchema: egressSchema,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(false)},
	}, s.requestEgress)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:  "ask_operator",
		Title: "Ask the operator",
		Description: "Ask the human operator a question when you are blocked and need a decision or information. " +
			"Blocks until they answer or the request times out.",
		InputSchema: questionSchema,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(false)},
	}, s.askOperator)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:        "current_policy",
		Title:       "Current egress allow-list",
		Description: "List the hosts and ports the egress proxy allows now.",
		InputSchema: policySchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, s.currentPolicy)
}

func textResult(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

func withNote(text, note string) string {
	if note == "" {
		return text
	}
	return text + "\nOperator's note: " + note
}

func (s *Server) requestEgress(ctx context.Context, req *mcp.CallToolRequest, in egressArgs) (*mcp.CallToolResult, EgressResult, error) {
	var zero EgressResult
	host, err := plan.NormalizeHost(in.Host)
	if err != nil {
		return nil, zero, fmt.Errorf("request_egress: %w", err)
	}
	if strings.HasPrefix(host, "*.") {
		return nil, zero, fmt.Errorf("request_egress: %q is a wildcard; ask for the one host name you need (the operator may widen it)", in.Host)
	}
	if err := checkPort(in.Port); err != nil {
		return nil, zero, fmt.Errorf("request_egress: %w", err)
	}
	if err := checkReason("reason", in.Reason, MaxReasonChars); err != nil {
		return nil, zero, fmt.Errorf("request_egress: %w", err)
	}
	if covered(s.cfg.Rules.Rules(), host, in.Port) {
		res := EgressResult{Status: StatusAlreadyAllowed, Host: host, Port: in.Port}
		return textResult("%s:%d is already on the allow-list, so no request was made. "+
			"If connections still fail, the proxy may have refused the address the name resolves to, "+
			"or the service is down; use ask_operator if you need help.", host, in.Port), res, nil
	}

	p, d, err := s.ask(ctx, req, Proposal{Kind: KindEgress, Host: host, Port: in.Port, Reason: in.Reason})
	if err != nil {
		return nil, zero, fmt.Errorf("request_egress: %w", err)
	}
	res := EgressResult{ID: p.ID, Status: d.Status, Host: host, Port: in.Port, Note: d.Note}
	switch d.Status {
	case StatusApproved:
		rule, err := s.approve(p, d)
		if err != nil {
			return nil, zero, fmt.Errorf("request_egress: the operator approved proposal %s, but %w", p.ID, err)
		}
		res.Host, res.Port = rule.Host, rule.Ports[0]
		text := fmt.Sprintf("The operator approved %s:%d (proposal %s). The egress proxy allows it now; retry the request.", res.Host, res.Port, p.ID)
		if res.Host != host || res.Port != in.Port {
			text = fmt.Sprintf("The operator approved %s:%d instead of %s:%d (proposal %s). The egress proxy allows it now.", res.Host, res.Port, host, in.Port, p.ID)
		}
		return textResult("%s", withNote(text, d.Note)), res, nil
	case StatusDenied:
		return textResult("%s", withNote(fmt.Sprintf("The operator denied %s:%d (proposal %s). Do not ask for it again; find another way or ask_operator.", host, in.Port, p.ID), d.Note)), res, nil
	case StatusTimedOut:
		return textResult("No answer from the operator within %s (proposal %s); %s:%d was not allowed.", s.cfg.Timeout, p.ID, host, in.Port), res, nil
	default:
		return textResult("The request for %s:%d was cancelled before the operator answered (proposal %s).", host, in.Port, p.ID), res, nil
	}
}

// approve adds the rule the decision d on p allows and audits it.
func (s *Server) approve(p Proposal, d Decision) (plan.Rule, error) {
	host, port := p.Host, p.Port
	if d.Host != "" {
		h, err := plan.NormalizeHost(d.Host)
		if err != nil {
			err = fmt.Errorf("the edited host is invalid: %w", err)
			return plan.Rule{}, errors.Join(err, s.auditRule(p, plan.Rule{}, err))
		}
		host = h
	}
	if d.Port != 0 {
		if err := checkPort(d.Port); err != nil {
			err = fmt.Errorf("the edited port is invalid: %w", err)
			return plan.Rule{}, errors.Join(err, s.auditRule(p, plan.Rule{}, err))
		}
		port = d.Port
	}
	rule := plan.Rule{Host: host, Ports: []int{port}, From: "supervise:" + p.ID}
	if err := s.cfg.Adder.AddRule(rule); err != nil {
		err = fmt.Errorf("the egress proxy refused the rule: %w", err)
		return plan.Rule{}, errors.Join(err, s.auditRule(p, rule, err))
	}
	if err := s.auditRule(p, rule, nil); err != nil {
		return plan.Rule{}, fmt.Errorf("the rule was added and could not be audited: %w", err)
	}
	return rule, nil
}

func (s *Server) askOperator(ctx context.Context, req *mcp.CallToolRequest, in questionArgs) (*mcp.CallToolResult, QuestionResult, error) {
	var zero QuestionResult
	if err := checkReason("question", in.Question, MaxQuestionChars); err != nil {
		return nil, zero, fmt.Errorf("ask_operator: %w", err)
	}
	p, d, err := s.ask(ctx, req, Proposal{Kind: KindQuestion, Question: in.Question})
	if err != nil {
		return nil, zero, fmt.Errorf("ask_operator: %w", err)
	}
	res := QuestionResult{ID: p.ID, Answer: d.Note}
	switch d.Status {
	case StatusApproved:
		res.Status = "answered"
		return textResult("The operator answered (proposal %s):\n%s", p.ID, d.Note), res, nil
	case StatusDenied:
		res.Status = "declined"
		return textResult("%s", withNote(fmt.Sprintf("The operator declined to answer (proposal %s).", p.ID), d.Note)), res, nil
	case StatusTimedOut:
		res.Status = string(StatusTimedOut)
		return textResult("No answer from the operator within %s (proposal %s).", s.cfg.Timeout, p.ID), res, nil
	default:
		res.Status = string(StatusCancelled)
		return textResult("The question was cancelled before the operator answered (proposal %s).", p.ID), res, nil
	}
}

func (s *Server) currentPolicy(context.Context, *mcp.CallToolRequest, policyArgs) (*mcp.CallToolResult, PolicyResult, error) {
	rules := s.cfg.Rules.Rules()
	res := PolicyResult{Rules: make([]PolicyRule, 0, len(rules))}
	for _, r := range rules {
		res.Rules = append(res.Rules, PolicyRule{Host: r.Host, Ports: append([]int{}, r.Ports...), AllowPrivate: r.AllowPrivate, From: r.From})
	}
	slices.SortStableFunc(res.Rules, func(a, b PolicyRule) int { return strings.Compare(a.Host, b.Host) })
	var b strings.Builder
	fmt.Fprintf(&b, "The egress proxy allows %d rule(s):", len(res.Rules))
	for _, r := range res.Rules {
		fmt.Fprintf(&b, "\n%s ports %v", r.Host, r.Ports)
	}
	return textResult("%s", b.String()), res, nil
}

// covered reports whether rules already allow host on port.
func covered(rules []plan.Rule, host string, port int) bool {
	for _, r := range rules {
		if plan.MatchHost(r.Host, host) && slices.Contains(r.Ports, port) {
			return true
		}
	}
	return false
}

// checkReason is checkText for text that must say something.
func checkReason(what, s string, max int) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s is empty", what)
	}
	return checkText(what, s, max)
}

// ask files p as a new proposal, waits for its decision, records the
// outcome in the proposal file and the audit log, and returns both.
func (s *Server) ask(ctx context.Context, req *mcp.CallToolRequest, p Proposal) (Proposal, Decision, error) {
	release, err := s.reserve()
	if err != nil {
		return p, Decision{}, err
	}
	defer release()

	id, err := newID()
	if err != nil {
		return p, Decision{}, err
	}
	now := time.Now().UTC()
	p.ID, p.Created, p.Expires, p.Status = id, now, now.Add(s.cfg.Timeout), StatusPending
	if err := writeProposal(s.cfg.StateDir, p); err != nil {
		return p, Decision{}, err
	}
	ev := AuditEvent{Event: EventProposed, ID: p.ID, Kind: p.Kind, Host: p.Host, Port: p.Port,
		Reason: p.Reason, Question: p.Question, Status: StatusPending, Expires: p.Expires}
	if err := s.audit(ev); err != nil {
		// Unaudited requests must not be answerable.
		_, serr := s.settle(p.ID, StatusCancelled)
		return p, Decision{}, errors.Join(err, serr)
	}

	d, err := s.wait(ctx, req, p)
	if err != nil {
		return p, d, err
	}
	p.Status = d.Status
	werr := writeProposal(s.cfg.StateDir, p)
	ev = AuditEvent{Event: EventDecided, ID: p.ID, Kind: p.Kind, Host: p.Host, Port: p.Port,
		Status: d.Status, By: d.By, Note: d.Note, EditedHost: d.Host, EditedPort: d.Port}
	if werr != nil {
		ev.Error = werr.Error()
	}
	if err := s.audit(ev); err != nil {
		return p, d, err
	}
	pruneDecided(s.cfg.StateDir)
	return p, d, nil
}

// reserve takes one of the MaxPending waiting slots.
func (s *Server) reserve() (release func(), err error) {
	select {
	case <-s.closing:
		return nil, errors.New("the supervise server is shutting down")
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting >= s.cfg.MaxPending {
		return nil, fmt.Errorf("%d requests are already waiting for the operator; wait for their answers first", s.waiting)
	}
	s.waiting++
	return func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}, nil
}

// wait polls for the decision on p until it appears, p expires, the
// request is cancelled or the server shuts down; in the last three cases
// it records its own decision unless the operator's got there first.
func (s *Server) wait(ctx context.Context, req *mcp.CallToolRequest, p Proposal) (Decision, error) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	expire := time.NewTimer(time.Until(p.Expires))
	defer expire.Stop()
	var progress <-chan time.Time
	token := req.Params.GetProgressToken()
	if token != nil {
		t := time.NewTicker(s.cfg.ProgressInterval)
		defer t.Stop()
		progress = t.C
	}
	for {
		d, ok, err := readDecision(s.cfg.StateDir, p.ID)
		if err != nil || ok {
			return d, err
		}
		select {
		case <-poll.C:
		case now := <-progress:
			// Progress is advisory: a client that stopped listening
			// still gets the result, or cancels the request.
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token,
				Message:       "waiting for the operator to answer proposal " + p.ID,
				Progress:      now.Sub(p.Created).Seconds(),
				Total:         p.Expires.Sub(p.Created).Seconds(),
			})
		case <-expire.C:
			return s.settle(p.ID, StatusTimedOut)
		case <-ctx.Done():
			return s.settle(p.ID, StatusCancelled)
		case <-s.closing:
			return s.settle(p.ID, StatusCancelled)
		}
	}
}

// settle records the server's own decision on id, or returns the
// operator's if it was written first.
func (s *Server) settle(id string, status Status) (Decision, error) {
	d := Decision{ID: id, Status: status, By: BySupervise, Time: time.Now().UTC()}
	err := linkDecision(s.cfg.StateDir, d)
	if err == nil {
		return d, nil
	}
	if errors.Is(err, ErrAlreadyAnswered) {
		prev, ok, rerr := readDecision(s.cfg.StateDir, id)
		if rerr != nil {
			return prev, rerr
		}
		if ok {
			return prev, nil
		}
	}
	return d, err
}

package supervise

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// AuditFile is the name of the bottle's audit log in its state directory.
const AuditFile = "audit.jsonl"

// Audit events.
const (
	// EventProposed: the agent made a request; it is in the queue.
	EventProposed = "proposed"
	// EventDecided: the request was approved, denied, timed out or cancelled.
	EventDecided = "decided"
	// EventRuleAdded: an approved egress rule is now in the proxy.
	EventRuleAdded = "rule_added"
	// EventRuleFailed: an approved egress rule could not be added.
	EventRuleFailed = "rule_failed"
)

// AuditEvent is one line of the audit log.
type AuditEvent struct {
	Time time.Time `json:"time"`
	// Sidecar is always "supervise", so the log can be shared.
	Sidecar string `json:"sidecar"`
	Event   string `json:"event"`
	// ID is the proposal ID.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Host and Port are what the agent asked for.
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Question string `json:"question,omitempty"`
	// Expires is set on EventProposed.
	Expires time.Time `json:"expires,omitzero"`
	// Status, By and Note are the decision (EventDecided).
	Status Status `json:"status,omitempty"`
	By     string `json:"by,omitempty"`
	Note   string `json:"note,omitempty"`
	// EditedHost and EditedPort are the operator's edits, when any.
	EditedHost string `json:"edited_host,omitempty"`
	EditedPort int    `json:"edited_port,omitempty"`
	// Rule is the rule added to (or refused by) the egress proxy.
	Rule *plan.Rule `json:"rule,omitempty"`
	// Error says what went wrong, when something did.
	Error string `json:"error,omitempty"`
}

// OpenAudit opens (creating it 0600 if needed) the audit log in stateDir
// for appending.
func OpenAudit(stateDir string) (*os.File, error) {
	path := filepath.Join(stateDir, AuditFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return f, nil
}

// audit writes ev as one JSON line.
func (s *Server) audit(ev AuditEvent) error {
	ev.Time = time.Now().UTC()
	ev.Sidecar = "supervise"
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if _, err := s.cfg.Audit.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// auditRule records that rule was added for p, or refused with cause.
func (s *Server) auditRule(p Proposal, rule plan.Rule, cause error) error {
	ev := AuditEvent{Event: EventRuleAdded, ID: p.ID, Kind: p.Kind, Host: p.Host, Port: p.Port}
	if rule.Host != "" {
		ev.Rule = &rule
	}
	if cause != nil {
		ev.Event = EventRuleFailed
		ev.Error = cause.Error()
	}
	return s.audit(ev)
}

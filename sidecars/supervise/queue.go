package supervise

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bottle-dev/bottle/plan"
)

// QueueDir is the name of the queue directory inside a bottle's state
// directory. It holds one <id>.json proposal file per request and, once the
// request is decided, one <id>.answer.json decision file.
const QueueDir = "queue"

// Kind says what a proposal asks for.
type Kind string

// Proposal kinds.
const (
	// KindEgress asks to allow Host:Port through the egress proxy.
	KindEgress Kind = "egress"
	// KindQuestion asks the operator a free-form question.
	KindQuestion Kind = "question"
)

// Status is where a proposal stands. A decision file holds one of the final
// statuses; a proposal file holds StatusPending until its server has seen
// the decision, then the decision's status.
type Status string

// Proposal and decision statuses.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusDenied   Status = "denied"
	// StatusTimedOut: nobody answered before the proposal expired.
	StatusTimedOut Status = "timed_out"
	// StatusCancelled: the agent gave up (its request was cancelled) or the
	// supervise server shut down before an answer came.
	StatusCancelled Status = "cancelled"
)

// Who wrote a decision.
const (
	ByOperator  = "operator"
	BySupervise = "supervise"
)

// Limits, in characters, on text that crosses from the sandbox or the
// operator.
const (
	MaxReasonChars   = 2048
	MaxQuestionChars = 4096
	MaxNoteChars     = 4096
)

// maxFileBytes bounds what is read from a queue file.
const maxFileBytes = 64 << 10

// Errors callers branch on.
var (
	ErrUnknownProposal = errors.New("unknown proposal")
	ErrAlreadyAnswered = errors.New("proposal already answered")
	ErrExpired         = errors.New("proposal expired")
)

// Proposal is one request from the agent, stored as <id>.json (mode 0600)
// in the bottle's queue directory.
type Proposal struct {
	// ID is 16 characters of lower-case base32 (80 random bits).
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Host and Port are set for KindEgress. Host is canonical
	// (plan.NormalizeHost) and never a wildcard.
	Host   string `json:"host,omitempty"`
	Port   int    `json:"port,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Question is set for KindQuestion.
	Question string    `json:"question,omitempty"`
	Created  time.Time `json:"created"`
	// Expires is when the server stops waiting and records StatusTimedOut.
	Expires time.Time `json:"expires"`
	Status  Status    `json:"status"`
}

// Decision is the answer to a proposal, stored as <id>.answer.json (mode
// 0600). It is created exactly once, with a hard link from a complete temp
// file, so that the operator's answer and the server's timeout cannot both
// win: whoever links first decides.
type Decision struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Note is the operator's note; for KindQuestion it is the answer.
	Note string `json:"note,omitempty"`
	// Host and Port are set when the operator edited an egress proposal
	// before approving it; they replace the requested ones.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// By is ByOperator or BySupervise (timeouts and cancellations).
	By   string    `json:"by"`
	Time time.Time `json:"time"`
}

var idPattern = regexp.MustCompile(`^[a-z2-7]{16}$`)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a fresh proposal ID: short, filesystem-safe, and with 80
// random bits, unguessable.
func newID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate proposal id: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// ValidID reports whether id has the form of a proposal ID. Anything else
// is refused before it gets near a path.
func ValidID(id string) bool { return idPattern.MatchString(id) }

func queueDir(stateDir string) string { return filepath.Join(stateDir, QueueDir) }

func proposalPath(stateDir, id string) string {
	return filepath.Join(queueDir(stateDir), id+".json")
}

func decisionPath(stateDir, id string) string {
	return filepath.Join(queueDir(stateDir), id+".answer.json")
}

// ensureQueue creates the queue directory with mode 0700, or checks that an
// existing one is a real directory and tightens its mode.
func ensureQueue(stateDir string) error {
	dir := queueDir(stateDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create queue directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check queue directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("queue directory %q is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restrict queue directory: %w", err)
		}
	}
	return nil
}

// writeTemp writes v as JSON to a new 0600 temp file in dir, synced to disk,
// and returns its path.
func writeTemp(dir string, v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create temp file: %w", err)
	}
	name := f.Name()
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Chmod(0o600)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("write temp file: %w", werr)
	}
	return name, nil
}

// writeProposal stores p as <id>.json atomically (temp file and rename):
// readers see the old or the new proposal, never a partial one.
func writeProposal(stateDir string, p Proposal) error {
	tmp, err := writeTemp(queueDir(stateDir), p)
	if err != nil {
		return fmt.Errorf("write proposal %s: %w", p.ID, err)
	}
	if err := os.Rename(tmp, proposalPath(stateDir, p.ID)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write proposal %s: %w", p.ID, err)
	}
	return nil
}

// linkDecision creates <id>.answer.json holding d, failing with
// ErrAlreadyAnswered when it exists. The hard link makes creation atomic
// and exclusive: the file appears complete or not at all, and only once.
func linkDecision(stateDir string, d Decision) error {
	tmp, err := writeTemp(queueDir(stateDir), d)
	if err != nil {
		return fmt.Errorf("write answer to %s: %w", d.ID, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, decisionPath(stateDir, d.ID)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("answer %s: %w", d.ID, ErrAlreadyAnswered)
		}
		return fmt.Errorf("write answer to %s: %w", d.ID, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxFileBytes {
		return fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), maxFileBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", filepath.Base(path), err)
	}
	return nil
}

// readProposal reads the proposal id; a missing file is ErrUnknownProposal.
func readProposal(stateDir, id string) (Proposal, error) {
	var p Proposal
	if err := readJSON(proposalPath(stateDir, id), &p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("proposal %q: %w", id, ErrUnknownProposal)
		}
		return p, fmt.Errorf("read proposal %q: %w", id, err)
	}
	if p.ID != id {
		return p, fmt.Errorf("read proposal %q: file holds id %q", id, p.ID)
	}
	return p, nil
}

// readDecision reads the decision on id; ok is false when there is none yet.
func readDecision(stateDir, id string) (d Decision, ok bool, err error) {
	if err := readJSON(decisionPath(stateDir, id), &d); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return d, false, nil
		}
		return d, false, fmt.Errorf("read answer to %q: %w", id, err)
	}
	if d.ID != id {
		return d, false, fmt.Errorf("read answer to %q: file holds id %q", id, d.ID)
	}
	return d, true, nil
}

// Pending returns the proposals in stateDir's queue that still await an
// answer: status pending, no decision file, not expired. They are sorted by
// creation time. A bottle without a queue directory has none.
func Pending(stateDir string) ([]Proposal, error) {
	entries, err := os.ReadDir(queueDir(stateDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list queue: %w", err)
	}
	now := time.Now()
	var out []Proposal
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		p, err := readProposal(stateDir, id)
		if err != nil {
			if errors.Is(err, ErrUnknownProposal) {
				continue // removed while listing
			}
			return nil, err
		}
		if p.Status != StatusPending || !now.Before(p.Expires) {
			continue
		}
		if _, decided, err := readDecision(stateDir, id); err != nil {
			return nil, err
		} else if decided {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Proposal) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// AnswerOption changes how Answer answers.
type AnswerOption func(*answerOptions)

type answerOptions struct {
	host string
	port int
}

// WithEdit approves an egress proposal for host and port instead of what
// the agent asked for. An empty host or a zero port keeps the requested
// one. The host may be a "*.example.com" wildcard; it is checked with
// plan.NormalizeHost.
func WithEdit(host string, port int) AnswerOption {
	return func(o *answerOptions) {
		o.host = host
		o.port = port
	}
}

// Answer records the operator's answer to proposal id in stateDir's queue:
// approve or deny, with a note (for a question, the note is the answer).
// The waiting supervise server notices within its poll interval. It fails
// with ErrUnknownProposal for an id that is not in the queue,
// ErrAlreadyAnswered when the proposal was already decided (by the
// operator, a timeout or a cancellation), and ErrExpired when its deadline
// has passed.
func Answer(stateDir, id string, approve bool, note string, opts ...AnswerOption) error {
	if !ValidID(id) {
		return fmt.Errorf("proposal %q: %w (ids are 16 characters of a-z and 2-7)", id, ErrUnknownProposal)
	}
	if err := checkText("note", note, MaxNoteChars); err != nil {
		return fmt.Errorf("answer %s: %w", id, err)
	}
	var o answerOptions
	for _, opt := range opts {
		opt(&o)
	}
	p, err := readProposal(stateDir, id)
	if err != nil {
		return err
	}
	if d, decided, err := readDecision(stateDir, id); err != nil {
		return err
	} else if decided {
		return fmt.Errorf("proposal %s was already decided (%s by %s): %w", id, d.Status, d.By, ErrAlreadyAnswered)
	}
	if p.Status != StatusPending {
		return fmt.Errorf("proposal %s is %s: %w", id, p.Status, ErrAlreadyAnswered)
	}
	now := time.Now()
	if !now.Before(p.Expires) {
		return fmt.Errorf("proposal %s expired at %s: %w", id, p.Expires.Format(time.RFC3339), ErrExpired)
	}
	d := Decision{ID: id, Status: StatusDenied, Note: note, By: ByOperator, Time: now.UTC()}
	if approve {
		d.Status = StatusApproved
	}
	if o.host != "" || o.port != 0 {
		if p.Kind != KindEgress {
			return fmt.Errorf("answer %s: only egress requests can be edited, this is a %s", id, p.Kind)
		}
		if !approve {
			return fmt.Errorf("answer %s: an edit only makes sense when approving", id)
		}
		if o.host != "" {
			h, err := plan.NormalizeHost(o.host)
			if err != nil {
				return fmt.Errorf("answer %s: edited host: %w", id, err)
			}
			if h != p.Host {
				d.Host = h
			}
		}
		if o.port != 0 {
			if err := checkPort(o.port); err != nil {
				return fmt.Errorf("answer %s: edited port: %w", id, err)
			}
			if o.port != p.Port {
				d.Port = o.port
			}
		}
	}
	return linkDecision(stateDir, d)
}

// StateDirs returns the bottle state directories under root (normally
// $XDG_STATE_HOME/bottle) that have a supervise queue, sorted.
func StateDirs(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list bottles in %q: %w", root, err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if fi, err := os.Lstat(queueDir(dir)); err == nil && fi.IsDir() {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// Locate finds which bottle under root (see StateDirs) holds proposal id
// and returns its state directory, for `bottle approve <id>`. It fails with
// ErrUnknownProposal when no bottle has it.
func Locate(root, id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("proposal %q: %w (ids are 16 characters of a-z and 2-7)", id, ErrUnknownProposal)
	}
	dirs, err := StateDirs(root)
	if err != nil {
		return "", err
	}
	for _, dir := range dirs {
		if fi, err := os.Lstat(proposalPath(dir, id)); err == nil && fi.Mode().IsRegular() {
			return dir, nil
		}
	}
	return "", fmt.Errorf("proposal %q: %w in any bottle under %q", id, ErrUnknownProposal, root)
}

// AllowLine returns the profile line that allows host on port, for the
// operator to add to the profile when an approval should outlive the
// bottle. bottle never edits a profile itself.
func AllowLine(host string, port int) string {
	return fmt.Sprintf("allow(%q, ports = [%d])", host, port)
}

func checkPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is out of range; ports are 1 to 65535", port)
	}
	return nil
}

// checkText refuses invalid UTF-8, NUL bytes and text over max characters.
func checkText(what, s string, max int) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case utf8.RuneCountInString(s) > max:
		return fmt.Errorf("%s is %d characters long; at most %d are accepted", what, utf8.RuneCountInString(s), max)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%s holds a NUL byte", what)
	}
	return nil
}

// KeepDecided is how many decided proposals (answered, timed out or
// cancelled) stay in the queue directory; older ones are pruned, their
// record kept in the audit log. It bounds the queue an agent can grow by
// asking and cancelling.
const KeepDecided = 64

// pruneDecided removes all but the KeepDecided most recently decided
// proposals from stateDir's queue, both files of each. Errors are ignored:
// pruning never fails a request.
func pruneDecided(stateDir string) {
	des, err := os.ReadDir(queueDir(stateDir))
	if err != nil {
		return
	}
	type decided struct {
		id  string
		mod time.Time
	}
	var ds []decided
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".answer.json")
		if !ok || !ValidID(id) {
			continue
		}
		if info, err := de.Info(); err == nil {
			ds = append(ds, decided{id, info.ModTime()})
		}
	}
	if len(ds) <= KeepDecided {
		return
	}
	slices.SortFunc(ds, func(a, b decided) int { return a.mod.Compare(b.mod) })
	for _, d := range ds[:len(ds)-KeepDecided] {
		os.Remove(proposalPath(stateDir, d.id))
		os.Remove(decisionPath(stateDir, d.id))
	}
}

package supervise

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// queued files p into a fresh queue in stateDir, as the server does.
func queued(t testing.TB, stateDir string, p Proposal) Proposal {
	t.Helper()
	if err := ensureQueue(stateDir); err != nil {
		t.Fatal(err)
	}
	if p.ID == "" {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		p.ID = id
	}
	if p.Kind == "" {
		p.Kind, p.Host, p.Port, p.Reason = KindEgress, "example.com", 443, "r"
	}
	if p.Created.IsZero() {
		p.Created = time.Now().UTC()
	}
	if p.Expires.IsZero() {
		p.Expires = p.Created.Add(time.Minute)
	}
	if p.Status == "" {
		p.Status = StatusPending
	}
	if err := writeProposal(stateDir, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) || seen[id] {
			t.Fatalf("id %q invalid or repeated", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "../../etc/passwd", "ABCDEFGHIJKLMNOP", "abcdefghijklmno1", "abcdefghijklmnop.json", "abcdefghijklmnopq"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestAnswerFile(t *testing.T) {
	dir := t.TempDir()
	p := queued(t, dir, Proposal{})
	if err := Answer(dir, p.ID, true, "go ahead", WithEdit("api.example.com", 0)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "queue", p.ID+".answer.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("answer mode = %v", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["id"] != p.ID || raw["status"] != "approved" || raw["note"] != "go ahead" || raw["by"] != "operator" ||
		raw["host"] != "api.example.com" || raw["port"] != nil || raw["time"] == nil {
		t.Errorf("answer file = %s", b)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("queue holds %v; temp files left behind?", names)
	}
}

func TestAnswerErrors(t *testing.T) {
	dir := t.TempDir()
	egress := queued(t, dir, Proposal{})
	question := queued(t, dir, Proposal{Kind: KindQuestion, Question: "q?"})
	expired := queued(t, dir, Proposal{Created: time.Now().Add(-2 * time.Minute), Expires: time.Now().Add(-time.Minute)})
	missing, _ := newID()

	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"unknown id", ErrUnknownProposal, func() error { return Answer(dir, missing, true, "") }},
		{"path id", ErrUnknownProposal, func() error { return Answer(dir, "../"+egress.ID, true, "") }},
		{"no queue", ErrUnknownProposal, func() error { return Answer(t.TempDir(), egress.ID, true, "") }},
		{"expired", ErrExpired, func() error { return Answer(dir, expired.ID, true, "") }},
		{"edit question", nil, func() error { return Answer(dir, question.ID, true, "", WithEdit("example.org", 0)) }},
		{"edit deny", nil, func() error { return Answer(dir, egress.ID, false, "", WithEdit("", 8443)) }},
		{"edit ip", nil, func() error { return Answer(dir, egress.ID, true, "", WithEdit("10.0.0.1", 0)) }},
		{"edit tld wildcard", nil, func() error { return Answer(dir, egress.ID, true, "", WithEdit("*.com", 0)) }},
		{"edit port", nil, func() error { return Answer(dir, egress.ID, true, "", WithEdit("", 70000)) }},
		{"long note", nil, func() error { return Answer(dir, egress.ID, true, strings.Repeat("n", MaxNoteChars+1)) }},
		{"bad utf8", nil, func() error { return Answer(dir, egress.ID, true, "\xff") }},
	}
	for _, c := range cases {
		err := c.fn()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// None of the refusals decided anything.
	for _, p := range []Proposal{egress, question, expired} {
		if _, ok, err := readDecision(dir, p.ID); ok || err != nil {
			t.Errorf("%s decided after refused answers (%v)", p.ID, err)
		}
	}
	if err := Answer(dir, question.ID, true, "yes"); err != nil {
		t.Fatal(err)
	}
	if err := Answer(dir, question.ID, true, "yes"); !errors.Is(err, ErrAlreadyAnswered) {
		t.Errorf("second answer: %v", err)
	}
}

func TestAnswerRace(t *testing.T) {
	dir := t.TempDir()
	p := queued(t, dir, Proposal{})
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = Answer(dir, p.ID, i%2 == 0, "") })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrAlreadyAnswered):
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d answers won, want exactly 1", wins)
	}
}

func TestAnswerVersusTimeout(t *testing.T) {
	// The operator's answer and the server's timeout race for the same
	// proposal: exactly one decides, and both sides agree on which.
	dir := t.TempDir()
	rl := &ruleList{}
	srv, err := New(Config{StateDir: dir, Rules: rl, Adder: rl, Audit: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		p := queued(t, dir, Proposal{})
		var (
			wg      sync.WaitGroup
			answerE error
			settled Decision
			settleE error
		)
		wg.Go(func() { answerE = Answer(dir, p.ID, true, "") })
		wg.Go(func() { settled, settleE = srv.settle(p.ID, StatusTimedOut) })
		wg.Wait()
		if settleE != nil {
			t.Fatal(settleE)
		}
		stored, ok, err := readDecision(dir, p.ID)
		if err != nil || !ok {
			t.Fatalf("no decision: %v", err)
		}
		if stored != settled {
			t.Fatalf("server saw %+v, file holds %+v", settled, stored)
		}
		if (answerE == nil) != (stored.By == ByOperator) {
			t.Fatalf("Answer returned %v but the decision is %+v", answerE, stored)
		}
		if answerE != nil && !errors.Is(answerE, ErrAlreadyAnswered) {
			t.Fatal(answerE)
		}
	}
}

func TestPending(t *testing.T) {
	dir := t.TempDir()
	if ps, err := Pending(dir); err != nil || ps != nil {
		t.Fatalf("no queue: %v, %v", ps, err)
	}
	now := time.Now().UTC()
	second := queued(t, dir, Proposal{Created: now.Add(-time.Second)})
	first := queued(t, dir, Proposal{Created: now.Add(-2 * time.Second), Kind: KindQuestion, Question: "q"})
	queued(t, dir, Proposal{Created: now.Add(-time.Hour), Expires: now.Add(-time.Minute)})
	queued(t, dir, Proposal{Status: StatusDenied})
	answered := queued(t, dir, Proposal{})
	if err := Answer(dir, answered.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{".tmp-123": "{", "notes.txt": "x", "short.json": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, "queue", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := Pending(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].ID != first.ID || ps[1].ID != second.ID {
		t.Errorf("Pending = %+v, want [%s %s]", ps, first.ID, second.ID)
	}

	// A proposal file that does not parse is an error, not silence.
	bad, _ := newID()
	if err := os.WriteFile(filepath.Join(dir, "queue", bad+".json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Pending(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt proposal: %v", err)
	}
}

func TestEnsureQueueTightensMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ensureQueue(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "queue"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mode = %v", fi.Mode().Perm())
	}
	other := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(other, "queue")); err != nil {
		t.Fatal(err)
	}
	if err := ensureQueue(other); err == nil {
		t.Error("a symlinked queue directory was accepted")
	}
}

func TestStateDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/queue", "b", "d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "c"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "queue"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "e")); err != nil {
		t.Fatal(err)
	}
	got, err := StateDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != filepath.Join(root, "a") {
		t.Errorf("StateDirs = %v", got)
	}
	if got, err := StateDirs(filepath.Join(root, "missing")); err != nil || got != nil {
		t.Errorf("missing root: %v, %v", got, err)
	}
}

func TestLocate(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pa, pb := queued(t, a, Proposal{}), queued(t, b, Proposal{})
	for dir, id := range map[string]string{a: pa.ID, b: pb.ID} {
		if got, err := Locate(root, id); err != nil || got != dir {
			t.Errorf("Locate(%s) = %q, %v; want %q", id, got, err, dir)
		}
	}
	missing, _ := newID()
	for _, id := range []string{missing, "../a/queue/x", ""} {
		if _, err := Locate(root, id); !errors.Is(err, ErrUnknownProposal) {
			t.Errorf("Locate(%q) = %v", id, err)
		}
	}
}

func TestAllowLine(t *testing.T) {
	if got := AllowLine("registry.example.org", 443); got != `allow("registry.example.org", ports = [443])` {
		t.Errorf("AllowLine = %s", got)
	}
	if got := AllowLine("*.example.com", 8443); got != `allow("*.example.com", ports = [8443])` {
		t.Errorf("AllowLine = %s", got)
	}
}

// BenchmarkPending measures one listing of a queue of 100 pending
// proposals, which the operator's UI does every second per bottle.
func BenchmarkPending(b *testing.B) {
	dir := b.TempDir()
	for range 100 {
		queued(b, dir, Proposal{})
	}
	b.ResetTimer()
	for b.Loop() {
		ps, err := Pending(dir)
		if err != nil || len(ps) != 100 {
			b.Fatalf("%d, %v", len(ps), err)
		}
	}
}

// BenchmarkPollMiss measures one poll of a waiting request that finds no
// answer yet: the cost paid every PollInterval per waiting request.
func BenchmarkPollMiss(b *testing.B) {
	dir := b.TempDir()
	p := queued(b, dir, Proposal{})
	for b.Loop() {
		if _, ok, err := readDecision(dir, p.ID); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// TestPruneDecided: the queue keeps KeepDecided decided proposals and no
// more, so asking and cancelling does not grow it without bound; pending
// proposals are never pruned.
func TestPruneDecided(t *testing.T) {
	state := t.TempDir()
	if err := ensureQueue(state); err != nil {
		t.Fatal(err)
	}
	var pending string
	for i := 0; i < KeepDecided+40; i++ {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		p := Proposal{ID: id, Kind: KindQuestion, Question: "q", Status: StatusPending, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
		if err := writeProposal(state, p); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			pending = id // the first stays pending, the oldest of all
			continue
		}
		if err := linkDecision(state, Decision{ID: id, Status: StatusCancelled, By: BySupervise}); err != nil {
			t.Fatal(err)
		}
	}
	pruneDecided(state)
	des, _ := os.ReadDir(queueDir(state))
	answers := 0
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".answer.json") {
			answers++
		}
	}
	if answers != KeepDecided {
		t.Errorf("%d decided proposals kept, want %d", answers, KeepDecided)
	}
	if _, err := os.Stat(proposalPath(state, pending)); err != nil {
		t.Errorf("the pending proposal was pruned: %v", err)
	}
	if len(des) != 2*KeepDecided+1 {
		t.Errorf("%d files in the queue, want %d", len(des), 2*KeepDecided+1)
	}
}

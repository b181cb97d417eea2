package tui

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bottle-dev/bottle/sidecars/supervise"
)

// writeProposal files p in the queue of bottle under root, in the format
// the supervise server writes.
func writeProposal(t *testing.T, root, bottle string, p supervise.Proposal) string {
	t.Helper()
	stateDir := filepath.Join(root, bottle)
	if err := os.MkdirAll(filepath.Join(stateDir, supervise.QueueDir), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, supervise.QueueDir, p.ID+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return stateDir
}

func decision(t *testing.T, stateDir, id string) (supervise.Decision, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, supervise.QueueDir, id+".answer.json"))
	if errors.Is(err, os.ErrNotExist) {
		return supervise.Decision{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var d supervise.Decision
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d, true
}

const (
	idNPM = "aaaaaaaaaaaaaaaa"
	idQ   = "bbbbbbbbbbbbbbbb"
	idGH  = "cccccccccccccccc"
)

// fixture: two bottles, three pending requests, oldest first: npm
// (app-1), question (app-2), github (app-1).
func fixture(t *testing.T) (root string, m Model) {
	t.Helper()
	root = t.TempDir()
	created := time.Now().UTC().Add(-time.Minute)
	expires := created.Add(time.Hour)
	writeProposal(t, root, "app-1", supervise.Proposal{ID: idNPM, Kind: supervise.KindEgress, Host: "registry.example.org", Port: 443,
		Reason: "npm install", Created: created, Expires: expires, Status: supervise.StatusPending})
	writeProposal(t, root, "app-2", supervise.Proposal{ID: idQ, Kind: supervise.KindQuestion, Question: "Which branch?",
		Created: created.Add(time.Second), Expires: expires, Status: supervise.StatusPending})
	writeProposal(t, root, "app-1", supervise.Proposal{ID: idGH, Kind: supervise.KindEgress, Host: "api.github.com", Port: 443,
		Reason: "gh api", Created: created.Add(2 * time.Second), Expires: expires, Status: supervise.StatusPending})
	m = New(RootLoader(root))
	m.now = func() time.Time { return created.Add(2 * time.Minute) }
	m = run(t, m, m.loadCmd())
	if len(m.items) != 3 {
		t.Fatalf("loaded %d items, want 3 (err %v)", len(m.items), m.loadErr)
	}
	return root, m
}

// run executes cmd and feeds its message back, as the bubbletea runtime
// would, following up with any command the update returns (reloads after
// answers), but not timers.
func run(t *testing.T, m Model, cmd tea.Cmd) Model {
	t.Helper()
	for cmd != nil {
		msg := cmd()
		if _, ok := msg.(tea.QuitMsg); ok {
			t.Fatal("unexpected quit")
		}
		var next tea.Model
		next, cmd = m.Update(msg)
		m = next.(Model)
	}
	return m
}

// Special keys, as bubbletea decodes them from a terminal.
var (
	keyEnter     = tea.KeyPressMsg{Code: tea.KeyEnter}
	keyEsc       = tea.KeyPressMsg{Code: tea.KeyEscape}
	keyBackspace = tea.KeyPressMsg{Code: tea.KeyBackspace}
	keyCtrlU     = tea.KeyPressMsg{Code: 'u', Mod: tea.ModCtrl}
	keyCtrlC     = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
)

// press sends keys; a string is typed rune by rune.
func press(t *testing.T, m Model, keys ...any) Model {
	t.Helper()
	for _, k := range keys {
		var msgs []tea.KeyPressMsg
		switch k := k.(type) {
		case tea.KeyPressMsg:
			msgs = append(msgs, k)
		case string:
			for _, r := range k {
				msgs = append(msgs, tea.KeyPressMsg{Code: r, Text: string(r)})
			}
		default:
			t.Fatalf("bad key %v", k)
		}
		for _, msg := range msgs {
			next, cmd := m.Update(msg)
			m = run(t, next.(Model), cmd)
		}
	}
	return m
}

func TestApprove(t *testing.T) {
	root, m := fixture(t)
	m = press(t, m, "a", "fine for today", keyEnter)
	d, ok := decision(t, filepath.Join(root, "app-1"), idNPM)
	if !ok || d.Status != supervise.StatusApproved || d.Note != "fine for today" || d.By != supervise.ByOperator || d.Host != "" || d.Port != 0 {
		t.Fatalf("decision = %+v, %v", d, ok)
	}
	want := []string{`allow("registry.example.org", ports = [443])`}
	if got := m.AllowLines(); !slices.Equal(got, want) {
		t.Errorf("AllowLines = %v, want %v", got, want)
	}
	v := m.View().Content
	if !strings.Contains(v, want[0]) || !strings.Contains(v, "approved registry.example.org:443") {
		t.Errorf("view does not show the result:\n%s", v)
	}
	// The answered request left the list; the cursor sits on the next one.
	if len(m.items) != 2 || m.items[m.cursor].Proposal.ID != idQ {
		t.Errorf("items after answer = %+v, cursor %d", m.items, m.cursor)
	}
}

func TestDenySecond(t *testing.T) {
	root, m := fixture(t)
	m = press(t, m, "j", "j", "k", "j", "j", "d", "not needed", keyEnter)
	d, ok := decision(t, filepath.Join(root, "app-1"), idGH)
	if !ok || d.Status != supervise.StatusDenied || d.Note != "not needed" {
		t.Fatalf("decision = %+v, %v", d, ok)
	}
	if _, ok := decision(t, filepath.Join(root, "app-1"), idNPM); ok {
		t.Error("the first request was answered too")
	}
	if len(m.AllowLines()) != 0 {
		t.Errorf("a denial produced allow lines %v", m.AllowLines())
	}
}

func TestEditThenApprove(t *testing.T) {
	root, m := fixture(t)
	m = press(t, m, "e")
	if m.mode != modeHost || string(m.input) != "registry.example.org" {
		t.Fatalf("mode %v input %q", m.mode, string(m.input))
	}
	m = press(t, m, keyCtrlU, "*.EXAMPLE.org", keyEnter)
	if m.mode != modePort || string(m.input) != "443" {
		t.Fatalf("mode %v input %q", m.mode, string(m.input))
	}
	m = press(t, m, keyBackspace, keyBackspace, keyBackspace, "8443", keyEnter, "mirror", keyEnter)
	d, ok := decision(t, filepath.Join(root, "app-1"), idNPM)
	if !ok || d.Status != supervise.StatusApproved || d.Host != "*.example.org" || d.Port != 8443 || d.Note != "mirror" {
		t.Fatalf("decision = %+v, %v", d, ok)
	}
	if got := m.AllowLines(); !slices.Equal(got, []string{`allow("*.example.org", ports = [8443])`}) {
		t.Errorf("AllowLines = %v", got)
	}
}

func TestEditRejectsBadInput(t *testing.T) {
	root, m := fixture(t)
	m = press(t, m, "e", keyCtrlU, "1.2.3.4", keyEnter)
	if m.mode != modeHost || !strings.Contains(m.View().Content, "IP") {
		t.Fatalf("IP literal accepted: mode %v\n%s", m.mode, m.View().Content)
	}
	m = press(t, m, keyCtrlU, "example.com", keyEnter, keyCtrlU, "70000", keyEnter)
	if m.mode != modePort || !strings.Contains(m.View().Content, "not a port") {
		t.Fatalf("port 70000 accepted: mode %v\n%s", m.mode, m.View().Content)
	}
	m = press(t, m, keyEsc)
	if m.mode != modeList {
		t.Fatalf("esc left mode %v", m.mode)
	}
	if _, ok := decision(t, filepath.Join(root, "app-1"), idNPM); ok {
		t.Error("a cancelled edit answered the request")
	}
	// Questions have nothing to edit.
	m = press(t, m, "j", "e")
	if m.mode != modeList || !strings.Contains(m.View().Content, "only egress requests") {
		t.Errorf("edit on a question: mode %v\n%s", m.mode, m.View().Content)
	}
}

func TestAnswerQuestion(t *testing.T) {
	root, m := fixture(t)
	m = press(t, m, "j", "a")
	if !strings.Contains(m.View().Content, "answer: ") {
		t.Errorf("no answer prompt:\n%s", m.View().Content)
	}
	m = press(t, m, "use main", keyEnter)
	d, ok := decision(t, filepath.Join(root, "app-2"), idQ)
	if !ok || d.Status != supervise.StatusApproved || d.Note != "use main" {
		t.Fatalf("decision = %+v, %v", d, ok)
	}
	if len(m.AllowLines()) != 0 {
		t.Errorf("a question produced allow lines %v", m.AllowLines())
	}
}

func TestAnsweredElsewhere(t *testing.T) {
	root, m := fixture(t)
	// Someone runs `bottle deny` while the operator types.
	m = press(t, m, "a", "ok")
	if err := supervise.Answer(filepath.Join(root, "app-1"), idNPM, false, "no"); err != nil {
		t.Fatal(err)
	}
	m = press(t, m, keyEnter)
	if !strings.Contains(m.View().Content, "could not answer "+idNPM) || !strings.Contains(m.View().Content, "already") {
		t.Errorf("view:\n%s", m.View().Content)
	}
	if len(m.AllowLines()) != 0 {
		t.Errorf("allow lines for a failed approval: %v", m.AllowLines())
	}
	if d, _ := decision(t, filepath.Join(root, "app-1"), idNPM); d.Status != supervise.StatusDenied {
		t.Errorf("decision = %+v", d)
	}
}

func TestQuitAndEmpty(t *testing.T) {
	m := New(DirsLoader(nil))
	m = run(t, m, m.loadCmd())
	if !strings.Contains(m.View().Content, "no pending requests") {
		t.Errorf("view:\n%s", m.View().Content)
	}
	m = press(t, m, "a", "d", "e", "j", "k") // nothing to act on
	if m.mode != modeList {
		t.Errorf("mode %v with no items", m.mode)
	}
	for _, k := range []tea.KeyPressMsg{{Code: 'q', Text: "q"}, keyCtrlC} {
		_, cmd := m.Update(k)
		if cmd == nil {
			t.Fatalf("%v: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%v did not quit", k)
		}
	}
	// q while typing a note is text, not quit.
	_, m = fixture(t)
	m = press(t, m, "a", "q")
	if m.mode != modeNote || string(m.input) != "q" {
		t.Errorf("mode %v input %q", m.mode, string(m.input))
	}
}

func TestRefreshKeepsSelection(t *testing.T) {
	root, m := fixture(t)
	m.refresh = time.Millisecond
	m = press(t, m, "j", "j") // on github
	// A new, older request appears in another bottle.
	writeProposal(t, root, "app-3", supervise.Proposal{ID: "dddddddddddddddd", Kind: supervise.KindQuestion, Question: "?",
		Created: time.Now().UTC().Add(-time.Hour), Expires: time.Now().Add(time.Hour), Status: supervise.StatusPending})
	next, cmd := m.Update(tickMsg{})
	m = next.(Model)
	// The tick batches a reload with the next tick; run only the reload.
	for _, c := range cmd().(tea.BatchMsg) {
		if msg, ok := c().(loadedMsg); ok {
			next, _ = m.Update(msg)
			m = next.(Model)
		}
	}
	if len(m.items) != 4 || m.items[m.cursor].Proposal.ID != idGH {
		t.Errorf("after refresh: %d items, cursor on %s", len(m.items), m.items[m.cursor].Proposal.ID)
	}
}

func TestHostileText(t *testing.T) {
	root := t.TempDir()
	now := time.Now().UTC()
	writeProposal(t, root, "app-1", supervise.Proposal{ID: idQ, Kind: supervise.KindQuestion,
		Question: "ok?\x1b[2J\x1b]0;pwned\x07 \u202eevil\u202c\rline2\nline3 \xff",
		Created:  now, Expires: now.Add(time.Hour), Status: supervise.StatusPending})
	m := New(RootLoader(root))
	m = run(t, m, m.loadCmd())
	var list bytes.Buffer
	items, err := Load([]string{filepath.Join(root, "app-1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteList(&list, items, now); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"view": m.View().Content, "list": list.String()} {
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\r", "\xff"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s contains %q:\n%q", name, bad, out)
			}
		}
		if !strings.Contains(out, `\x1b[2J`) || !strings.Contains(out, `\u202e`) {
			t.Errorf("%s does not show the escaped text:\n%s", name, out)
		}
	}
	if !strings.Contains(m.View().Content, "    line3") {
		t.Errorf("multi-line question not shown line by line:\n%s", m.View().Content)
	}
}

func TestLoadErrorsKeepOthers(t *testing.T) {
	root, _ := fixture(t)
	bad := filepath.Join(root, "app-2", supervise.QueueDir, "eeeeeeeeeeeeeeee.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := New(RootLoader(root))
	m = run(t, m, m.loadCmd())
	if len(m.items) != 2 || m.loadErr == nil {
		t.Fatalf("items %d err %v", len(m.items), m.loadErr)
	}
	if v := m.View().Content; !strings.Contains(v, "bottle app-2") {
		t.Errorf("view does not name the broken bottle:\n%s", v)
	}
}

func TestWriteList(t *testing.T) {
	root, _ := fixture(t)
	items, err := RootLoader(root)()
	if err != nil {
		t.Fatal(err)
	}
	now := items[0].Proposal.Created.Add(2 * time.Minute)
	var b bytes.Buffer
	if err := WriteList(&b, items, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("list:\n%s", b.String())
	}
	for i, want := range [][]string{
		{"ID", "BOTTLE", "KIND", "REQUEST", "EXPIRES IN", "DETAIL"},
		{idNPM, "app-1", "egress", "registry.example.org:443", "58m0s", "npm install"},
		{idQ, "app-2", "question", "-", "58m0s", "Which branch?"},
		{idGH, "app-1", "egress", "api.github.com:443", "58m0s", "gh api"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	b.Reset()
	if err := WriteList(&b, nil, now); err != nil || b.String() != "no pending requests\n" {
		t.Errorf("empty list = %q, %v", b.String(), err)
	}
}

// lockedBuffer is written by the program's goroutine and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunWithoutTTY(t *testing.T) {
	// The real program, fed keys from a pipe instead of a terminal.
	root, _ := fixture(t)
	pr, pw := io.Pipe()
	var out lockedBuffer
	done := make(chan struct{})
	var lines []string
	var err error
	go func() {
		defer close(done)
		lines, err = Run(RootLoader(root), tea.WithInput(pr), tea.WithOutput(&out), tea.WithoutSignals(),
			tea.WithWindowSize(100, 40)) // a buffer has no size of its own
	}()
	// Wait until the first load shows the request, then approve and quit.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), idNPM) {
		if time.Now().After(deadline) {
			t.Fatalf("UI never showed the queue: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := pw.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := pw.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := decision(t, filepath.Join(root, "app-1"), idNPM); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("approval never written")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := pw.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("UI did not quit")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lines, []string{`allow("registry.example.org", ports = [443])`}) {
		t.Errorf("Run returned %v", lines)
	}
}

func TestPaste(t *testing.T) {
	root, m := fixture(t)
	// Pasting in the list answers nothing.
	next, cmd := m.Update(tea.PasteMsg{Content: "a\r"})
	m = run(t, next.(Model), cmd)
	if m.mode != modeList || len(m.input) != 0 {
		t.Fatalf("paste in the list: mode %v input %q", m.mode, string(m.input))
	}
	// In a note, the text is typed without its control and formatting
	// characters.
	m = press(t, m, "a", "x")
	next, cmd = m.Update(tea.PasteMsg{Content: "one\ntwo\x1b[2J\u202e three"})
	m = run(t, next.(Model), cmd)
	if m.mode != modeNote || string(m.input) != "xonetwo[2J three" {
		t.Fatalf("after paste: mode %v input %q", m.mode, string(m.input))
	}
	m = press(t, m, keyEnter)
	if d, ok := decision(t, filepath.Join(root, "app-1"), idNPM); !ok || d.Note != "xonetwo[2J three" {
		t.Errorf("decision = %+v, %v", d, ok)
	}
}

func TestViewUsesAltScreen(t *testing.T) {
	m := New(DirsLoader(nil))
	if v := m.View(); !v.AltScreen {
		t.Error("the view does not ask for the alternate screen")
	}
}

// Package tui is the operator's side of the supervision channel: a
// terminal UI (bubbletea) for `bottle supervise` that lists the requests
// waiting in every running bottle's queue and answers them, and a plain
// listing of the same for scripts and `--once`.
//
// Everything shown comes from the sandbox, so text is displayed with
// control and formatting characters escaped: a request cannot move the
// cursor, recolour the screen or reorder what the operator reads.
package tui

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars/supervise"
)

// RefreshInterval is how often the UI rereads the queues.
const RefreshInterval = time.Second

// Item is one pending proposal and the bottle it belongs to.
type Item struct {
	// StateDir is the bottle's state directory.
	StateDir string `json:"state_dir"`
	// Bottle is the bottle's slug, the state directory's base name.
	Bottle   string             `json:"bottle"`
	Proposal supervise.Proposal `json:"proposal"`
}

// Loader returns the pending items. It may return items together with an
// error about the queues it could not read.
type Loader func() ([]Item, error)

// Load returns the pending proposals of the given bottle state
// directories, oldest first. A queue that cannot be read is reported in
// the error, and the others are still returned.
func Load(stateDirs []string) ([]Item, error) {
	var items []Item
	var errs []error
	for _, dir := range stateDirs {
		ps, err := supervise.Pending(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("bottle %s: %w", filepath.Base(dir), err))
			continue
		}
		for _, p := range ps {
			items = append(items, Item{StateDir: dir, Bottle: filepath.Base(dir), Proposal: p})
		}
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := a.Proposal.Created.Compare(b.Proposal.Created); c != 0 {
			return c
		}
		if c := strings.Compare(a.Bottle, b.Bottle); c != 0 {
			return c
		}
		return strings.Compare(a.Proposal.ID, b.Proposal.ID)
	})
	return items, errors.Join(errs...)
}

// DirsLoader loads the given bottle state directories.
func DirsLoader(stateDirs []string) Loader {
	return func() ([]Item, error) { return Load(stateDirs) }
}

// RootLoader loads every bottle under root (normally
// $XDG_STATE_HOME/bottle), looking for new bottles on each call.
func RootLoader(root string) Loader {
	return func() ([]Item, error) {
		dirs, err := supervise.StateDirs(root)
		if err != nil {
			return nil, err
		}
		return Load(dirs)
	}
}

// WriteList writes items as a table for the operator: the non-interactive
// listing (`bottle supervise --once`).
func WriteList(w io.Writer, items []Item, now time.Time) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no pending requests")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBOTTLE\tKIND\tREQUEST\tEXPIRES IN\tDETAIL")
	for _, it := range items {
		p := it.Proposal
		request, detail := "-", clean(p.Question)
		if p.Kind == supervise.KindEgress {
			request, detail = clean(p.Host)+":"+strconv.Itoa(p.Port), clean(p.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, clean(it.Bottle), p.Kind, request, remaining(p, now), detail)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write pending list: %w", err)
	}
	return nil
}

func remaining(p supervise.Proposal, now time.Time) string {
	d := p.Expires.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return d.String()
}

// clean makes text from the sandbox safe to print on a terminal: control
// characters (escape sequences, carriage returns, newlines) and invisible
// formatting characters (bidirectional overrides, zero-width joiners) are
// shown escaped, as Go would quote them.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

type mode int

const (
	modeList mode = iota
	modeHost      // editing the host of an egress request
	modePort      // editing its port
	modeNote      // typing the note (the answer, for a question)
)

// Model is the bubbletea model of the supervise UI.
type Model struct {
	load    Loader
	now     func() time.Time
	refresh time.Duration

	items   []Item
	cursor  int
	loadErr error

	mode     mode
	target   Item // the item being answered, fixed while the operator types
	approve  bool
	input    []rune
	editHost string
	editPort int
	status   string
	allow    []string
}

// New returns a model that lists what load returns and answers with
// supervise.Answer.
func New(load Loader) Model {
	return Model{load: load, now: time.Now, refresh: RefreshInterval}
}

// AllowLines returns the profile lines for the egress requests approved while
// the UI ran, for the operator to add to the profile (bottle never edits
// a profile itself).
func (m Model) AllowLines() []string { return slices.Clone(m.allow) }

type loadedMsg struct {
	items []Item
	err   error
}

type tickMsg struct{}

type answeredMsg struct {
	item    Item
	approve bool
	host    string
	port    int
	err     error
}

func (m Model) loadCmd() tea.Cmd {
	load := m.load
	return func() tea.Msg {
		items, err := load()
		return loadedMsg{items, err}
	}
}

func (m Model) tickCmd() tea.Cmd {
	return tea.Tick(m.refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

// Init loads the queues and starts the refresh timer.
func (m Model) Init() tea.Cmd { return tea.Batch(m.loadCmd(), m.tickCmd()) }

// Update handles key presses, pastes, queue reloads and answers.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		m.setItems(msg.items)
		m.loadErr = msg.err
		return m, nil
	case tickMsg:
		return m, tea.Batch(m.loadCmd(), m.tickCmd())
	case answeredMsg:
		return m.answered(msg), m.loadCmd()
	case tea.KeyPressMsg:
		if msg.String() == "ctrl+c" {
			return m, tea.Quit
		}
		if m.mode == modeList {
			return m.listKey(msg)
		}
		return m.inputKey(msg)
	case tea.PasteMsg:
		// Pasted text is typed into the input; in the list it means nothing.
		if m.mode != modeList {
			m.typeText(msg.Content)
		}
		return m, nil
	}
	return m, nil
}

// setItems replaces the list, keeping the cursor on the same proposal.
func (m *Model) setItems(items []Item) {
	var selected string
	if m.cursor < len(m.items) {
		selected = m.items[m.cursor].Proposal.ID
	}
	m.items = items
	m.cursor = min(m.cursor, max(len(items)-1, 0))
	for i, it := range items {
		if it.Proposal.ID == selected {
			m.cursor = i
		}
	}
}

func (m Model) listKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "q":
		return m, tea.Quit
	case "up", "k":
		if m.cursor > 0 {
			m.cursor--
		}
		return m, nil
	case "down", "j":
		if m.cursor < len(m.items)-1 {
			m.cursor++
		}
		return m, nil
	case "r":
		return m, m.loadCmd()
	}
	if len(m.items) == 0 {
		return m, nil
	}
	it := m.items[m.cursor]
	switch msg.String() {
	case "a":
		m.begin(it, true, modeNote, "")
	case "d":
		m.begin(it, false, modeNote, "")
	case "e":
		if it.Proposal.Kind != supervise.KindEgress {
			m.status = "only egress requests can be edited"
			return m, nil
		}
		m.begin(it, true, modeHost, it.Proposal.Host)
	}
	return m, nil
}

func (m *Model) begin(it Item, approve bool, md mode, input string) {
	m.target, m.approve, m.mode = it, approve, md
	m.input = []rune(input)
	m.editHost, m.editPort = "", 0
	m.status = ""
}

func (m Model) inputKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "esc":
		m.mode, m.status = modeList, "cancelled; nothing was answered"
		return m, nil
	case "backspace":
		if len(m.input) > 0 {
			m.input = m.input[:len(m.input)-1]
		}
		return m, nil
	case "ctrl+u":
		m.input = m.input[:0]
		return m, nil
	case "enter":
		return m.submit()
	}
	// Text is set only for keys that print (space included), never for
	// combinations with ctrl or alt.
	m.typeText(msg.Text)
	return m, nil
}

// typeText appends typed or pasted text to the input, dropping control and
// invisible formatting characters, up to supervise.MaxNoteChars.
func (m *Model) typeText(s string) {
	for _, r := range s {
		if len(m.input) >= supervise.MaxNoteChars {
			return
		}
		if !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r) {
			m.input = append(m.input, r)
		}
	}
}

// submit finishes the current input step.
func (m Model) submit() (tea.Model, tea.Cmd) {
	text := string(m.input)
	switch m.mode {
	case modeHost:
		h, err := plan.NormalizeHost(strings.TrimSpace(text))
		if err != nil {
			m.status = err.Error()
			return m, nil
		}
		m.editHost, m.mode, m.status = h, modePort, ""
		m.input = []rune(strconv.Itoa(m.target.Proposal.Port))
		return m, nil
	case modePort:
		port, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil || port < 1 || port > 65535 {
			m.status = fmt.Sprintf("%q is not a port; ports are 1 to 65535", text)
			return m, nil
		}
		m.editPort, m.mode, m.status = port, modeNote, ""
		m.input = m.input[:0]
		return m, nil
	}
	m.mode = modeList
	return m, m.answerCmd(text)
}

func (m Model) answerCmd(note string) tea.Cmd {
	it, approve, host, port := m.target, m.approve, m.editHost, m.editPort
	return func() tea.Msg {
		var opts []supervise.AnswerOption
		if host != "" || port != 0 {
			opts = append(opts, supervise.WithEdit(host, port))
		}
		err := supervise.Answer(it.StateDir, it.Proposal.ID, approve, note, opts...)
		return answeredMsg{item: it, approve: approve, host: host, port: port, err: err}
	}
}

func (m Model) answered(msg answeredMsg) Model {
	p := msg.item.Proposal
	if msg.err != nil {
		m.status = fmt.Sprintf("could not answer %s: %v", p.ID, msg.err)
		return m
	}
	verb := "denied"
	if msg.approve {
		verb = "approved"
	}
	if p.Kind == supervise.KindQuestion {
		m.status = fmt.Sprintf("answered question %s (%s)", p.ID, verb)
		return m
	}
	host, port := p.Host, p.Port
	if msg.host != "" {
		host = msg.host
	}
	if msg.port != 0 {
		port = msg.port
	}
	m.status = fmt.Sprintf("%s %s:%d for %s", verb, host, port, clean(msg.item.Bottle))
	if msg.approve {
		m.allow = append(m.allow, supervise.AllowLine(host, port))
	}
	return m
}

// View renders the list, the selected request and the prompt, on the
// terminal's alternate screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	return v
}

// render returns the text of the screen.
func (m Model) render() string {
	var b strings.Builder
	now := m.now()
	fmt.Fprintf(&b, "bottle supervise — %d pending\n\n", len(m.items))
	if len(m.items) == 0 {
		b.WriteString("  no pending requests\n")
	}
	for i, it := range m.items {
		p := it.Proposal
		marker := "  "
		if i == m.cursor {
			marker = "> "
		}
		what := "question"
		if p.Kind == supervise.KindEgress {
			what = "egress " + clean(p.Host) + ":" + strconv.Itoa(p.Port)
		}
		fmt.Fprintf(&b, "%s%s  %s  %s  (%s left)\n", marker, p.ID, clean(it.Bottle), what, remaining(p, now))
	}
	if m.loadErr != nil {
		fmt.Fprintf(&b, "\n! %s\n", clean(m.loadErr.Error()))
	}
	if len(m.items) > 0 {
		it := m.items[m.cursor]
		if m.mode != modeList {
			it = m.target
		}
		b.WriteString("\n")
		writeDetail(&b, it)
	}
	b.WriteString("\n")
	switch m.mode {
	case modeHost:
		fmt.Fprintf(&b, "host: %s█\n", string(m.input))
	case modePort:
		fmt.Fprintf(&b, "port: %s█\n", string(m.input))
	case modeNote:
		label := "deny; note"
		switch {
		case m.target.Proposal.Kind == supervise.KindQuestion && m.approve:
			label = "answer"
		case m.approve:
			label = "approve; note"
		}
		fmt.Fprintf(&b, "%s: %s█\n", label, string(m.input))
	}
	if m.status != "" {
		fmt.Fprintf(&b, "%s\n", clean(m.status))
	}
	if len(m.allow) > 0 {
		b.WriteString("\nTo keep approved hosts after this bottle, add to the profile:\n")
		for _, l := range m.allow {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if m.mode == modeList {
		b.WriteString("\n↑/↓ select · a approve · d deny · e edit host/port and approve · r reload · q quit\n")
	} else {
		b.WriteString("\nenter confirm · esc cancel · ctrl+u clear\n")
	}
	return b.String()
}

func writeDetail(b *strings.Builder, it Item) {
	p := it.Proposal
	fmt.Fprintf(b, "%s from bottle %s, asked %s\n", p.ID, clean(it.Bottle), p.Created.Local().Format(time.DateTime))
	text := p.Reason
	label := "reason"
	if p.Kind == supervise.KindEgress {
		fmt.Fprintf(b, "  wants %s port %d\n", clean(p.Host), p.Port)
	} else {
		text, label = p.Question, "question"
	}
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			fmt.Fprintf(b, "  %s: %s\n", label, clean(line))
		} else {
			fmt.Fprintf(b, "    %s\n", clean(line))
		}
	}
}

// Run runs the UI on the alternate screen until the operator quits and
// returns the profile lines for the egress requests approved meanwhile (see
// Model.AllowLines), for the caller to print once the screen is restored.
func Run(load Loader, opts ...tea.ProgramOption) ([]string, error) {
	final, err := tea.NewProgram(New(load), opts...).Run()
	if err != nil {
		return nil, fmt.Errorf("supervise UI: %w", err)
	}
	m, ok := final.(Model)
	if !ok {
		return nil, fmt.Errorf("supervise UI ended with a %T", final)
	}
	return m.AllowLines(), nil
}

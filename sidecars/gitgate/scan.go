package gitgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gitleaks/go-gitdiff/gitdiff"
	"github.com/rs/zerolog"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	"github.com/zricethezav/gitleaks/v8/report"
	"github.com/zricethezav/gitleaks/v8/sources"
)

// Finding is one leak the secret scan found. It says where the secret is,
// never what it is.
type Finding struct {
	// RuleID is the gitleaks rule that matched ("aws-access-token").
	RuleID string
	// File is the path in the commit, or empty for a commit or tag message.
	File string
	// Line is the 1-based line in File (or in the message).
	Line int
	// Commit is the commit holding the secret, or the tag object for a tag message.
	Commit string
}

// String formats f for a "remote:" line and the log.
func (f Finding) String() string {
	where := "the message"
	if f.File != "" {
		where = strconv.Quote(f.File)
	}
	c := f.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	return fmt.Sprintf("%s in %s line %d of commit %s", f.RuleID, where, f.Line, c)
}

// silenceGitleaks turns gitleaks' package-level logger off, once.
var silenceGitleaks sync.Once

// scanner holds the gate-owned gitleaks detector.
type scanner struct {
	det *detect.Detector
}

// emptyTrees are the empty tree's names, used to make git read no
// .gitattributes from the pushed commits: a "-diff" attribute would
// otherwise turn a file into "binary" and hide its content from the scan.
var emptyTrees = map[string]string{
	"sha1":   "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
	"sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}

// newScanner builds the detector from gitleaks' built-in default rules and
// nothing the pushed repository controls:
//   - its own viper instance reads the embedded default config, so no
//     .gitleaks.toml, GITLEAKS_CONFIG or global viper state is involved;
//   - allowlist entries that skip files by path alone are removed (a
//     secret in "x.png", "node_modules/…" or "go.sum" is still a secret);
//     allowlists of known false-positive values stay;
//   - IgnoreGitleaksAllow makes gitleaks report findings on lines that
//     carry an inline "gitleaks:allow" comment;
//   - no .gitleaksignore or baseline is ever loaded;
//   - gitleaks' own logger is silenced: at trace level it logs secret values.
func newScanner() (*scanner, error) {
	silenceGitleaks.Do(func() { logging.Logger = zerolog.Nop() })
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		return nil, fmt.Errorf("read gitleaks default config: %w", err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return nil, fmt.Errorf("read gitleaks default config: %w", err)
	}
	cfg, err := vc.Translate()
	if err != nil {
		return nil, fmt.Errorf("load gitleaks default config: %w", err)
	}
	cfg.Path = ""
	cfg.Allowlists = withoutPathAllowlists(cfg.Allowlists)
	for id, r := range cfg.Rules {
		r.Allowlists = withoutPathAllowlists(r.Allowlists)
		cfg.Rules[id] = r
	}
	det := detect.NewDetector(cfg)
	det.IgnoreGitleaksAllow = true
	det.MaxDecodeDepth = 5 // gitleaks' CLI default: also look inside base64, hex and percent encodings
	return &scanner{det: det}, nil
}

// withoutPathAllowlists drops the path condition of every allowlist that
// matches on any one condition ("OR"), and the allowlists left empty.
// Allowlists that need all conditions ("AND") only get narrower with a path,
// so they stay as they are.
func withoutPathAllowlists(in []*config.Allowlist) []*config.Allowlist {
	var out []*config.Allowlist
	for _, a := range in {
		if a.MatchCondition == config.AllowlistMatchAnd || len(a.Paths) == 0 {
			out = append(out, a)
			continue
		}
		na := &config.Allowlist{
			Description:    a.Description,
			MatchCondition: a.MatchCondition,
			Commits:        a.Commits,
			RegexTarget:    a.RegexTarget,
			Regexes:        a.Regexes,
			StopWords:      a.StopWords,
		}
		if na.Validate() == nil { // an error means nothing but paths was left
			out = append(out, na)
		}
	}
	return out
}

// detect scans one fragment and returns its findings, located.
func (s *scanner) detect(f sources.Fragment) []Finding {
	var out []Finding
	//lint:ignore SA1019 Detect takes the deprecated alias until gitleaks v9.
	for _, rf := range s.det.Detect(detect.Fragment(f)) {
		out = append(out, findingOf(rf))
	}
	return out
}

// detectPool runs the detector on fragments in parallel: gitleaks' decoding
// passes make it CPU-bound, and the detector is safe for concurrent use.
type detectPool struct {
	s        *scanner
	ch       chan sources.Fragment
	wg       sync.WaitGroup
	mu       sync.Mutex
	findings []Finding
	bytes    int64
	stopped  bool
}

// start starts one detector worker per CPU.
func (s *scanner) start() *detectPool {
	p := &detectPool{s: s, ch: make(chan sources.Fragment, 64)}
	for range runtime.GOMAXPROCS(0) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for fr := range p.ch {
				fs := s.detect(fr)
				p.mu.Lock()
				p.findings = append(p.findings, fs...)
				p.bytes += int64(len(fr.Raw))
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// add queues a fragment for detection.
func (p *detectPool) add(fr sources.Fragment) { p.ch <- fr }

// stop waits for the queued fragments and returns all findings and the
// number of bytes scanned. It may be called more than once.
func (p *detectPool) stop() ([]Finding, int64) {
	if !p.stopped {
		p.stopped = true
		close(p.ch)
		p.wg.Wait()
	}
	return p.findings, p.bytes
}

// findingOf keeps the location of a gitleaks finding and drops its secret,
// match and line.
func findingOf(rf report.Finding) Finding {
	return Finding{RuleID: rf.RuleID, File: rf.File, Line: rf.StartLine, Commit: rf.Commit}
}

// scanStats says how much a scan looked at.
type scanStats struct {
	commits int
	bytes   int64
}

// commitParents is one new commit and its parents.
type commitParents struct {
	sha     string
	parents []string
}

// scanPush scans everything the live commands would add upstream: every
// commit not already reachable from a mirror ref (for an existing branch
// that is old..new less what upstream already has; for a new ref, all of
// its commits upstream lacks), the message of each, and new annotated tags.
// A commit with one parent (or none) is scanned as its diff to the parent;
// a merge as the lines that are new relative to every parent, which is what
// the merge itself introduces (conflict resolutions, evil merges).
func (g *Gate) scanPush(ctx context.Context, dir string, qenv []string, cmds []*command) ([]Finding, scanStats, error) {
	var st scanStats
	format, err := g.objectFormat(ctx, dir)
	if err != nil {
		return nil, st, err
	}
	var news []string
	for _, c := range cmds {
		if !c.isDelete() {
			news = append(news, c.new)
		}
	}
	if len(news) == 0 {
		return nil, st, nil
	}
	sg := &scanGit{g: g, ctx: ctx, dir: dir, env: qenv, emptyTree: emptyTrees[format]}
	out, err := sg.run(nil, append(append([]string{"rev-list", "--parents"}, news...), "--not", "--all")...)
	if err != nil {
		return nil, st, err
	}
	var linear, merges []commitParents
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		cp := commitParents{sha: f[0], parents: f[1:]}
		if len(cp.parents) > 1 {
			merges = append(merges, cp)
		} else {
			linear = append(linear, cp)
		}
	}
	st.commits = len(linear) + len(merges)

	pool := g.scanner.start()
	defer pool.stop()
	add := pool.add
	if err := sg.scanLinear(linear, add); err != nil {
		return nil, st, err
	}
	for _, m := range merges {
		if err := sg.scanMerge(m, add); err != nil {
			return nil, st, err
		}
	}
	if err := sg.scanMessages(append(linear, merges...), add); err != nil {
		return nil, st, err
	}
	if err := sg.scanTags(news, add); err != nil {
		return nil, st, err
	}
	findings, bytes := pool.stop()
	st.bytes = bytes
	return dedupe(findings), st, nil
}

// scanGit runs the git commands of one scan.
type scanGit struct {
	g         *Gate
	ctx       context.Context
	dir       string
	env       []string
	emptyTree string
}

// diffFlags make git's diffs complete and plain: no external diff or
// textconv drivers (and, with attr.tree, no attributes from the pushed
// trees), renames detected so that a moved file is not scanned as new. The
// line counts that check the parse use the same flags.
func (s *scanGit) diffFlags() []string {
	return []string{"-M", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/"}
}

// patchFlags are diffFlags plus a patch with no context lines.
func (s *scanGit) patchFlags() []string {
	return append([]string{"-U0"}, s.diffFlags()...)
}

func (s *scanGit) run(stdin io.Reader, args ...string) ([]byte, error) {
	return s.g.run(s.ctx, gitCmd{dir: s.dir, env: s.env, stdin: stdin, args: append([]string{"-c", "attr.tree=" + s.emptyTree}, args...)}, credential{})
}

// stream runs git with its stdout handed to consume while it runs.
func (s *scanGit) stream(stdin io.Reader, consume func(io.Reader) error, args ...string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := consume(pr)
		_, _ = io.Copy(io.Discard, pr) // let git finish even if consume stopped early
		done <- err
	}()
	_, err := s.g.run(s.ctx, gitCmd{dir: s.dir, env: s.env, stdin: stdin, stdout: pw,
		args: append([]string{"-c", "attr.tree=" + s.emptyTree}, args...)}, credential{})
	pw.Close()
	if cerr := <-done; err == nil {
		err = cerr
	}
	return err
}

// addedFile is what one file of a diff adds.
type addedFile struct {
	path   string
	binary bool
	lines  []addedLine // in new-file order
}

type addedLine struct {
	n    int // 1-based line number in the new file
	text string
}

// parsePatch reads git patch output and calls each for every file that is
// not deleted, with the commit from the "commit <sha>" header before it
// (empty for plain diffs). It returns the number of added lines per commit.
func parsePatch(r io.Reader, each func(commit string, f addedFile)) (map[string]int, error) {
	files, err := gitdiff.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("parse diff: %w", err)
	}
	counts := make(map[string]int)
	for f := range files {
		commit := ""
		if f.PatchHeader != nil {
			commit = f.PatchHeader.SHA
		}
		af := addedFile{path: f.NewName, binary: f.IsBinary}
		for _, tf := range f.TextFragments {
			n := int(tf.NewPosition)
			for _, l := range tf.Lines {
				switch l.Op {
				case gitdiff.OpAdd:
					af.lines = append(af.lines, addedLine{n: n, text: l.Line})
					counts[commit]++
					n++
				case gitdiff.OpContext:
					n++
				}
			}
		}
		if !f.IsDelete {
			each(commit, af)
		}
	}
	return counts, nil
}

// fragments turns a file's added lines into one gitleaks fragment per run
// of consecutive lines, each starting at its line number so that findings
// carry the file's real line numbers. A file that adds no text still gets
// one (empty) fragment, so that gitleaks' path rules ("pkcs12-file") see it.
func fragments(commit string, f addedFile) []sources.Fragment {
	var out []sources.Fragment
	var b strings.Builder
	start, next := 0, -1
	flush := func() {
		if b.Len() > 0 {
			out = append(out, sources.Fragment{Raw: b.String(), FilePath: f.path, CommitSHA: commit, StartLine: start})
			b.Reset()
		}
	}
	for _, l := range f.lines {
		if l.n != next {
			flush()
			start = l.n
		}
		b.WriteString(l.text)
		next = l.n + 1
	}
	flush()
	if len(out) == 0 {
		out = append(out, sources.Fragment{FilePath: f.path, CommitSHA: commit})
	}
	return out
}

// scanLinear scans commits with at most one parent from one `git log -p`,
// and checks that the parse saw every added line git counts.
func (s *scanGit) scanLinear(commits []commitParents, add func(sources.Fragment)) error {
	if len(commits) == 0 {
		return nil
	}
	var list strings.Builder
	for _, c := range commits {
		list.WriteString(c.sha + "\n")
	}
	var counts map[string]int
	args := append([]string{"log", "--root", "--format=commit %H", "--no-walk=unsorted", "--stdin"}, s.patchFlags()...)
	err := s.stream(strings.NewReader(list.String()), func(r io.Reader) error {
		var err error
		counts, err = parsePatch(r, func(commit string, f addedFile) {
			for _, fr := range fragments(commit, f) {
				add(fr)
			}
		})
		return err
	}, args...)
	if err != nil {
		return fmt.Errorf("diff new commits: %w", err)
	}
	out, err := s.run(strings.NewReader(list.String()), append([]string{"log", "--shortstat", "--root", "--format=commit %H", "--no-walk=unsorted", "--stdin"}, s.diffFlags()...)...)
	if err != nil {
		return fmt.Errorf("count new lines: %w", err)
	}
	want := parseShortstats(string(out))
	for _, c := range commits {
		if counts[c.sha] != want[c.sha] {
			return fmt.Errorf("the diff of commit %s has %d added lines but the scan parsed %d; refusing rather than scanning part of it", c.sha, want[c.sha], counts[c.sha])
		}
	}
	return nil
}

// parseShortstats reads `git log --shortstat --format="commit %H"` output
// into added lines per commit.
func parseShortstats(out string) map[string]int {
	m := make(map[string]int)
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if sha, ok := strings.CutPrefix(line, "commit "); ok {
			cur = sha
			continue
		}
		m[cur] += insertions(line)
	}
	return m
}

// insertions reads the "N insertions(+)" count of a shortstat line.
func insertions(line string) int {
	for _, part := range strings.Split(line, ",") {
		f := strings.Fields(part)
		if len(f) == 2 && strings.HasPrefix(f[1], "insertion") {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}

// scanMerge scans what merge m adds relative to all of its parents: the
// lines that are added in its diff against every parent. Lines that come
// unchanged from one parent were scanned with that parent's own commits,
// or are already upstream.
func (s *scanGit) scanMerge(m commitParents, add func(sources.Fragment)) error {
	var common map[string]addedFile
	for i, p := range m.parents {
		files := make(map[string]addedFile)
		out, err := s.run(nil, append(append([]string{"diff"}, s.patchFlags()...), p, m.sha)...)
		if err != nil {
			return fmt.Errorf("diff merge %s against parent %s: %w", m.sha, p, err)
		}
		counts, err := parsePatch(strings.NewReader(string(out)), func(_ string, f addedFile) { files[f.path] = f })
		if err != nil {
			return err
		}
		stat, err := s.run(nil, append(append([]string{"diff", "--shortstat"}, s.diffFlags()...), p, m.sha)...)
		if err != nil {
			return fmt.Errorf("count lines of merge %s: %w", m.sha, err)
		}
		if want := insertions(string(stat)); counts[""] != want {
			return fmt.Errorf("the diff of merge %s against %s has %d added lines but the scan parsed %d; refusing rather than scanning part of it", m.sha, p, want, counts[""])
		}
		if i == 0 {
			common = files
			continue
		}
		for path, cf := range common {
			f, ok := files[path]
			if !ok {
				delete(common, path)
				continue
			}
			in := make(map[int]bool, len(f.lines))
			for _, l := range f.lines {
				in[l.n] = true
			}
			cf.lines = slices.DeleteFunc(cf.lines, func(l addedLine) bool { return !in[l.n] })
			cf.binary = cf.binary && f.binary
			common[path] = cf
		}
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range common {
			if !yield(p) {
				return
			}
		}
	})
	for _, p := range paths {
		for _, fr := range fragments(m.sha, common[p]) {
			add(fr)
		}
	}
	return nil
}

// scanMessages scans the message of every new commit.
func (s *scanGit) scanMessages(commits []commitParents, add func(sources.Fragment)) error {
	if len(commits) == 0 {
		return nil
	}
	var list strings.Builder
	for _, c := range commits {
		list.WriteString(c.sha + "\n")
	}
	out, err := s.run(strings.NewReader(list.String()), "log", "-z", "--format=%H%n%B", "--no-walk=unsorted", "--stdin")
	if err != nil {
		return fmt.Errorf("read commit messages: %w", err)
	}
	for _, entry := range strings.Split(string(out), "\x00") {
		sha, msg, ok := strings.Cut(entry, "\n")
		if ok && msg != "" {
			add(sources.Fragment{Raw: msg, CommitSHA: sha, StartLine: 1})
		}
	}
	return nil
}

// scanTags scans the annotated tag objects among the pushed objects.
func (s *scanGit) scanTags(news []string, add func(sources.Fragment)) error {
	var in strings.Builder
	for _, o := range news {
		in.WriteString(o + "\n")
	}
	out, err := s.run(strings.NewReader(in.String()), "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return fmt.Errorf("read pushed objects: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		oid, kind, _ := strings.Cut(line, " ")
		if kind != "tag" {
			continue
		}
		body, err := s.run(nil, "cat-file", "tag", oid)
		if err != nil {
			return fmt.Errorf("read tag %s: %w", oid, err)
		}
		add(sources.Fragment{Raw: string(body), CommitSHA: oid, StartLine: 1})
	}
	return nil
}

// dedupe drops repeated findings (a path rule fires once per fragment of
// a file) and sorts the rest.
func dedupe(fs []Finding) []Finding {
	slices.SortFunc(fs, func(a, b Finding) int {
		return strings.Compare(fmt.Sprintf("%s\x00%s\x00%09d\x00%s", a.Commit, a.File, a.Line, a.RuleID),
			fmt.Sprintf("%s\x00%s\x00%09d\x00%s", b.Commit, b.File, b.Line, b.RuleID))
	})
	return slices.Compact(fs)
}

// exitCode returns the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

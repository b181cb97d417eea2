package gitgate

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/sources"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"

	"github.com/bottle-dev/bottle/internal/leakrules"
)

// Places a Finding can be in (Finding.Where).
const (
	WhereFile     = "file"      // a blob's content, or a member of an archive blob
	WherePathName = "path name" // a file or directory name in a tree
	WhereRefName  = "ref name"  // the name of a ref the push updates
	WhereCommit   = "commit"    // a commit object: headers, identities, message
	WhereTag      = "tag"       // an annotated tag object: headers, tagger, message
)

// Finding is one leak the secret scan found. It says where the secret is,
// never what it is.
type Finding struct {
	// RuleID is the gitleaks rule that matched ("aws-access-token").
	RuleID string
	// Where is one of the Where* constants.
	Where string
	// File is the path of the blob in its commit (WhereFile), with
	// "!member" appended for a member of an archive. It is empty when the
	// path itself matches a rule: then it is withheld.
	File string
	// Line is the 1-based line in the file, or in the message of a commit
	// or tag; for a commit or tag header (Header true) the line of the
	// object; for a tree, the entry's position in it.
	Line int
	// Header is true for a finding in a commit's or tag's header lines
	// (author, committer, tagger, encoding, signatures, extra headers).
	Header bool
	// Commit is the commit that holds the blob, tree or message; for a
	// tag, the tag object.
	Commit string
	// Object is the tree of a path-name finding, or the blob of a file
	// finding.
	Object string
	// Update is the 1-based position, in the push, of the ref update whose
	// name holds the secret (WhereRefName).
	Update int
	// Decoded names how the scanned text was decoded from the object's
	// bytes: "" (as stored), "UTF-16", "NUL bytes removed", "gunzipped",
	// "message decoded as ISO-8859-1", …
	Decoded string

	// headerLines is, while scanning a commit or tag object, the number
	// of its header lines, to tell header from message.
	headerLines int
}

// String formats f for a "remote:" line and the log.
func (f Finding) String() string {
	var where string
	switch f.Where {
	case WhereRefName:
		where = fmt.Sprintf("the ref name of update %d of this push", f.Update)
	case WherePathName:
		where = fmt.Sprintf("a file or directory name (entry %d) in tree %s of commit %s", f.Line, short(f.Object), short(f.Commit))
	case WhereCommit:
		if f.Header {
			where = fmt.Sprintf("the header of commit %s line %d", short(f.Commit), f.Line)
		} else {
			where = fmt.Sprintf("the message line %d of commit %s", f.Line, short(f.Commit))
		}
	case WhereTag:
		if f.Header {
			where = fmt.Sprintf("the header of tag %s line %d", short(f.Commit), f.Line)
		} else {
			where = fmt.Sprintf("the message line %d of tag %s", f.Line, short(f.Commit))
		}
	default:
		file := "a file whose name is withheld"
		if f.File != "" {
			file = strconv.Quote(f.File)
		}
		where = fmt.Sprintf("%s line %d of commit %s", file, f.Line, short(f.Commit))
	}
	if f.Decoded != "" {
		where += " (" + f.Decoded + ")"
	}
	return f.RuleID + " in " + where
}

func short(oid string) string {
	if len(oid) > 12 {
		return oid[:12]
	}
	return oid
}

// scanner holds the gate-owned gitleaks detector.
type scanner struct {
	det *detect.Detector
}

// newScanner returns a scanner with the detector that leakrules builds
// from gitleaks' built-in default rules and nothing the pushed repository
// controls: no .gitleaks.toml, .gitleaksignore or path allowlist, and
// "gitleaks:allow" comments reported.
func newScanner() (*scanner, error) {
	det, err := leakrules.Detector()
	if err != nil {
		return nil, err
	}
	return &scanner{det: det}, nil
}

// hit is a finding with the matched secret, which never leaves the scan:
// it is kept only to compare with what upstream already has.
type hit struct {
	Finding
	secret string
}

// detect scans one text and returns its hits, placed at p. The text's
// first line is line 1 of p plus firstLine-1.
func (s *scanner) detect(text string, firstLine int, p Finding) []hit {
	fr := sources.Fragment{Raw: text, StartLine: firstLine}
	if p.Where == WhereFile {
		fr.FilePath = p.File // for gitleaks' path rules ("pkcs12-file")
	}
	var out []hit
	//lint:ignore SA1019 Detect takes the deprecated alias until gitleaks v9.
	for _, rf := range s.det.Detect(detect.Fragment(fr)) {
		h := hit{Finding: p, secret: rf.Secret}
		h.RuleID, h.Line = rf.RuleID, rf.StartLine
		if h.Where == WhereCommit || h.Where == WhereTag {
			if h.Line <= h.headerLines {
				h.Header = true
			} else {
				h.Line -= h.headerLines + 1
			}
		}
		h.headerLines = 0
		out = append(out, h)
	}
	return out
}

// matches reports whether text matches any rule; it is used to withhold
// a path that would show a secret.
func (s *scanner) matches(text string) bool {
	return len(s.detect(text, 1, Finding{Where: WhereRefName})) > 0
}

// withhold returns text with every secret the detector finds in it
// replaced by "[withheld: <rule>]". When a finding cannot be cut out (it
// was found in a decoded form, or replacing did not remove it), the whole
// text is replaced by a notice. Every log line and every message of the
// gate's own passes through it, since git's errors and the gate's quote
// what a client sent (ref names, file names, .gitmodules URLs).
func (s *scanner) withhold(text string) string {
	for range 4 {
		hits := s.detect(text, 1, Finding{Where: WhereRefName})
		if len(hits) == 0 {
			return text
		}
		for _, h := range hits {
			if h.secret == "" || !strings.Contains(text, h.secret) {
				return "[withheld: this text matches the secret rule " + h.RuleID + "]"
			}
			text = strings.ReplaceAll(text, h.secret, "[withheld: "+h.RuleID+"]")
		}
	}
	return "[withheld: this text matches a secret rule]"
}

// withholdAttr withholds secrets from a log attribute's strings before
// they are encoded: JSON escapes (a tab before a key becomes "\t") can
// hide a secret from the scan of the encoded line, which withholdWriter
// still does as a second layer.
func (s *scanner) withholdAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value.Any().(type) {
	case string:
		return slog.String(a.Key, s.withhold(v))
	case []string:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = s.withhold(e)
		}
		return slog.Any(a.Key, out)
	}
	return a
}

// withholdWriter writes each line (slog's JSON handler writes one per
// call) with its secrets withheld; a line withheld whole becomes a JSON
// object saying so.
type withholdWriter struct {
	w  io.Writer
	sc *scanner
}

func (ww withholdWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	out := ww.sc.withhold(line)
	if out != line && strings.HasPrefix(out, "[withheld: this text") {
		out = fmt.Sprintf(`{"level":"WARN","msg":%q}`, "log line withheld: "+strings.Trim(out, "[]"))
	}
	if _, err := io.WriteString(ww.w, out+"\n"); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Fragments: a text longer than fragmentSize is scanned in pieces that
// overlap by at least fragmentOverlap, so that the pieces run on every CPU
// and a match that crosses a boundary is still seen whole (gitleaks'
// longest patterns, armored private keys, are a few KiB). Small pieces
// also scan faster: gitleaks runs only the rules whose keywords occur in
// a fragment, and in a large one nearly all of them do.
const (
	fragmentSize    = 128 << 10
	fragmentOverlap = 16 << 10
)

type job struct {
	text      string
	firstLine int
	place     Finding
}

// detectPool runs the detector on texts in parallel: gitleaks' decoding
// passes make it CPU-bound, and the detector is safe for concurrent use.
type detectPool struct {
	s       *scanner
	ch      chan job
	wg      sync.WaitGroup
	mu      sync.Mutex
	hits    []hit
	bytes   int64
	stopped bool
}

// start starts one detector worker per CPU.
func (s *scanner) start() *detectPool {
	p := &detectPool{s: s, ch: make(chan job, 2*runtime.GOMAXPROCS(0))}
	for range runtime.GOMAXPROCS(0) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.ch {
				hs := s.detect(j.text, j.firstLine, j.place)
				p.mu.Lock()
				p.hits = append(p.hits, hs...)
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// add queues text, placed at p, for detection, in overlapping pieces.
// Even an empty text is queued once, for gitleaks' path rules.
func (p *detectPool) add(text string, place Finding) {
	p.mu.Lock()
	p.bytes += int64(len(text))
	p.mu.Unlock()
	pieces(text, func(piece string, _, firstLine int) {
		p.ch <- job{text: piece, firstLine: firstLine, place: place}
	})
}

// pieces cuts text into pieces of at most fragmentSize bytes, each ending
// at a line end where one is near, that overlap by at least
// fragmentOverlap, and calls yield with each, its offset in text and the
// line it starts on.
func pieces(text string, yield func(piece string, offset, firstLine int)) {
	line := 1
	for start := 0; ; {
		end := min(len(text), start+fragmentSize)
		if end < len(text) {
			if i := strings.LastIndexByte(text[start+fragmentSize/2:end], '\n'); i >= 0 {
				end = start + fragmentSize/2 + i + 1
			}
		}
		yield(text[start:end], start, line)
		if end == len(text) {
			return
		}
		// Start the next piece at the start of the line that holds
		// end-fragmentOverlap, unless that line is itself longer than
		// fragmentOverlap.
		next := end - fragmentOverlap
		if i := strings.LastIndexByte(text[start+1:next], '\n'); i >= 0 && next-(start+i+2) < fragmentOverlap {
			next = start + i + 2
		}
		line += strings.Count(text[start:next], "\n")
		start = next
	}
}

// stop waits for the queued texts and returns all hits and the number of
// bytes scanned. It may be called more than once.
func (p *detectPool) stop() ([]hit, int64) {
	if !p.stopped {
		p.stopped = true
		close(p.ch)
		p.wg.Wait()
	}
	return p.hits, p.bytes
}

// scanStats says how much a scan looked at.
type scanStats struct {
	commits int   // new commits
	objects int   // new objects of every type
	size    int64 // their total size, as stored (uncompressed)
	bytes   int64 // bytes given to the detector, decoded views included
}

// PushTooLargeError refuses a push that adds more than the gate scans.
type PushTooLargeError struct {
	Size  int64 // bytes the push adds (or had sent when it was stopped)
	Limit int64 // the gate's limit
	Pack  bool  // Size counts the pack as sent, not the objects in it
}

func (e *PushTooLargeError) Error() string {
	what := "of new objects"
	if e.Pack {
		what = "of pack data"
	}
	return fmt.Sprintf("the push carries more than the gate's limit of %s %s (%s so far); the gate scans at most max_push_size per push: split the push, or raise max_push_size in the profile",
		formatBytes(e.Limit), what, formatBytes(e.Size))
}

// formatBytes renders n bytes for a message: "100 MiB", "3.2 GiB".
func formatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/float64(u.size)), ".0") + " " + u.name
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// scanPush scans everything the live commands would add upstream, in the
// form it is stored:
//   - the name of every ref the push updates or deletes;
//   - every object reachable from the new values that is not reachable
//     from a ref the mirror (that is, upstream) has, as `git rev-list
//     --objects` finds them: each commit object whole (tree and parent
//     lines, author and committer, encoding, signatures, any other header,
//     the message); each annotated tag object whole, through tags of
//     tags; every entry name of each tree (and the object name of a
//     submodule entry, which its author chooses freely); every blob's bytes
//     in full, whatever git would call them;
//   - the decoded views of those bytes (scanView): UTF-16 text with a
//     byte-order mark, text with NUL bytes between its characters, gzip and
//     zip contents, and a commit message in the encoding its header names.
//
// A secret found in a blob is forgiven only when the same rule matches the
// same text in the file at the same path in a commit upstream already has
// that the push builds on: an existing file that already held it, edited.
//
// It returns a *PushTooLargeError when the new objects, or their
// decompressed archive members, exceed limit bytes, and any other error
// when something could not be read or decoded: the caller refuses the push
// either way.
func (g *Gate) scanPush(ctx context.Context, dir string, qenv []string, cmds []*command, limit int64) ([]Finding, scanStats, error) {
	var st scanStats
	format, err := g.objectFormat(ctx, dir)
	if err != nil {
		return nil, st, err
	}
	sg := &scanGit{g: g, ctx: ctx, dir: dir, env: qenv}
	pool := g.scanner.start()
	defer pool.stop()

	for _, c := range cmds {
		pool.add(c.ref, Finding{Where: WhereRefName, Update: c.n})
	}

	objs, boundary, err := sg.newObjects(cmds)
	if err != nil {
		return nil, st, err
	}
	for _, o := range objs {
		st.objects++
		st.size += o.size
		if o.kind == "commit" {
			st.commits++
		}
	}
	if st.size > limit {
		return nil, st, &PushTooLargeError{Size: st.size, Limit: limit}
	}
	v := &viewer{pool: pool, budget: limit, limit: limit, hashLen: hashLen(format), paths: map[string]map[string]bool{}}
	if err := sg.eachContent(objs, v.object); err != nil {
		return nil, st, err
	}
	hits, bytes := pool.stop()
	st.bytes = bytes
	hits, err = sg.forgiveUpstream(hits, boundary, v.paths, g.scanner, limit)
	if err != nil {
		return nil, st, err
	}
	out := make([]Finding, 0, len(hits))
	for _, h := range hits {
		if h.Where == WhereFile && h.File != "" && g.scanner.matches(h.File) {
			h.File = ""
		}
		out = append(out, h.Finding)
	}
	return dedupe(out), st, nil
}

func hashLen(format string) int {
	if format == "sha256" {
		return 32
	}
	return 20
}

// scanGit runs the git commands of one scan.
type scanGit struct {
	g   *Gate
	ctx context.Context
	dir string
	env []string
}

func (s *scanGit) run(stdin io.Reader, args ...string) ([]byte, error) {
	return s.g.run(s.ctx, gitCmd{dir: s.dir, env: s.env, stdin: stdin, args: args}, credential{})
}

// newObject is one object the push would add upstream.
type newObject struct {
	oid, kind string
	size      int64
	path      string // for a blob or tree: a path it has in commit
	commit    string // for a blob or tree: the first new commit found to hold it
}

// newObjects lists, with `git rev-list --objects --in-commit-order
// --topo-order --reverse` (oldest first, so that a blob or tree is placed
// in the commit that brought it), every
// object reachable from the commands' new values and not from the
// mirror's branches and tags, and the boundary: the upstream commits the
// new ones build on.
func (s *scanGit) newObjects(cmds []*command) ([]newObject, []string, error) {
	out, err := s.run(nil, "for-each-ref", "--format=%(objectname)", "refs/heads/", "refs/tags/")
	if err != nil {
		return nil, nil, err
	}
	var in strings.Builder
	for _, c := range cmds {
		if !c.isDelete() {
			in.WriteString(c.new + "\n")
		}
	}
	if in.Len() == 0 {
		return nil, nil, nil
	}
	for _, oid := range strings.Fields(string(out)) {
		in.WriteString("^" + oid + "\n")
	}
	out, err = s.run(strings.NewReader(in.String()), "rev-list", "--objects", "--in-commit-order", "--topo-order", "--reverse", "--boundary", "--stdin")
	if err != nil {
		return nil, nil, fmt.Errorf("list new objects: %w", err)
	}
	var objs []newObject
	var boundary []string
	var list strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		if b, ok := strings.CutPrefix(line, "-"); ok {
			boundary = append(boundary, b)
			continue
		}
		oid, path, _ := strings.Cut(line, " ")
		if !isOID(oid) {
			return nil, nil, fmt.Errorf("list new objects: unexpected line %q", line)
		}
		objs = append(objs, newObject{oid: oid, path: path})
		list.WriteString(oid + "\n")
	}
	if len(objs) == 0 {
		return nil, boundary, nil
	}
	out, err = s.run(strings.NewReader(list.String()), "cat-file", "--batch-check=%(objecttype) %(objectsize)")
	if err != nil {
		return nil, nil, fmt.Errorf("read new objects: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(objs) {
		return nil, nil, fmt.Errorf("read new objects: %d answers for %d objects", len(lines), len(objs))
	}
	commit := ""
	for i := range objs {
		kind, size, _ := strings.Cut(lines[i], " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || !slices.Contains([]string{"commit", "tree", "blob", "tag"}, kind) {
			return nil, nil, fmt.Errorf("cannot read object %s: %q", objs[i].oid, lines[i])
		}
		objs[i].kind, objs[i].size = kind, n
		switch kind {
		case "commit":
			commit = objs[i].oid
		case "tree", "blob":
			objs[i].commit = commit
		}
	}
	return objs, boundary, nil
}

// eachContent streams the objects' contents from one `git cat-file
// --batch` and hands each to f in order.
func (s *scanGit) eachContent(objs []newObject, f func(newObject, []byte) error) error {
	if len(objs) == 0 {
		return nil
	}
	var list strings.Builder
	for _, o := range objs {
		list.WriteString(o.oid + "\n")
	}
	return s.stream(strings.NewReader(list.String()), func(r io.Reader) error {
		br := bufio.NewReaderSize(r, 64<<10)
		for _, o := range objs {
			data, err := readBatchEntry(br, o.oid)
			if err != nil {
				return err
			}
			if err := f(o, data); err != nil {
				return err
			}
		}
		return nil
	}, "cat-file", "--batch")
}

// readBatchEntry reads one "<oid> <type> <size>\n<content>\n" entry of
// `git cat-file --batch` output.
func readBatchEntry(br *bufio.Reader, oid string) ([]byte, error) {
	hdr, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read object %s: %w", oid, err)
	}
	f := strings.Fields(hdr)
	if len(f) != 3 || f[0] != oid {
		return nil, fmt.Errorf("cannot read object %s: git answered %q", oid, strings.TrimSpace(hdr))
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("cannot read object %s: git answered %q", oid, strings.TrimSpace(hdr))
	}
	data := make([]byte, n+1)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("read object %s: %w", oid, err)
	}
	return data[:n], nil
}

// stream runs git with its stdout handed to consume while it runs.
func (s *scanGit) stream(stdin io.Reader, consume func(io.Reader) error, args ...string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := consume(pr)
		pr.CloseWithError(errors.New("scan stopped"))
		done <- err
	}()
	_, err := s.g.run(s.ctx, gitCmd{dir: s.dir, env: s.env, stdin: stdin, stdout: pw, args: args}, credential{})
	pw.Close()
	if cerr := <-done; cerr != nil {
		return cerr
	}
	return err
}

// viewer turns objects into the texts the detector reads.
type viewer struct {
	pool    *detectPool
	budget  int64 // decompressed bytes still allowed
	limit   int64
	hashLen int
	// paths holds, for each blob an entry of a new tree names, the paths
	// it has there (a tree's path as rev-list gives it, then the entry).
	paths map[string]map[string]bool
}

// maxArchiveDepth bounds archives inside archives.
const maxArchiveDepth = 4

func (v *viewer) object(o newObject, data []byte) error {
	switch o.kind {
	case "blob":
		return v.content(data, Finding{Where: WhereFile, File: o.path, Commit: o.commit, Object: o.oid}, 0)
	case "tree":
		return v.tree(o, data)
	case "commit", "tag":
		where := WhereCommit
		if o.kind == "tag" {
			where = WhereTag
		}
		return v.message(data, Finding{Where: where, Commit: o.oid})
	}
	return fmt.Errorf("object %s has unexpected type %q", o.oid, o.kind)
}

// content queues a blob's (or archive member's) bytes as stored, and every
// decoded view of them.
func (v *viewer) content(data []byte, p Finding, depth int) error {
	v.pool.add(string(data), p)
	var err error
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}) && !bytes.HasPrefix(data, []byte{0xff, 0xfe, 0, 0}):
		err = v.decoded(data, p, "UTF-16", unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM))
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		err = v.decoded(data, p, "UTF-16", unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM))
	}
	if err != nil {
		return err
	}
	if bytes.IndexByte(data, 0) >= 0 {
		// UTF-16 or UTF-32 without a byte-order mark (or behind the wrong
		// one), or text inside a binary format: with the NUL bytes gone,
		// ASCII reads as ASCII.
		q := p
		q.Decoded = joinDecoded(p.Decoded, "NUL bytes removed")
		v.pool.add(string(bytes.ReplaceAll(data, []byte{0}, nil)), q)
	}
	return v.archive(data, p, depth)
}

func (v *viewer) decoded(data []byte, p Finding, name string, enc encoding.Encoding) error {
	text, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		return fmt.Errorf("cannot decode %s as %s: %w", describe(p), name, err)
	}
	p.Decoded = joinDecoded(p.Decoded, name)
	v.pool.add(string(text), p)
	return nil
}

func joinDecoded(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}

// describe names a place for an error message, without its content.
func describe(p Finding) string {
	switch p.Where {
	case WhereFile:
		return fmt.Sprintf("file %q of commit %s", p.File, short(p.Commit))
	case WhereCommit:
		return "commit " + short(p.Commit)
	case WhereTag:
		return "tag " + short(p.Commit)
	}
	return p.Where
}

// archive scans the members of gzip and zip data: what a viewer, or a
// person who unpacks it, reads. Data that says it is one but cannot be
// read as one cannot be scanned, so it refuses the push.
func (v *viewer) archive(data []byte, p Finding, depth int) error {
	isGzip := len(data) >= 3 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8
	startsZip := bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06"))
	// A zip may follow other data (a self-extracting archive): its
	// end record is in its last 64 KiB (the comment is at most 65535
	// bytes), and readers find it there.
	endsZip := bytes.Contains(data[max(0, len(data)-(22+65535)):], []byte("PK\x05\x06"))
	if !isGzip && !startsZip && !endsZip {
		return nil
	}
	if depth >= maxArchiveDepth {
		return fmt.Errorf("cannot scan %s: archives nested more than %d deep", describe(p), maxArchiveDepth)
	}
	if isGzip {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("cannot scan %s: it starts like gzip data but does not decompress: %w", describe(p), err)
		}
		out, err := v.readBounded(zr, p)
		if err != nil {
			return err
		}
		q := p
		q.Decoded = joinDecoded(p.Decoded, "gunzipped")
		return v.content(out, q, depth+1)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !startsZip {
		return nil // an end record by chance, in data that is no zip
	}
	if err != nil {
		return fmt.Errorf("cannot scan %s: it starts like a zip archive but cannot be read as one: %w", describe(p), err)
	}
	if err := checkZipLayout(data, zr, v.budget); err != nil {
		var tl *PushTooLargeError
		if errors.As(err, &tl) {
			return err
		}
		return fmt.Errorf("cannot scan %s: it is a zip archive that readers would unpack differently: %w", describe(p), err)
	}
	var names strings.Builder
	for _, f := range zr.File {
		names.WriteString(f.Name + "\n" + f.Comment + "\n")
	}
	q := p
	q.Decoded = joinDecoded(p.Decoded, "zip member names")
	v.pool.add(names.String()+zr.Comment, q)
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		if f.Flags&0x1 != 0 {
			return fmt.Errorf("cannot scan %s: zip member %d is encrypted", describe(p), slices.Index(zr.File, f)+1)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("cannot scan %s: zip member %d: %w", describe(p), slices.Index(zr.File, f)+1, err)
		}
		out, err := v.readBounded(rc, p)
		rc.Close()
		if err != nil {
			return err
		}
		m := p
		m.File = p.File + "!" + f.Name
		m.Decoded = joinDecoded(p.Decoded, "unzipped")
		if err := v.content(out, m, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkZipLayout refuses a zip that readers can unpack differently.
// Go's reader (and Info-ZIP's listing) follows the central directory;
// streaming readers (Java's ZipInputStream, unzip on a pipe) follow the
// local headers in order. The scan reads members the first way, so the two
// must agree:
//   - every local file header signature is either inside a listed
//     member's data (a stored archive in it) or the local header of a
//     listed member, and every listed member has one;
//   - a member's local header names it the same, with the same method and
//     flags, and (without a data descriptor) the same CRC and sizes; zip64
//     local sizes are refused (a push is far below 4 GiB);
//   - a deflated member's stream ends exactly at its listed size, and a
//     stored one has no data descriptor (its end would be unknowable).
func checkZipLayout(data []byte, zr *zip.Reader, budget int64) error {
	type span struct{ from, to int64 }
	spans := make([]span, 0, len(zr.File))
	byData := make(map[int64]*zip.File, len(zr.File))
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil {
			return err
		}
		if byData[off] != nil {
			return errors.New("two members share their data")
		}
		byData[off] = f
		spans = append(spans, span{off, off + int64(f.CompressedSize64)})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	seen := make(map[*zip.File]bool, len(zr.File))
	sig := []byte("PK\x03\x04")
	for i := 0; ; {
		j := bytes.Index(data[i:], sig)
		if j < 0 {
			break
		}
		p := int64(i + j)
		i += j + 1
		k, _ := slices.BinarySearchFunc(spans, p+1, func(s span, t int64) int { return cmp.Compare(s.from, t) })
		if k > 0 && p < spans[k-1].to {
			continue
		}
		if p+30 > int64(len(data)) {
			return errors.New("a truncated local header")
		}
		h := data[p:]
		nameLen := int64(binary.LittleEndian.Uint16(h[26:]))
		extraLen := int64(binary.LittleEndian.Uint16(h[28:]))
		f := byData[p+30+nameLen+extraLen]
		if f == nil || p+30+nameLen > int64(len(data)) {
			return errors.New("a member its central directory does not list")
		}
		flags, method := binary.LittleEndian.Uint16(h[6:]), binary.LittleEndian.Uint16(h[8:])
		crc, csize, usize := binary.LittleEndian.Uint32(h[14:]), binary.LittleEndian.Uint32(h[18:]), binary.LittleEndian.Uint32(h[22:])
		switch {
		case string(h[30:30+nameLen]) != f.Name:
			return errors.New("a member whose local name differs from its listed one")
		case method != f.Method || flags&0x9 != f.Flags&0x9:
			return errors.New("a member whose local method or flags differ from its listed ones")
		case csize == 0xffffffff || usize == 0xffffffff:
			return errors.New("zip64 local sizes")
		case flags&0x8 == 0 && (crc != f.CRC32 || uint64(csize) != f.CompressedSize64 || uint64(usize) != f.UncompressedSize64):
			return errors.New("a member whose local CRC or sizes differ from its listed ones")
		}
		seen[f] = true
	}
	for _, f := range zr.File {
		if !seen[f] {
			return errors.New("a listed member without its local header")
		}
		off, _ := f.DataOffset()
		switch f.Method {
		case zip.Store:
			if f.Flags&0x8 != 0 {
				return errors.New("a stored member with a data descriptor")
			}
		case zip.Deflate:
			if f.UncompressedSize64 > uint64(budget) {
				return &PushTooLargeError{Size: int64(min(f.UncompressedSize64, 1<<62)), Limit: budget}
			}
			if int64(f.CompressedSize64) > int64(len(data))-off {
				return errors.New("a member that runs past the end")
			}
			br := bytes.NewReader(data[off : off+int64(f.CompressedSize64)])
			fr := flate.NewReader(br)
			_, err := io.Copy(io.Discard, io.LimitReader(fr, int64(f.UncompressedSize64)+1))
			if err != nil || br.Len() != 0 {
				return errors.New("a deflated member whose stream does not end at its listed size")
			}
		}
	}
	return nil
}

// readBounded reads decompressed data, counting it against the budget.
func (v *viewer) readBounded(r io.Reader, p Finding) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, v.budget+1))
	if int64(len(out)) > v.budget {
		return nil, &PushTooLargeError{Size: v.limit + 1, Limit: v.limit}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot scan %s: decompress: %w", describe(p), err)
	}
	v.budget -= int64(len(out))
	return out, nil
}

// tree queues a tree's entry names, one a line, and the object name of
// each submodule entry (mode 160000), which its author picks freely.
func (v *viewer) tree(o newObject, data []byte) error {
	var b strings.Builder
	for rest := data; len(rest) > 0; {
		sp := bytes.IndexByte(rest, ' ')
		nul := bytes.IndexByte(rest, 0)
		if sp < 0 || nul < sp || len(rest) < nul+1+v.hashLen {
			return fmt.Errorf("cannot read tree %s", o.oid)
		}
		mode, name := string(rest[:sp]), rest[sp+1:nul]
		oid := hex.EncodeToString(rest[nul+1 : nul+1+v.hashLen])
		b.Write(name)
		switch mode {
		case "160000":
			b.WriteString(" " + oid)
		case "100644", "100755", "120000":
			if v.paths[oid] == nil {
				v.paths[oid] = map[string]bool{}
			}
			v.paths[oid][path.Join(o.path, string(name))] = true
		}
		b.WriteByte('\n')
		rest = rest[nul+1+v.hashLen:]
	}
	v.pool.add(b.String(), Finding{Where: WherePathName, Commit: o.commit, Object: o.oid})
	return nil
}

// message queues a commit or tag object whole, and its message decoded
// from the encoding its header names, if any.
func (v *viewer) message(data []byte, p Finding) error {
	hdr, msg, _ := bytes.Cut(data, []byte("\n\n"))
	p.headerLines = bytes.Count(hdr, []byte("\n")) + 1
	v.pool.add(string(data), p)
	if bytes.IndexByte(data, 0) >= 0 {
		q := p
		q.Decoded = "NUL bytes removed"
		v.pool.add(string(bytes.ReplaceAll(data, []byte{0}, nil)), q)
	}
	for _, line := range strings.Split(string(hdr), "\n") {
		name, ok := strings.CutPrefix(line, "encoding ")
		if !ok || strings.EqualFold(name, "utf-8") || strings.EqualFold(name, "utf8") {
			continue
		}
		enc, err := ianaindex.IANA.Encoding(name)
		if err != nil || enc == nil {
			enc, err = htmlindex.Get(name)
		}
		if err != nil || enc == nil {
			return fmt.Errorf("cannot scan %s: its message is in encoding %q, which the gate cannot decode", describe(p), name)
		}
		text, err := enc.NewDecoder().Bytes(msg)
		if err != nil {
			return fmt.Errorf("cannot scan %s: decode its message as %q: %w", describe(p), name, err)
		}
		q := p
		q.Decoded = "message decoded as " + name
		// Keep the header's lines so that line numbers stay the object's.
		v.pool.add(string(hdr)+"\n\n"+string(text), q)
	}
	return nil
}

// forgiveUpstream drops the hits in files whose secret upstream already
// has: the same rule matching the same text in the file at the same path
// in one of the boundary commits (the upstream commits the push builds
// on). Those are edits of a file that already held it; everything else
// stays. A hit is never forgiven when it was found in a decoded view or
// an archive member, when its rule matched on the path alone (an empty
// secret: a new key in an old ".p12" file), or when the new trees put its
// blob at more than one path (a copy of the file beside the edit).
func (s *scanGit) forgiveUpstream(hits []hit, boundary []string, blobPaths map[string]map[string]bool, sc *scanner, limit int64) ([]hit, error) {
	type key struct{ path, rule, secret string }
	forgivable := func(h hit) bool {
		return h.Where == WhereFile && h.Decoded == "" && !strings.Contains(h.File, "!") &&
			h.secret != "" && len(blobPaths[h.Object]) <= 1
	}
	paths := map[string]bool{}
	for _, h := range hits {
		if forgivable(h) {
			paths[h.File] = true
		}
	}
	if len(paths) == 0 || len(boundary) == 0 {
		return hits, nil
	}
	if len(boundary) > 16 {
		boundary = boundary[:16]
	}
	var in strings.Builder
	var names []string
	for _, b := range boundary {
		for p := range paths {
			if strings.ContainsAny(p, "\n") {
				continue
			}
			in.WriteString(b + ":" + p + "\n")
			names = append(names, p)
		}
	}
	out, err := s.run(strings.NewReader(in.String()), "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
	if err != nil {
		return nil, fmt.Errorf("read upstream files: %w", err)
	}
	known := map[key]bool{}
	var total int64
	for i, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		f := strings.Fields(line)
		if i >= len(names) || len(f) != 3 || f[1] != "blob" {
			continue
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		if total += n; total > limit {
			break
		}
		data, err := s.run(nil, "cat-file", "blob", f[0])
		if err != nil {
			return nil, fmt.Errorf("read upstream file: %w", err)
		}
		for _, h := range sc.detect(string(data), 1, Finding{Where: WhereFile, File: names[i]}) {
			known[key{names[i], h.RuleID, h.secret}] = true
		}
	}
	return slices.DeleteFunc(hits, func(h hit) bool {
		return forgivable(h) && known[key{h.File, h.RuleID, h.secret}]
	}), nil
}

// dedupe drops repeated findings (overlapping fragments, a path rule that
// fires once per view) and sorts the rest.
func dedupe(fs []Finding) []Finding {
	keyOf := func(f Finding) string {
		return fmt.Sprintf("%s\x00%s\x00%s\x00%09d\x00%s\x00%d\x00%s\x00%s", f.Commit, f.Where, f.File, f.Line, f.RuleID, f.Update, f.Object, f.Decoded)
	}
	slices.SortFunc(fs, func(a, b Finding) int { return strings.Compare(keyOf(a), keyOf(b)) })
	return slices.CompactFunc(fs, func(a, b Finding) bool { return keyOf(a) == keyOf(b) })
}

// exitCode returns the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

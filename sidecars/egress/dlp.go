package egress

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/zricethezav/gitleaks/v8/detect"

	"github.com/bottle-dev/bottle/internal/leakrules"
)

// Windows of a body scan, as the git gate's fragments: each window of up
// to dlpWindow bytes is scanned whole; the next one starts at least
// dlpOverlap bytes before the end of the scanned part, and those bytes are
// held back until it was scanned, so that a match of up to dlpOverlap
// bytes that crosses the end is seen whole, and none of its bytes leaves
// before. gitleaks' longest matches, armored private keys, are a few KiB.
// Smaller windows scan faster (gitleaks runs only the rules whose keywords
// occur in a window), but rescan the overlap more often: 128 KiB measured
// faster than 256 KiB on source code and JSON, and holds half the memory.
const (
	dlpWindow  = 128 << 10
	dlpOverlap = 16 << 10
)

// MaxDecodedBody is how many bytes a compressed request body may decode
// to: past it, the read fails with ErrBodyTooLarge. A plain body has no
// limit (its scan costs what the sender sends); a compressed one could
// make the proxy scan a thousand times what it was sent.
const MaxDecodedBody = 64 << 20

// Errors for request bodies the DLP refuses to pass unscanned; a body's
// reader returns them wrapped, with the reason and what to do.
var (
	// ErrUnscannableBody: the body has a Content-Encoding the DLP does
	// not decode, or its compressed data does not decode (see
	// EncodedBody).
	ErrUnscannableBody = errors.New("the request body cannot be scanned for secrets")
	// ErrBodyTooLarge: the compressed body decodes to more than
	// MaxDecodedBody.
	ErrBodyTooLarge = errors.New("the request body is too large to scan for secrets")
)

// Leak is a secret found in an outbound request. It names the rule that
// matched and the place, never the value; a body reader returns it as its
// error.
type Leak struct {
	// Rule is the gitleaks rule that matched ("github-pat"), or "" for
	// one of the bottle's own secrets.
	Rule string
	// Secret is the name of one of the bottle's own secrets, as given to
	// NewSecretScanner, and Encoding the form it was sent in ("raw",
	// "base64", "url-encoded", "hex"); both are "" for a gitleaks rule.
	Secret, Encoding string
	// Where is the place: what ScanText was given ("header X-Api-Key",
	// "query"), or "body", with how it was decoded ("body (gunzipped)").
	Where string
}

// withheldWhere replaces a Leak's place whose own name holds a secret.
const withheldWhere = "a place whose name is withheld, since it holds the secret"

// Error names the rule or the secret, and the place, never the value.
func (l *Leak) Error() string {
	what := "a secret matching the gitleaks rule " + l.Rule
	if l.Secret != "" {
		what = fmt.Sprintf("the bottle's secret %s (%s)", l.Secret, l.Encoding)
	}
	return fmt.Sprintf("the request carries %s in %s; the egress proxy does not send secrets to this host: remove it from the request", what, l.Where)
}

// DLP scans the requests the proxy decrypts for secrets (outbound DLP),
// in two ways. The git gate's gitleaks rules (internal/leakrules) find
// credentials of every kind gitleaks knows, also inside base64, hex and
// percent encodings; they run on the text with the mask strings removed:
// the placeholders the proxy will replace and the visible secrets it lets
// through, which would otherwise match (a "ghp_BOTTLEPH…" placeholder is
// a github-pat to gitleaks). The SecretScanner finds the bottle's own
// secret values in their raw, base64, percent and hex forms; masks do not
// apply to it, since the proxy builds it, per destination, with exactly
// the values that must not go there.
//
// It is a scan for accidents and for the obvious, not a wall: a sender
// set on leaking can always encode a secret in a way no rule knows. It is
// safe for concurrent use; each reader it returns is for one goroutine.
type DLP struct {
	det        *detect.Detector
	skip       map[string]bool // rule IDs ignored
	clean      *cleanCache
	report     func(*Leak) // see Reporting
	own        *SecretScanner
	window     int // bytes scanned at once
	overlap    int // bytes held back and scanned again
	maxDecoded int64
}

// NewDLP returns a DLP with the process's shared gitleaks detector and
// own, the scanner of the bottle's secret values that must not leave on
// the requests it scans, which may be nil. The error says the gitleaks
// rules could not be loaded.
func NewDLP(own *SecretScanner) (*DLP, error) {
	det, err := leakrules.Detector()
	if err != nil {
		return nil, fmt.Errorf("outbound scan: %w", err)
	}
	d := &DLP{det: det, own: own, clean: &cleanCache{}, window: dlpWindow, overlap: dlpOverlap, maxDecoded: MaxDecodedBody}
	if own != nil && own.maxLen > d.overlap {
		// Hold back the longest form, so that no byte of one leaves
		// before its end was seen.
		d.overlap = own.maxLen
		d.window = max(d.window, 8*d.overlap)
	}
	return d, nil
}

// ScanText scans one short text of a request, a header value or the URL's
// query, and returns the first secret found, or nil. where names the
// place for the Leak ("header X-Api-Key"); it is scanned too, since a
// header's name is sent as well, and when it holds a secret the Leak's
// Where withholds it. mask lists the strings gitleaks does not see (see
// DLP); those shorter than MinScannedSecret are ignored, since they would
// blind it to ordinary text.
func (d *DLP) ScanText(where, text string, mask []string) *Leak {
	ms := maskBytes(mask)
	if l := d.scanText(where, ms); l != nil {
		l.Where = withheldWhere
		return d.found(l)
	}
	if l := d.scanText(text, ms); l != nil {
		l.Where = where
		return d.found(l)
	}
	return nil
}

// found returns l, or, for a gitleaks finding of a DLP made by
// Reporting, reports it and returns nil.
func (d *DLP) found(l *Leak) *Leak {
	if l.Rule != "" && d.report != nil {
		d.report(l)
		return nil
	}
	return l
}

// Reporting returns a DLP like d, sharing its cache, that reports each
// gitleaks finding to report and goes on, instead of failing: for a
// profile that has findings logged rather than refused. A body reports
// its first finding only. The bottle's own secrets still fail it.
func (d *DLP) Reporting(report func(*Leak)) *DLP {
	n := *d
	n.report = report
	return &n
}

func (d *DLP) scanText(text string, mask [][]byte) *Leak {
	b := []byte(text)
	if d.own != nil {
		if m, ok := d.own.Scan(b); ok {
			return &Leak{Secret: m.Secret, Encoding: m.Encoding}
		}
	}
	if id := d.rule(string(unmasked(nil, b, len(b), maskSpans(b, mask)))); id != "" {
		return &Leak{Rule: id}
	}
	return nil
}

// rule returns the smallest ID of the gitleaks rules that match text,
// other than the skipped ones, or "". A text scanned clean before is not
// scanned again: a model API's requests resend the whole conversation each
// turn, and the windows of its unchanged start are the same bytes (Body
// cuts windows from the start of the stream), so only what is new costs a
// scan. gitleaks is deterministic, so the same bytes get the same verdict.
func (d *DLP) rule(text string) string {
	if text == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(text))
	if d.clean.has(sum) {
		return ""
	}
	id := ""
	//lint:ignore SA1019 Detect takes the deprecated alias until gitleaks v9.
	for _, f := range d.det.Detect(detect.Fragment{Raw: text}) {
		if d.skip[f.RuleID] || f.RuleID == genericAPIKey && canonicalUUID.MatchString(f.Secret) {
			continue
		}
		if id == "" || f.RuleID < id {
			id = f.RuleID
		}
	}
	if id == "" {
		d.clean.add(sum)
	}
	return id
}

// genericAPIKey is gitleaks' catch-all rule: a high-entropy value under a
// name such as key, token or secret.
const genericAPIKey = "generic-api-key"

// canonicalUUID is a UUID in its usual text form. The catch-all rule
// takes one under a name ending in "key" for a credential; Codex sends its
// session's UUID as "prompt_cache_key" in every request, which the rule
// refused, so that Codex could not work at all. A UUID-shaped value under
// such a name is let through: the credentials of a known format, which
// have rules of their own, are still refused, and the bottle's own values
// and placeholders are looked for in every form regardless.
var canonicalUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// WithoutRules returns a DLP like d that ignores the gitleaks rules ids,
// with a cache of its own.
func (d *DLP) WithoutRules(ids ...string) *DLP {
	n := *d
	n.skip = map[string]bool{}
	for id := range d.skip {
		n.skip[id] = true
	}
	for _, id := range ids {
		n.skip[id] = true
	}
	n.clean = &cleanCache{}
	return &n
}

// maxClean bounds the texts a DLP remembers as clean, by their SHA-256:
// 8192 of them, 256 KiB of sums, about a gigabyte of 128 KiB windows.
const maxClean = 8192

// cleanCache remembers the SHA-256 of texts scanned clean.
type cleanCache struct {
	mu   sync.Mutex
	sums map[[32]byte]struct{}
}

func (c *cleanCache) has(sum [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.sums[sum]
	return ok
}

func (c *cleanCache) add(sum [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sums == nil || len(c.sums) >= maxClean {
		c.sums = make(map[[32]byte]struct{}) // forget all: simple, and rare
	}
	c.sums[sum] = struct{}{}
}

// Body returns a reader of r's bytes, unchanged, that gives out a byte
// only once it was scanned, so that an HTTP transport reading it as a
// request body sends nothing of a secret: on a finding, Read returns a
// *Leak, before any byte of the secret, and so does every later Read. An
// error of r is returned as it is.
//
// r is read in windows of 128 KiB (more when an own secret's longest
// form exceeds 16 KiB: eight times that). A window is scanned up to its
// last line end in its second half, or else up to its last byte that ends
// a token (space, quote, comma, bracket…) in its last 16 KiB, or else
// whole, so that matches are not cut; the bytes up to at least 16 KiB
// before that point are given out, and the next window starts there, at
// a line or token start when there is one in the 16 KiB before. The end
// of r ends the last window. Nothing is given out before a window is full
// or r ends: a client that waits for an answer before it ends its
// request body (bidirectional streaming) stalls.
//
// Memory: about three windows stay live (the window, its copy without
// the masks, and the own-secret scanner's copy with its tail), whatever
// the body's size; each scan also leaves a few windows of garbage in
// gitleaks.
//
// What it misses: gitleaks sees a match only when one window holds it
// whole. Two consecutive windows share the 16 to 32 KiB before the end of
// the first one's scanned part, so a match of at most 16 KiB is always
// seen; a longer one is missed exactly when it crosses that end and
// starts before the next window does (a PEM bundle of 20 KiB can be).
// Likewise gitleaks decodes a base64, hex or percent-encoded token only
// when one window holds all of it: a secret inside an encoded token of
// more than 16 KiB (an encoded file) can be missed the same way, and
// inside one longer than a window it is found only by chance. The
// own-secret scanner sees every byte in order, keeping the tail of the
// longest form, so it misses nothing.
func (d *DLP) Body(r io.Reader, mask []string) io.Reader {
	return &bodyReader{w: d.windows(r, mask, "body")}
}

// bodyReader gives out what windows released.
type bodyReader struct {
	w   *windows
	out []byte
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		out, err := b.w.step()
		if err != nil {
			return 0, err
		}
		b.out = out
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// windows scans one stream in windows (see Body).
type windows struct {
	d     *DLP
	src   io.Reader
	mask  [][]byte
	where string
	own   *SecretStream
	buf   []byte // read and not given out: buf[:done] was released by the last step
	done  int
	pos   int64 // offset of buf[0] in the stream
	eof   bool
	err   error
	text  []byte // the scanned part without the masks
	// reported is set once a finding was reported (DLP.Reporting).
	reported bool
}

func (d *DLP) windows(r io.Reader, mask []string, where string) *windows {
	w := &windows{d: d, src: r, mask: maskBytes(mask), where: where}
	if d.own != nil {
		w.own = d.own.Stream()
	}
	return w
}

// step drops what the last step released, reads up to a window, scans
// it, and returns what it releases: the scanned bytes no later byte can
// complete into a match. The slice is valid until the next step. It
// returns io.EOF once all was released, and a *Leak or r's error.
func (w *windows) step() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, w.d.window)
	}
	n := copy(w.buf, w.buf[w.done:])
	w.buf, w.pos, w.done = w.buf[:n], w.pos+int64(w.done), 0
	if w.eof && n == 0 {
		w.err = io.EOF
		return nil, w.err
	}
	old := len(w.buf)
	for empty := 0; len(w.buf) < cap(w.buf) && !w.eof; {
		m, err := w.src.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+m]
		switch {
		case err == io.EOF:
			w.eof = true
		case err != nil:
			w.err = err
			return nil, err
		case m == 0:
			if empty++; empty == 100 {
				w.err = io.ErrNoProgress
				return nil, w.err
			}
		}
	}
	if w.own != nil && len(w.buf) > old {
		if m, ok := w.own.Write(w.buf[old:]); ok {
			w.err = &Leak{Secret: m.Secret, Encoding: m.Encoding, Where: w.where}
			return nil, w.err
		}
	}
	spans := maskSpans(w.buf, w.mask)
	end, next := len(w.buf), len(w.buf)
	if !w.eof {
		end = cutEnd(w.buf, w.d.overlap)
		next = cutNext(w.buf, end, w.d.overlap, spans)
	}
	w.text = unmasked(w.text[:0], w.buf, end, spans)
	if id := w.d.rule(string(w.text)); id != "" && !w.reported {
		l := &Leak{Rule: id, Where: w.where}
		if w.d.report == nil {
			w.err = l
			return nil, w.err
		}
		w.d.report(l)
		w.reported = true
	}
	w.done = next
	return w.buf[:next], nil
}

// cuts marks the bytes that end a token in text: whitespace, quotes,
// separators and brackets. A cut after one of them rarely cuts a match;
// one that spans it (a private key block, `key = "value"`) is still seen
// whole in the next window when it is short enough.
var cuts = func() (t [256]bool) {
	for _, c := range []byte(" \t\r\n\"'`,;&<>(){}[]") {
		t[c] = true
	}
	return t
}()

// lastCut returns the index of the last token-ending byte in b, or -1.
func lastCut(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if cuts[b[i]] {
			return i
		}
	}
	return -1
}

// cutEnd returns where the scan of a full window b ends: after its last
// line end in its second half, else after its last token-ending byte in
// its last overlap bytes, else at its end.
func cutEnd(b []byte, overlap int) int {
	if i := bytes.LastIndexByte(b[len(b)/2:], '\n'); i >= 0 {
		return len(b)/2 + i + 1
	}
	if i := lastCut(b[len(b)-overlap:]); i >= 0 {
		return len(b) - overlap + i + 1
	}
	return len(b)
}

// cutNext returns where the next window starts, for a scan of b[:end]:
// at least overlap bytes before end, at the start of a line or else of a
// token in the overlap bytes before that, and not inside a masked span,
// which it would show in part. end is at least half of a full window, and
// a window at least eight overlaps, so the next window starts after b's
// start.
func cutNext(b []byte, end, overlap int, spans [][2]int) int {
	lo, hi := end-2*overlap, end-overlap
	next := hi
	if i := bytes.LastIndexByte(b[lo:hi], '\n'); i >= 0 {
		next = lo + i + 1
	} else if i := lastCut(b[lo:hi]); i >= 0 {
		next = lo + i + 1
	}
	for _, s := range spans {
		if s[0] < next && next < s[1] && s[0] > 0 {
			next = s[0]
		}
	}
	return next
}

// maskBytes returns the mask strings long enough to mask.
func maskBytes(mask []string) [][]byte {
	var out [][]byte
	for _, m := range mask {
		if len(m) >= MinScannedSecret {
			out = append(out, []byte(m))
		}
	}
	return out
}

// maskSpans returns the spans of b that mask strings cover, sorted and
// merged.
func maskSpans(b []byte, mask [][]byte) [][2]int {
	var spans [][2]int
	for _, m := range mask {
		for i := 0; ; {
			j := bytes.Index(b[i:], m)
			if j < 0 {
				break
			}
			spans = append(spans, [2]int{i + j, i + j + len(m)})
			i += j + 1
		}
	}
	if len(spans) < 2 {
		return spans
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	out := spans[:1]
	for _, s := range spans[1:] {
		if last := &out[len(out)-1]; s[0] <= last[1] {
			last[1] = max(last[1], s[1])
		} else {
			out = append(out, s)
		}
	}
	return out
}

// unmasked appends b[:end] to dst without the spans.
func unmasked(dst, b []byte, end int, spans [][2]int) []byte {
	at := 0
	for _, s := range spans {
		if s[0] >= end {
			break
		}
		dst = append(dst, b[at:s[0]]...)
		at = min(s[1], end)
	}
	return append(dst, b[at:end]...)
}

// EncodedBody is Body for a body sent with the Content-Encoding
// contentEncoding: it gives out the bytes as sent, and scans them
// decoded. "" and "identity" are Body; "gzip", "x-gzip" and "deflate"
// (zlib, or raw deflate as some clients send it) are decoded, and each
// gzip member's header (name, comment, extra field) is scanned too. Any
// other coding, or more than one, returns an error wrapping
// ErrUnscannableBody at once.
//
// A sent byte is given out once the decoded bytes it can produce were
// released by the scan (see Body): Go's inflater returns its output at
// the latest when its 32 KiB history fills, so the bytes it has read
// produce at most decodeLag more than it has returned. Its Read returns
// a *Leak, an error wrapping ErrBodyTooLarge when the body decodes to
// more than MaxDecodedBody, or one wrapping ErrUnscannableBody when the
// data does not decode, has bytes after its end, or holds more than four
// windows (512 KiB) of sent bytes that decode to nothing yet. Memory: what
// Body holds, those sent bytes at most, and the decoder's 32 KiB history.
//
// Brotli and zstd are refused: their decoders may hold megabytes of
// output per byte read (their windows), so a sent byte could not be
// given out in bounded memory; clients that compress request bodies use
// gzip.
func (d *DLP) EncodedBody(r io.Reader, contentEncoding string, mask []string) (io.Reader, error) {
	coding := strings.ToLower(strings.TrimSpace(contentEncoding))
	var where string
	switch coding {
	case "", "identity":
		return d.Body(r, mask), nil
	case "gzip", "x-gzip":
		where = "body (gunzipped)"
	case "deflate":
		where = "body (inflated)"
	default:
		return nil, fmt.Errorf("%w: its Content-Encoding %q is not one the egress proxy decodes (gzip, deflate); send it uncompressed or gzip-compressed", ErrUnscannableBody, contentEncoding)
	}
	in := &sentBytes{src: r, max: maxPendingFactor * d.window}
	dec := &decoded{d: d, in: in, coding: coding, mask: maskBytes(mask), limit: d.maxDecoded}
	return &encodedReader{in: in, dec: dec, w: d.windows(dec, mask, where)}, nil
}

// decodeLag bounds the decoded bytes that the sent bytes an inflater has
// read can produce beyond what it returned: its 32 KiB history, one
// pending copy of 258 bytes, and what the at most 32 bits it holds undecoded
// can expand to (16 copies of 258 bytes), rounded up.
const decodeLag = 64 << 10

// markEvery spaces the (sent, decoded) marks that a sent byte's release is
// computed from; sparser marks only release later.
const markEvery = 4 << 10

// maxPendingFactor bounds the sent bytes held, in windows: compressed
// data no larger than what it decodes to (real compressors add well under
// 1%) stays far below.
const maxPendingFactor = 4

// encodedReader gives out the sent bytes of an encoded body (see
// EncodedBody).
type encodedReader struct {
	in  *sentBytes
	dec *decoded
	w   *windows
	out int // sent bytes released and not yet read: in.buf[:out]
	err error
}

func (e *encodedReader) Read(p []byte) (int, error) {
	for e.out == 0 {
		if e.err != nil {
			return 0, e.err
		}
		released, err := e.w.step()
		switch {
		case err == io.EOF:
			// All decoded and scanned, and nothing after the end.
			e.out, e.err = len(e.in.buf), io.EOF
		case err != nil:
			e.err = err
			return 0, err
		default:
			e.out = int(e.dec.releasable(e.w.pos+int64(len(released))) - e.in.base)
		}
	}
	n := copy(p, e.in.buf[:e.out])
	e.in.drop(n)
	e.out -= n
	return n, nil
}

// sentBytes holds the bytes of an encoded body from when they are read to
// when they are given out, and feeds them to the decoder (as a
// flate.Reader, so that the decoder reads no further than it needs).
type sentBytes struct {
	src   io.Reader
	buf   []byte // sent bytes not given out; buf[:used] the decoder has read
	used  int
	base  int64 // offset of buf[0] in the body
	max   int
	err   error // src's error, io.EOF included
	empty int   // reads in a row that returned nothing
}

// errPending says the decoder read max sent bytes that it has not
// decoded into anything the scan could release.
var errPending = errors.New("too much of its compressed data decodes to too little")

// more reads more sent bytes, or returns why there are none: src's error
// (io.EOF included), or errPending.
func (s *sentBytes) more() error {
	for s.err == nil {
		if len(s.buf) >= s.max {
			s.err = errPending
			break
		}
		s.buf = slices.Grow(s.buf, 32<<10)
		n, err := s.src.Read(s.buf[len(s.buf):min(cap(s.buf), s.max)])
		s.buf = s.buf[:len(s.buf)+n]
		s.err = err
		if n > 0 {
			s.empty = 0
			return nil
		}
		if s.empty++; s.empty == 100 && s.err == nil {
			s.err = io.ErrNoProgress
		}
	}
	return s.err
}

// peek returns up to n sent bytes the decoder has not read, fewer only
// at the end.
func (s *sentBytes) peek(n int) []byte {
	for len(s.buf)-s.used < n {
		if s.more() != nil {
			break
		}
	}
	return s.buf[s.used:min(len(s.buf), s.used+n)]
}

func (s *sentBytes) ReadByte() (byte, error) {
	if s.used == len(s.buf) {
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	s.used++
	return s.buf[s.used-1], nil
}

func (s *sentBytes) Read(p []byte) (int, error) {
	if s.used == len(s.buf) {
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.used:])
	s.used += n
	return n, nil
}

// drop forgets the first n bytes, given out.
func (s *sentBytes) drop(n int) {
	m := copy(s.buf, s.buf[n:])
	s.buf, s.used, s.base = s.buf[:m], s.used-n, s.base+int64(n)
}

// consumed is the number of sent bytes the decoder has read.
func (s *sentBytes) consumed() int64 { return s.base + int64(s.used) }

// mark says that the decoder had read sent bytes when it had returned
// decoded bytes.
type mark struct{ sent, decoded int64 }

// decoded is the decoded stream of an encoded body.
type decoded struct {
	d      *DLP
	in     *sentBytes
	coding string // "gzip", "x-gzip" or "deflate"
	mask   [][]byte
	r      io.Reader    // the decoder, once opened
	zr     *gzip.Reader // for gzip, to read member by member
	n      int64        // bytes decoded
	limit  int64
	marks  []mark
}

func (dc *decoded) Read(p []byte) (int, error) {
	if dc.r == nil {
		if err := dc.open(); err != nil {
			return 0, err
		}
	}
	for {
		n, err := dc.r.Read(p)
		dc.n += int64(n)
		if dc.n > dc.limit {
			return 0, fmt.Errorf("%w: it decodes to more than %s, the most the egress proxy scans; send it uncompressed", ErrBodyTooLarge, formatSize(dc.limit))
		}
		if err == io.EOF && dc.zr != nil {
			if err = dc.nextMember(); err == nil && n == 0 {
				continue // an empty member
			}
		}
		if err == io.EOF {
			err = dc.atEnd()
		} else if err != nil {
			err = dc.failed(err)
		}
		if len(dc.marks) == 0 || dc.n-dc.marks[len(dc.marks)-1].decoded >= markEvery {
			dc.marks = append(dc.marks, mark{sent: dc.in.consumed(), decoded: dc.n})
		}
		return n, err
	}
}

// open starts the decoder on the first sent bytes: an empty body is an
// empty body, and for deflate a zlib header picks zlib.
func (dc *decoded) open() error {
	head := dc.in.peek(2)
	switch {
	case len(head) == 0 && dc.in.err == io.EOF:
		dc.r = eofReader{}
		return nil
	case dc.coding != "deflate":
		zr, err := gzip.NewReader(dc.in)
		if err != nil {
			return dc.failed(err)
		}
		zr.Multistream(false)
		dc.zr, dc.r = zr, zr
		return dc.header()
	case len(head) == 2 && head[0]&0x0f == 8 && head[0]>>4 <= 7 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0:
		// A zlib header: compression method 8, a window of at most
		// 32 KiB, and a check that makes it a multiple of 31.
		zr, err := zlib.NewReader(dc.in)
		if err != nil {
			return dc.failed(err)
		}
		dc.r = zr
		return nil
	}
	dc.r = flate.NewReader(dc.in)
	return nil
}

// nextMember moves to the next gzip member after one ended; io.EOF
// says there is none.
func (dc *decoded) nextMember() error {
	if err := dc.zr.Reset(dc.in); err != nil {
		return err
	}
	dc.zr.Multistream(false)
	return dc.header()
}

// header scans a gzip member's header fields, which are sent as they are.
func (dc *decoded) header() error {
	h := dc.zr.Header
	if l := dc.d.scanText(h.Name+"\n"+h.Comment+"\n"+string(h.Extra), dc.mask); l != nil {
		l.Where = "the gzip header of the body"
		return l
	}
	return nil
}

// atEnd returns io.EOF when no sent byte follows the decoded stream's
// end: a receiver might read bytes the scan did not see.
func (dc *decoded) atEnd() error {
	_, err := dc.in.ReadByte()
	if err == io.EOF {
		return io.EOF
	}
	if err == nil {
		return fmt.Errorf("%w: it has data after the end of its %s stream, which a receiver might read; send it uncompressed", ErrUnscannableBody, dc.coding)
	}
	return err
}

// failed wraps a decoder's error: the sender's own read error as it is,
// else the body's data as unscannable.
func (dc *decoded) failed(err error) error {
	var l *Leak
	switch {
	case errors.As(err, &l):
		return err
	case dc.in.err != nil && dc.in.err != io.EOF && dc.in.err != errPending:
		return dc.in.err
	case dc.in.err == errPending:
		return fmt.Errorf("%w: %w; send it uncompressed", ErrUnscannableBody, errPending)
	}
	return fmt.Errorf("%w: its %s data does not decode (%w); send it uncompressed", ErrUnscannableBody, dc.coding, err)
}

// releasable returns how many sent bytes may be given out now that the
// decoded bytes before safe were released, and forgets the marks before.
func (dc *decoded) releasable(safe int64) int64 {
	sent := dc.in.base
	i := 0
	for i < len(dc.marks) && dc.marks[i].decoded+decodeLag <= safe {
		sent = max(sent, dc.marks[i].sent)
		i++
	}
	if i > 0 {
		dc.marks = slices.Delete(dc.marks, 0, i-1) // keep the last one used: it still bounds
	}
	return sent
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// formatSize renders n bytes for a message: "64 MiB".
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

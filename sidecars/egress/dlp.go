package egress

import (
	"bytes"
	"fmt"
	"io"
	"slices"

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
	// "query"), or "body".
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
	det     *detect.Detector
	own     *SecretScanner
	window  int // bytes scanned at once
	overlap int // bytes held back and scanned again
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
	d := &DLP{det: det, own: own, window: dlpWindow, overlap: dlpOverlap}
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
		return l
	}
	if l := d.scanText(text, ms); l != nil {
		l.Where = where
		return l
	}
	return nil
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

// rule returns the smallest ID of the gitleaks rules that match text, or "".
func (d *DLP) rule(text string) string {
	if text == "" {
		return ""
	}
	id := ""
	//lint:ignore SA1019 Detect takes the deprecated alias until gitleaks v9.
	for _, f := range d.det.Detect(detect.Fragment{Raw: text}) {
		if id == "" || f.RuleID < id {
			id = f.RuleID
		}
	}
	return id
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
	if id := w.d.rule(string(w.text)); id != "" {
		w.err = &Leak{Rule: id, Where: w.where}
		return nil, w.err
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

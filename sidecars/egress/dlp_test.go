package egress

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// fakePAT is a GitHub token assembled at run time, so that this
// repository's own files hold nothing a scanner would flag.
func fakePAT(t testing.TB) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 36)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "gh" + "p_" + string(b)
}

func newDLP(t testing.TB, own map[string]string) *DLP {
	t.Helper()
	var sc *SecretScanner
	if own != nil {
		var err error
		if sc, err = NewSecretScanner(own); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewDLP(sc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	sourceOnce sync.Once
	sourceText []byte
)

// goSource returns n bytes of the module's own Go code (its non-test
// files, which hold no secret), repeated as needed.
func goSource(t testing.TB, n int) []byte {
	t.Helper()
	sourceOnce.Do(func() {
		var files []string
		filepath.WalkDir("../..", func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && (e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".")) && p != "../.." {
				return filepath.SkipDir
			}
			if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
		slices.Sort(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil {
				sourceText = append(sourceText, b...)
			}
		}
	})
	if len(sourceText) == 0 {
		t.Fatal("found no Go source")
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, sourceText[:min(len(sourceText), n-len(out))]...)
	}
	return out
}

// jsonBody returns about n bytes of a model API request: one line of
// JSON whose messages hold the module's source.
func jsonBody(t testing.TB, n int) []byte {
	t.Helper()
	src := goSource(t, n*9/10)
	var msgs []map[string]string
	for len(src) > 0 {
		k := min(len(src), 8<<10)
		msgs = append(msgs, map[string]string{"role": "user", "content": string(src[:k])})
		src = src[k:]
	}
	b, err := json.Marshal(map[string]any{"model": "some-model", "max_tokens": 4096, "messages": msgs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// csvBody returns n bytes of numeric CSV, a data upload: it scans several
// times faster than code, so the large bodies of the tests are CSV.
func csvBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d,%d,%d.%03d,%d\n", i, i*7919%1000003, i%1000, i*31%1000, i%97)
	}
	return b.Bytes()[:n]
}

// readUntilError reads r in small pieces and returns what it gave out
// and the error that ended it (nil at EOF).
func readUntilError(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 777)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// wantLeak checks that reading body through the DLP gave out only bytes
// before at, where the secret starts, and then a Leak of rule; and that
// it held back no more than a window.
func wantLeak(t *testing.T, r io.Reader, at int, rule, secret string) *Leak {
	t.Helper()
	out, err := readUntilError(r)
	var l *Leak
	if !errors.As(err, &l) {
		t.Fatalf("secret at %d: read %d bytes and %v, want a leak", at, len(out), err)
	}
	if l.Rule != rule && l.Secret != rule {
		t.Errorf("secret at %d: leak %+v, want %s", at, l, rule)
	}
	if len(out) > at {
		t.Errorf("secret at %d: %d bytes were given out before the leak", at, len(out))
	}
	if at-len(out) > dlpWindow {
		t.Errorf("secret at %d: only %d bytes were given out before the leak", at, len(out))
	}
	if bytes.Contains(out, []byte(secret)) {
		t.Errorf("secret at %d: the bytes given out hold it", at)
	}
	return l
}

// TestDLPBodyAcrossWindows puts a token across the end of the first
// window's scanned part and across the second window's start: at every
// offset in text without line or token ends, where the scanned part ends
// with the window and the token runs on into the text around it, and at
// a few in source code (cut at a line end) and in one line of JSON (cut
// at a token end).
func TestDLPBodyAcrossWindows(t *testing.T) {
	d := newDLP(t, nil)
	secret := fakePAT(t)
	for _, tc := range []struct {
		name   string
		filler []byte
		sep    string // around the token
		every  bool
	}{
		{"xs", bytes.Repeat([]byte("x"), 2*dlpWindow), "", true},
		{"source", goSource(t, 2*dlpWindow), " ", false},
		{"json", jsonBody(t, 3*dlpWindow), " ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := cutEnd(tc.filler[:dlpWindow], dlpOverlap)
			next := cutNext(tc.filler[:dlpWindow], end, dlpOverlap, nil)
			if end-next < dlpOverlap {
				t.Fatalf("end %d, next %d: less than the overlap apart", end, next)
			}
			var offsets []int
			for _, c := range []int{end, next} {
				if tc.every {
					for at := c - len(secret) - 2; at <= c+2; at++ {
						offsets = append(offsets, at)
					}
				} else {
					offsets = append(offsets, c-len(secret)-1, c-len(secret)/2, c-1, c)
				}
			}
			for _, at := range offsets {
				// The body ends soon after the first window: the second
				// is short, and the test fast.
				body := slices.Concat(tc.filler[:at], []byte(tc.sep+secret+tc.sep), tc.filler[at:end+dlpOverlap])
				wantLeak(t, d.Body(bytes.NewReader(body), nil), at, "github-pat", secret)
			}
		})
	}
}

// TestDLPBodyLarge finds a token deep in a 10 MiB body, read one byte at
// a time from a reader that gives one byte at a time.
func TestDLPBodyLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("scans 7 MiB")
	}
	d := newDLP(t, nil)
	secret := fakePAT(t)
	body := csvBody(10 << 20)
	at := 7<<20 + 12345
	body = slices.Concat(body[:at], []byte("token,"+secret+"\n"), body[at:])
	r := iotest.OneByteReader(d.Body(iotest.OneByteReader(bytes.NewReader(body)), nil))
	wantLeak(t, r, at, "github-pat", secret)
}

// TestDLPBodyCleanUnchanged passes clean bodies through byte for byte,
// whatever the read sizes.
func TestDLPBodyCleanUnchanged(t *testing.T) {
	d := newDLP(t, map[string]string{"API_KEY": "sk-" + fakePAT(t)})
	random := make([]byte, 384<<10)
	rand.Read(random)
	bodies := map[string][]byte{
		"source":     goSource(t, 512<<10),
		"json":       jsonBody(t, 512<<10),
		"base64":     []byte(base64.StdEncoding.EncodeToString(random)),
		"empty":      nil,
		"short":      []byte("hello"),
		"one window": csvBody(dlpWindow),
	}
	if !testing.Short() {
		bodies["csv 10 MiB"] = csvBody(10 << 20)
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			out, err := io.ReadAll(d.Body(bytes.NewReader(body), nil))
			if err != nil || !bytes.Equal(out, body) {
				t.Fatalf("read %d of %d bytes, equal %v, err %v", len(out), len(body), bytes.Equal(out, body), err)
			}
		})
	}
	t.Run("one byte reads", func(t *testing.T) {
		body := csvBody(1 << 20)
		if err := iotest.TestReader(d.Body(bytes.NewReader(body), nil), body); err != nil {
			t.Error(err)
		}
		r := iotest.OneByteReader(d.Body(iotest.OneByteReader(bytes.NewReader(body)), nil))
		out, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(out, body) {
			t.Fatalf("read %d of %d bytes, err %v", len(out), len(body), err)
		}
	})
}

// TestDLPMask: a placeholder the proxy will replace matches github-pat,
// and is not reported when masked, in a header or a body, also where it
// crosses a window's end or the next window's start; the own secret is
// found even when masked.
func TestDLPMask(t *testing.T) {
	real := fakePAT(t)
	ph, err := Placeholder(real)
	if err != nil {
		t.Fatal(err)
	}
	d := newDLP(t, map[string]string{"GITHUB_TOKEN": real})
	if l := d.ScanText("header Authorization", "Bearer "+ph, nil); l == nil || l.Rule != "github-pat" {
		t.Fatalf("unmasked placeholder: %v, want github-pat (else this test shows nothing)", l)
	}
	if l := d.ScanText("header Authorization", "Bearer "+ph, []string{ph}); l != nil {
		t.Errorf("masked placeholder in a header: %v", l)
	}
	other := fakePAT(t)
	if l := d.ScanText("header Authorization", ph+" "+other, []string{ph}); l == nil || l.Rule != "github-pat" {
		t.Errorf("another token beside a masked placeholder: %v", l)
	}
	if l := d.ScanText("query", "a=1&t="+real, []string{real}); l == nil || l.Secret != "GITHUB_TOKEN" || l.Encoding != "raw" {
		t.Errorf("own secret, masked: %v, want it found", l)
	}
	if l := d.ScanText("header X", "x", []string{"x"}); l != nil {
		t.Errorf("short mask: %v", l)
	}

	filler := bytes.Repeat([]byte("x"), dlpWindow+dlpOverlap)
	next := dlpWindow - dlpOverlap
	for _, c := range []int{dlpWindow, next} {
		for at := c - len(ph) - 1; at <= c+1; at++ {
			body := slices.Concat(filler[:at], []byte(ph), filler[at:])
			out, err := io.ReadAll(d.Body(bytes.NewReader(body), []string{ph}))
			if err != nil || !bytes.Equal(out, body) {
				t.Fatalf("masked placeholder at %d: %v", at, err)
			}
			_, err = io.ReadAll(d.Body(bytes.NewReader(body), nil))
			var l *Leak
			if !errors.As(err, &l) || l.Rule != "github-pat" {
				t.Fatalf("unmasked placeholder at %d: %v", at, err)
			}
		}
	}
}

// TestDLPOwnSecretEncoded finds the bottle's own secret in base64, in a
// header and in a body at every offset around a window's end, before any
// byte of its encoding leaves.
func TestDLPOwnSecretEncoded(t *testing.T) {
	secret := "sk-" + strings.Repeat("Q", 5) + fakePAT(t)[4:] // no gitleaks rule's shape
	d := newDLP(t, map[string]string{"ANTHROPIC_API_KEY": secret})
	enc := base64.StdEncoding.EncodeToString([]byte("user:" + secret))
	if l := d.ScanText("header Authorization", "Basic "+enc, nil); l == nil || l.Secret != "ANTHROPIC_API_KEY" || l.Encoding != "base64" {
		t.Errorf("base64 in a header: %v", l)
	}
	filler := bytes.Repeat([]byte("x"), dlpWindow+dlpOverlap)
	for at := dlpWindow - len(enc) - 2; at <= dlpWindow+2; at++ {
		body := slices.Concat(filler[:at], []byte(enc), filler[at:])
		l := wantLeak(t, d.Body(bytes.NewReader(body), nil), at, "ANTHROPIC_API_KEY", enc)
		if l.Encoding != "base64" || l.Where != "body" {
			t.Errorf("leak %+v", l)
		}
	}
}

// TestLeakNamesNoValue: a Leak's message names the rule or the secret's
// name and the place, never the value, also when the place's own name
// holds it.
func TestLeakNamesNoValue(t *testing.T) {
	secret := fakePAT(t)
	d := newDLP(t, map[string]string{"GITHUB_TOKEN": secret})
	other := fakePAT(t)
	for _, tc := range []struct {
		where, text, want string
	}{
		{"header X-Api-Key", other, "a secret matching the gitleaks rule github-pat in header X-Api-Key"},
		{"query", "t=" + base64.URLEncoding.EncodeToString([]byte(secret)), "the bottle's secret GITHUB_TOKEN (base64) in query"},
		{"header " + other, "1", "github-pat in " + withheldWhere},
		{"header " + secret, "1", "GITHUB_TOKEN (raw) in " + withheldWhere},
	} {
		l := d.ScanText(tc.where, tc.text, nil)
		if l == nil {
			t.Errorf("%q: nothing found", tc.where)
			continue
		}
		msg := l.Error()
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, secret) || strings.Contains(msg, other) {
			t.Errorf("%q: %q, want %q and no value", tc.where, msg, tc.want)
		}
	}
	_, err := io.ReadAll(d.Body(strings.NewReader("a="+other), nil))
	if err == nil || strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "github-pat in body") {
		t.Errorf("body: %v", err)
	}
}

// TestDLPMemoryBound reads 16 MiB through the scan, from a source and to
// a reader that move a byte at a time for the first MiB: the scanner's
// buffers never outgrow a window and the own secret's tail, and what
// stays live after a collection, sampled every MiB, stays at a few
// windows.
func TestDLPMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("scans 16 MiB")
	}
	d := newDLP(t, map[string]string{"API_KEY": "sk-" + fakePAT(t)})
	const total = 16 << 20
	src := &repeatReader{chunk: csvBody(1 << 20), left: total}
	r := d.Body(io.MultiReader(iotest.OneByteReader(io.LimitReader(src, 1<<20)), src), nil).(*bodyReader)
	live := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := live()
	peak := base
	buf := make([]byte, 32<<10)
	var n int64
	for sampled := int64(0); ; {
		p := buf
		if n < 1<<20 {
			p = buf[:1]
		}
		m, err := r.Read(p)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c := cap(r.w.buf); c > d.window {
			t.Fatalf("window buffer grew to %d", c)
		}
		if c := cap(r.w.text); c > d.window {
			t.Fatalf("scanned text grew to %d", c)
		}
		if c := cap(r.w.own.buf) + cap(r.w.own.tail); c > 2*(d.window+d.own.maxLen) {
			t.Fatalf("own-secret scanner grew to %d", c)
		}
		if n-sampled >= 1<<20 {
			sampled = n
			peak = max(peak, live())
		}
	}
	if n != total {
		t.Fatalf("read %d of %d bytes", n, total)
	}
	if grew := peak - base; grew > 8*int64(d.window) {
		t.Errorf("%d KiB stayed live while scanning %d MiB", grew>>10, total>>20)
	}
	t.Logf("at most %d KiB stayed live", (peak-base)>>10)
}

// repeatReader gives chunk over and over, left bytes in all.
type repeatReader struct {
	chunk []byte
	off   int
	left  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	r.left -= int64(n)
	return n, nil
}

// TestDLPConcurrent scans bodies on several goroutines with one DLP, for
// the race detector.
func TestDLPConcurrent(t *testing.T) {
	d := newDLP(t, map[string]string{"API_KEY": "sk-" + fakePAT(t)})
	body := slices.Concat(jsonBody(t, 64<<10), csvBody(256<<10))
	secret := fakePAT(t)
	leaky := slices.Concat(body[:200<<10], []byte(" "+secret+" "), body[200<<10:])
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if i%2 == 0 {
				out, err := io.ReadAll(d.Body(bytes.NewReader(body), nil))
				if err != nil || !bytes.Equal(out, body) {
					t.Errorf("clean body: %v", err)
				}
				return
			}
			_, err := io.ReadAll(d.Body(bytes.NewReader(leaky), nil))
			if l := (*Leak)(nil); !errors.As(err, &l) {
				t.Errorf("leaky body: %v", err)
			}
		})
	}
	wg.Wait()
}

// TestDLPSourceError passes the source's error on, and gives out nothing
// unscanned before it.
func TestDLPSourceError(t *testing.T) {
	d := newDLP(t, nil)
	boom := errors.New("connection reset")
	body := goSource(t, 100<<10)
	out, err := readUntilError(d.Body(io.MultiReader(bytes.NewReader(body), iotest.ErrReader(boom)), nil))
	if !errors.Is(err, boom) || len(out) != 0 {
		t.Errorf("gave out %d bytes, then %v", len(out), err)
	}
}

func gzipped(t testing.TB, level int, parts ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts {
		zw, err := gzip.NewWriterLevel(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(p)
		zw.Close()
	}
	return b.Bytes()
}

func zlibbed(t testing.TB, level int, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, level)
	zw.Write(p)
	zw.Close()
	return b.Bytes()
}

func deflated(t testing.TB, level int, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, level)
	fw.Write(p)
	fw.Close()
	return b.Bytes()
}

// inflatedPrefix returns what a decoder makes of the first bytes of a
// body: what a receiver could read from the bytes given out.
func inflatedPrefix(coding string, sent []byte) []byte {
	var r io.Reader
	var err error
	switch coding {
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(sent))
	case "zlib":
		r, err = zlib.NewReader(bytes.NewReader(sent))
	default:
		r = flate.NewReader(bytes.NewReader(sent))
	}
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(iotest.OneByteReader(r))
	return out
}

// TestDLPEncodedBody scans gzip and deflate bodies decoded, gives out the
// bytes as sent, and never a sent byte that decodes to part of a secret
// before the leak.
func TestDLPEncodedBody(t *testing.T) {
	d := newDLP(t, map[string]string{"API_KEY": "sk-" + fakePAT(t)})
	clean := slices.Concat(jsonBody(t, 32<<10), csvBody(1<<20))
	secret := fakePAT(t)
	type coded struct {
		header, name string
		encode       func(testing.TB, int, []byte) []byte
	}
	codings := []coded{
		{"gzip", "gzip", func(t testing.TB, l int, p []byte) []byte { return gzipped(t, l, p) }},
		{"deflate", "zlib", zlibbed},
		{"Deflate", "raw", deflated},
	}
	for _, c := range codings {
		for _, level := range []int{gzip.NoCompression, gzip.BestSpeed, gzip.BestCompression} {
			sent := c.encode(t, level, clean)
			r, err := d.EncodedBody(bytes.NewReader(sent), c.header, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(out, sent) {
				t.Errorf("%s level %d: clean body: %v", c.name, level, err)
			}
			for _, at := range []int{100, 300 << 10, 1 << 20} {
				body := slices.Concat(clean[:at], []byte(" "+secret+" "), clean[at:])
				sent := c.encode(t, level, body)
				r, _ := d.EncodedBody(iotest.HalfReader(bytes.NewReader(sent)), c.header, nil)
				given, err := readUntilError(r)
				var l *Leak
				if !errors.As(err, &l) || l.Rule != "github-pat" || !strings.HasPrefix(l.Where, "body (") {
					t.Errorf("%s level %d, secret at %d: %v", c.name, level, at, err)
				}
				got := inflatedPrefix(c.name, given)
				if len(got) > at {
					t.Errorf("%s level %d, secret at %d: the %d bytes given out decode to %d bytes", c.name, level, at, len(given), len(got))
				}
				if at-len(got) > dlpWindow+decodeLag+2*markEvery {
					t.Errorf("%s level %d, secret at %d: the %d bytes given out decode to only %d bytes", c.name, level, at, len(given), len(got))
				}
			}
		}
	}
}

// TestDLPEncodedBodyRefused refuses what it cannot scan.
func TestDLPEncodedBodyRefused(t *testing.T) {
	d := newDLP(t, nil)
	for _, enc := range []string{"br", "zstd", "compress", "gzip, gzip", "gzip, br"} {
		if _, err := d.EncodedBody(strings.NewReader("x"), enc, nil); !errors.Is(err, ErrUnscannableBody) {
			t.Errorf("Content-Encoding %q: %v", enc, err)
		}
	}
	read := func(body []byte, enc string) ([]byte, error) {
		r, err := d.EncodedBody(bytes.NewReader(body), enc, nil)
		if err != nil {
			return nil, err
		}
		return readUntilError(r)
	}
	clean := csvBody(100 << 10)
	gz := gzipped(t, gzip.BestSpeed, clean)
	for name, tc := range map[string]struct {
		body []byte
		enc  string
		want error
	}{
		"not gzip":       {clean, "gzip", ErrUnscannableBody},
		"truncated":      {gz[:len(gz)-20], "gzip", ErrUnscannableBody},
		"trailing bytes": {append(slices.Clone(gz), "tail"...), "gzip", ErrUnscannableBody},
		"after deflate":  {append(deflated(t, 6, clean), "tail"...), "deflate", ErrUnscannableBody},
		"after zlib":     {append(zlibbed(t, 6, clean), "tail"...), "deflate", ErrUnscannableBody},
	} {
		out, err := read(tc.body, tc.enc)
		if !errors.Is(err, tc.want) || len(out) != 0 {
			t.Errorf("%s: gave out %d bytes, then %v", name, len(out), err)
		}
	}

	// Two members, an empty body, and a gzip header that carries a token.
	two := gzipped(t, gzip.BestSpeed, clean, clean)
	if out, err := read(two, "x-gzip"); err != nil || !bytes.Equal(out, two) {
		t.Errorf("two members: %v", err)
	}
	if out, err := read(nil, "gzip"); err != nil || len(out) != 0 {
		t.Errorf("empty: %v", err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Comment = fakePAT(t)
	zw.Write(clean)
	zw.Close()
	_, err := read(b.Bytes(), "gzip")
	if l := (*Leak)(nil); !errors.As(err, &l) || l.Where != "the gzip header of the body" {
		t.Errorf("token in the gzip comment: %v", err)
	}

	// More than the limit decoded.
	small := *d
	small.maxDecoded = 1 << 20
	r, _ := small.EncodedBody(bytes.NewReader(gzipped(t, gzip.BestSpeed, make([]byte, 2<<20))), "gzip", nil)
	if out, err := readUntilError(r); !errors.Is(err, ErrBodyTooLarge) || len(out) > 64<<10 {
		t.Errorf("2 MiB decoded, limit 1 MiB: gave out %d bytes, then %v", len(out), err)
	}
	if _, err := read(gzipped(t, gzip.BestSpeed, make([]byte, 1<<20)), "gzip"); err != nil {
		t.Errorf("1 MiB decoded: %v", err)
	}

	// Compressed data that decodes to nothing: empty stored blocks, as a
	// flush writes, without end.
	var stall bytes.Buffer
	fw, _ := flate.NewWriter(&stall, flate.BestSpeed)
	for stall.Len() < 8<<20 {
		fw.Flush()
	}
	if out, err := read(stall.Bytes(), "deflate"); !errors.Is(err, ErrUnscannableBody) || len(out) != 0 {
		t.Errorf("empty blocks: gave out %d bytes, then %v", len(out), err)
	}
}

// The catch-all rule lets a UUID through under a name ending in "key"
// (Codex's prompt_cache_key), and still refuses a high-entropy value there,
// and a credential of a known format anywhere.
func TestDLPUUIDUnderKeyName(t *testing.T) {
	d := newDLP(t, nil)
	for _, body := range []string{
		`{"model":"gpt-6","prompt_cache_key":"01a23273-8da8-7161-9071-58d3c66758a8","input":[]}`,
		`{"session_key": "B5F0E8A2-7C4D-4E1A-9F3B-2D6C8E0A1B7F"}`,
	} {
		if l := d.ScanText("body", body, nil); l != nil {
			t.Errorf("a UUID was refused: %v\n%s", l, body)
		}
	}
	for _, body := range []string{
		`{"prompt_cache_key":"q8Zr3LmX9vKp2TnW7yBc4HdF6gJs1Qe5"}`,
		`{"prompt_cache_key":"01a23273-8da8-7161-9071-58d3c66758a8-x9Kq2Lm8Zr3"}`,
		`{"note":"` + fakePAT(t) + `"}`,
	} {
		if l := d.ScanText("body", body, nil); l == nil {
			t.Errorf("not refused:\n%s", body)
		}
	}
}

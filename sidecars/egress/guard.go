package egress

import (
	"bytes"
	"fmt"
	"io"
)

// SecretFound is the error of a guarded stream that carried one of the
// bottle's secret values or placeholders. It names the secret and the
// form, never the value.
type SecretFound struct {
	// Where is what carried it: "request body", "response body".
	Where string
	SecretMatch
}

func (e *SecretFound) Error() string {
	return fmt.Sprintf("the %s carries %s (%s)", e.Where, e.Secret, e.Encoding)
}

// guardReader passes a stream through a SecretScanner: it returns every
// byte at once except a suffix of minHeld bytes or more that could be the
// start of a secret form (so a secret split across reads is still seen
// whole before more than minHeld-1 bytes of it are returned), and fails
// with *SecretFound, without returning the secret's bytes, when one
// appears. A stream that never ends a read on the start of a form, as the
// events of a server-sent event stream do not, is not delayed at all.
//
// Memory: the pending suffix and the tail are below the scanner's
// longest form.
type guardReader struct {
	r    io.Reader
	core guardCore
	out  []byte // scanned, clean, not yet returned
	buf  []byte
	err  error
	// atEOF, when set, checks what arrives only at the end (a response's
	// trailers) before the end is passed on.
	atEOF func() error
}

func newGuardReader(r io.Reader, s *SecretScanner, where string) *guardReader {
	return &guardReader{r: r, core: guardCore{s: s, where: where}}
}

func (g *guardReader) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if g.err != nil {
			if g.err == io.EOF && g.atEOF != nil {
				if err := g.atEOF(); err != nil {
					g.err = err
					g.core.pending = nil
					return 0, err
				}
				g.atEOF = nil
			}
			if g.err == io.EOF {
				if held := g.core.flush(); len(held) > 0 {
					g.out = held
					break
				}
			}
			return 0, g.err
		}
		if g.buf == nil {
			g.buf = make([]byte, 32<<10)
		}
		n, err := g.r.Read(g.buf)
		g.err = err
		if n == 0 {
			continue
		}
		out, ferr := g.core.feed(g.buf[:n])
		if ferr != nil {
			g.err = ferr
			return 0, ferr
		}
		g.out = out
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// Close closes the underlying reader when it is a Closer.
func (g *guardReader) Close() error {
	if c, ok := g.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// guardCore is the guard's state over one stream: what it released last
// (tail) and what it holds back (pending).
type guardCore struct {
	s     *SecretScanner
	where string
	// tail is the end of what was released, up to the longest form less
	// one byte: a read that ended fewer than minHeld bytes into a value
	// let those go, and the rest must still be seen as the value.
	tail    []byte
	pending []byte // scanned, held back: a possible start of a form
}

// feed scans data after what came before and returns the bytes it
// releases (valid until the next call), or *SecretFound.
func (c *guardCore) feed(data []byte) ([]byte, error) {
	all := append(c.pending, data...)
	if err := c.check(all); err != nil {
		c.pending = nil
		return nil, err
	}
	keep := c.s.partialSuffix(all)
	out := all[:len(all)-keep]
	c.pending = append([]byte(nil), all[len(all)-keep:]...)
	c.release(out)
	return out, nil
}

// check scans b after the tail, without releasing it.
func (c *guardCore) check(b []byte) error {
	scan := append(c.tail[:len(c.tail):len(c.tail)], b...)
	if m, found := c.s.Scan(scan); found {
		return &SecretFound{Where: c.where, SecretMatch: m}
	}
	return nil
}

// release records out as given out.
func (c *guardCore) release(out []byte) {
	r := append(c.tail, out...)
	c.tail = append([]byte(nil), r[max(0, len(r)-(c.s.maxLen-1)):]...)
}

// flush releases what is held, at the end of the stream.
func (c *guardCore) flush() []byte {
	out := c.pending
	c.pending = nil
	c.release(out)
	return out
}

// minHeld is the shortest start of a form a guarded stream holds back.
// Shorter ones are passed on: a WebSocket message or any chunk of a
// stream ends on one of a form's first characters too often for the
// stream to wait on every one. The cost is that up to minHeld-1 bytes of
// the start of a form can pass before the rest of it is seen and the
// stream cut; they are the start of a known prefix or encoding, not the
// secret's random part.
const minHeld = 4

// partialSuffix returns the length of the longest suffix of b, at least
// minHeld long, that is a proper prefix of one of the forms: the bytes to
// hold back until more data shows whether they start a secret.
func (s *SecretScanner) partialSuffix(b []byte) int {
	best := minHeld - 1
	for _, f := range s.forms {
		// The earliest start in the last len(f)-1 bytes whose rest is a
		// prefix of f gives the longest such suffix.
		for i := max(0, len(b)-len(f.text)+1); i < len(b)-best; i++ {
			if b[i] == f.text[0] && bytes.HasPrefix(f.text, b[i:]) {
				best = len(b) - i
				break
			}
		}
	}
	if best < minHeld {
		return 0
	}
	return best
}

package egress

import (
	"encoding/binary"
	"errors"
	"io"
)

// WebSocket frames (RFC 6455 section 5.2) on a connection upgraded from
// an intercepted host. The proxy guards them as it guards bodies, but on
// what the frames carry, not on the bytes of the connection: a frame
// header, or a client's mask (section 5.3), inside a value would hide it
// from a scan of the raw bytes.
//
// From the destination, the payloads of the data frames are one stream
// for the response guard (guardCore), so a bound value split across
// frames or messages is still seen whole; control frames (at most 125
// bytes) are scanned whole with what came before. The guard holds back a
// possible start of a value, so the proxy re-frames what it releases:
// each released piece goes out as a fragment of its message (section 5.4
// lets an intermediary change the fragmentation of a message on a
// connection with no extension). Compression (permessage-deflate) is never
// negotiated: the proxy drops Sec-WebSocket-Extensions from the request
// and refuses a 101 that names an extension, and a frame with a reserved
// bit set ends the connection.
//
// From the client, the payloads are unmasked and scanned (a SecretStream)
// for every secret's value and placeholder, and the frames pass on as
// they are; a finding ends the connection. The gitleaks rules are not run
// on WebSocket messages.

// maxWSFrameHeader is the longest frame header: 2 bytes, 8 of length, 4
// of mask.
const maxWSFrameHeader = 14

// errWSReserved ends a connection whose frames use an extension.
var errWSReserved = errors.New("a WebSocket frame with a reserved bit set (an extension the proxy did not let be negotiated)")

// wsFrame is a parsed frame header.
type wsFrame struct {
	fin    bool
	opcode byte
	masked bool
	mask   [4]byte
	length uint64
}

// readWSHeader reads one frame header from r.
func readWSHeader(r io.Reader) (wsFrame, error) {
	var h [maxWSFrameHeader]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return wsFrame{}, err
	}
	_, need, err := parseWSHeader(h[:2])
	if err != nil {
		return wsFrame{}, err
	}
	if _, err := io.ReadFull(r, h[2:need]); err != nil {
		return wsFrame{}, err
	}
	f, _, _ := parseWSHeader(h[:need])
	if f.opcode >= 8 && (f.length > 125 || !f.fin) {
		return f, errors.New("a malformed WebSocket control frame")
	}
	return f, nil
}

// appendWSHeader appends an unmasked frame header.
func appendWSHeader(b []byte, fin bool, opcode byte, n int) []byte {
	first := opcode
	if fin {
		first |= 0x80
	}
	switch {
	case n < 126:
		return append(b, first, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, first, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(n))
	}
}

// wsDownGuard reads the destination's frames and gives out the re-framed
// stream the client may see.
type wsDownGuard struct {
	src  io.Reader
	core guardCore
	out  []byte // re-framed bytes not yet read
	err  error
	// msgOpen is set while a data message has fragments out but not its
	// last; msgOp is its opcode.
	msgOpen bool
	msgOp   byte
	// finHeld is set when the message's last frame arrived but bytes of
	// it are held back: its end goes out with them.
	finHeld bool
	buf     []byte
}

func newWSDownGuard(src io.Reader, s *SecretScanner) *wsDownGuard {
	return &wsDownGuard{src: src, core: guardCore{s: s, where: "WebSocket message"}}
}

func (g *wsDownGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.err = g.step()
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// emit appends released payload as a fragment of the open message (or
// the start of one of opcode op), ending it when fin.
func (g *wsDownGuard) emit(op byte, data []byte, fin bool) {
	if len(data) == 0 && !fin {
		return
	}
	code := byte(0)
	if !g.msgOpen {
		code = op
		g.msgOp = op
	}
	g.out = appendWSHeader(g.out, fin, code, len(data))
	g.out = append(g.out, data...)
	g.msgOpen = !fin
}

// step reads one frame and re-frames what the guard releases.
func (g *wsDownGuard) step() error {
	f, err := readWSHeader(g.src)
	if err != nil {
		if err == io.EOF && g.finHeld {
			// The end: what was held is no value's start any more.
			g.emit(g.msgOp, g.core.flush(), true)
			g.finHeld = false
			g.err = io.EOF
			return nil
		}
		return err
	}
	if f.opcode >= 8 {
		// A control frame may come between fragments; its payload (a
		// close reason, a ping's data) is scanned whole, with the tail.
		payload := make([]byte, f.length)
		if _, err := io.ReadFull(g.src, payload); err != nil {
			return err
		}
		if err := g.core.check(payload); err != nil {
			return err
		}
		if f.opcode == 0x8 && g.finHeld {
			// Closing: the held bytes end their message first.
			g.emit(g.msgOp, g.core.flush(), true)
			g.finHeld = false
		}
		g.out = appendWSHeader(g.out, true, f.opcode, len(payload))
		g.out = append(g.out, payload...)
		return nil
	}
	switch {
	case f.opcode == 0 && !g.msgOpen:
		return errors.New("a WebSocket continuation frame outside a message")
	case f.opcode != 0 && g.msgOpen && !g.finHeld:
		return errors.New("a WebSocket message began inside another")
	}
	op := f.opcode
	if op == 0 {
		op = g.msgOp
	}
	// oldHeld counts the held bytes that end the previous message.
	oldHeld := 0
	if g.finHeld {
		oldHeld = len(g.core.pending)
	}
	remaining := f.length
	for first := true; first || remaining > 0; first = false {
		n := min(remaining, 32<<10)
		if uint64(cap(g.buf)) < n {
			g.buf = make([]byte, n)
		}
		chunk := g.buf[:n]
		if _, err := io.ReadFull(g.src, chunk); err != nil {
			return err
		}
		remaining -= n
		rel, err := g.core.feed(chunk)
		if err != nil {
			return err
		}
		if oldHeld > 0 {
			if len(rel) < oldHeld {
				// The previous message's end and this one's start
				// together still look like a value's start.
				return errors.New("WebSocket messages that together begin a bound secret's value")
			}
			g.emit(g.msgOp, rel[:oldHeld], true)
			g.finHeld, rel, oldHeld = false, rel[oldHeld:], 0
			g.msgOpen = false
		}
		last := remaining == 0 && f.fin && len(g.core.pending) == 0
		g.emit(op, rel, last)
	}
	if f.fin && len(g.core.pending) > 0 {
		g.finHeld, g.msgOp = true, op
	}
	return nil
}

// wsUpGuard scans the client's frames, unmasked, before they go to the
// destination: every byte of a data payload for the bottle's own values
// and placeholders (stream), and each whole message, up to maxWSMessage,
// with the outbound scan (dlp). It keeps a message's frames, and control
// frames between them, until the message is whole and scanned; the frames
// of a longer message go on as they come, scanned for the bottle's own
// values only.
type wsUpGuard struct {
	w      io.Writer
	stream *SecretStream // nil: no secret to look for
	dlp    *DLP          // nil: no message scan

	// The frame being parsed: hdr collects its header; left, masked, mask
	// and pos say where in its payload the next byte is; data tells a
	// data frame from a control frame, fin the message's last frame.
	hdr    []byte
	left   uint64
	masked bool
	mask   [4]byte
	pos    uint64
	data   bool
	fin    bool
	inBody bool

	raw     []byte // frames kept until the message is scanned
	msg     []byte // the message's payload so far, unmasked
	tooLong bool   // the message outgrew maxWSMessage: frames pass on
	plain   []byte
	err     error
}

// maxWSMessage is the longest client message kept whole for the outbound
// scan.
const maxWSMessage = 1 << 20

func (g *wsUpGuard) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.scan(p); err != nil {
		g.err = err
		return 0, err
	}
	return len(p), nil
}

// pass sends b on, or keeps it with the message being scanned.
func (g *wsUpGuard) pass(b []byte) error {
	if g.dlp != nil && !g.tooLong && (len(g.msg) > 0 || len(g.raw) > 0 || g.data) {
		g.raw = append(g.raw, b...)
		return nil
	}
	_, err := g.w.Write(b)
	return err
}

// scan parses p as the continuation of the client's frames.
func (g *wsUpGuard) scan(p []byte) error {
	for len(p) > 0 {
		if !g.inBody {
			g.hdr = append(g.hdr, p[0])
			p = p[1:]
			if len(g.hdr) < 2 {
				continue
			}
			f, need, err := parseWSHeader(g.hdr)
			if err != nil {
				return err
			}
			if len(g.hdr) < need {
				continue
			}
			g.left, g.masked, g.mask, g.pos = f.length, f.masked, f.mask, 0
			g.data, g.fin = f.opcode < 8, f.fin
			if err := g.pass(g.hdr); err != nil {
				return err
			}
			g.hdr = g.hdr[:0]
			g.inBody = true
			if g.left > 0 {
				continue
			}
		} else {
			n := min(uint64(len(p)), g.left)
			g.plain = append(g.plain[:0], p[:n]...)
			if g.masked {
				for i := range g.plain {
					g.plain[i] ^= g.mask[(g.pos+uint64(i))%4]
				}
			}
			if m, found := g.stream.Write(g.plain); found {
				return &SecretFound{Where: "WebSocket message from the client", SecretMatch: m}
			}
			if g.data && g.dlp != nil && !g.tooLong {
				g.msg = append(g.msg, g.plain...)
				if len(g.msg) > maxWSMessage {
					// Too long to keep: what is kept goes on, the rest
					// as it comes.
					g.tooLong = true
					if _, err := g.w.Write(g.raw); err != nil {
						return err
					}
					g.raw, g.msg = nil, nil
				}
			}
			if err := g.pass(p[:n]); err != nil {
				return err
			}
			g.pos += n
			g.left -= n
			p = p[n:]
		}
		if g.left == 0 && g.inBody {
			g.inBody = false
			if g.data && g.fin {
				if err := g.endMessage(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// endMessage scans a whole message and sends its frames on.
func (g *wsUpGuard) endMessage() error {
	defer func() { g.raw, g.msg, g.tooLong = g.raw[:0], g.msg[:0], false }()
	if g.dlp == nil || g.tooLong {
		return nil
	}
	if l := g.dlp.ScanText("a WebSocket message", string(g.msg), nil); l != nil {
		return l
	}
	_, err := g.w.Write(g.raw)
	return err
}

// parseWSHeader parses a frame header from its first bytes h (at least
// 2). need is the header's whole length, known from its first 2 bytes;
// while len(h) < need, f holds only fin, opcode and masked.
func parseWSHeader(h []byte) (f wsFrame, need int, err error) {
	if h[0]&0x70 != 0 {
		return f, 0, errWSReserved
	}
	f.fin, f.opcode, f.masked = h[0]&0x80 != 0, h[0]&0x0f, h[1]&0x80 != 0
	need = 2
	switch h[1] & 0x7f {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if f.masked {
		need += 4
	}
	if len(h) < need {
		return f, need, nil
	}
	switch l := h[1] & 0x7f; l {
	case 126:
		f.length = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		f.length = binary.BigEndian.Uint64(h[2:10])
	default:
		f.length = uint64(l)
	}
	if f.masked {
		copy(f.mask[:], h[need-4:need])
	}
	return f, need, nil
}

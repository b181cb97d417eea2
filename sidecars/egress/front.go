package egress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The proxy's client side is an HTTP/1.1 server of its own (frontConn),
// not net/http's: a CONNECT is answered and its tunnel relayed on the
// goroutine that read it, and an absolute-URI request is forwarded on
// that goroutine too, over an upstream connection kept for its decision
// (plainPool), without the server's per-request background read, its
// response writer and the transport's two connection goroutines. That
// halves the CPU time of a forwarded request (bench/egress.sh).
//
// Requests are read by http.ReadRequest, the parser net/http's server
// uses, with the same limits, and checked as that server checks them
// before it calls a handler (net/http/server.go:976-1035@go1.26.8); the
// server's answers to malformed requests are kept word for word
// (server.go:1996-2037@go1.26.8).

// maxHeaderBytes bounds a request's line and headers, as net/http's
// server does by default; 4096 more bytes of read-ahead are allowed
// (server.go:904@go1.26.8).
const maxHeaderBytes = http.DefaultMaxHeaderBytes + 4096

// maxDrainBytes is how much of a request body the proxy reads and
// discards after answering, so that the client's connection can carry its
// next request; past it the connection is closed (as net/http's
// maxPostHandlerReadBytes, server.go:1102@go1.26.8).
const maxDrainBytes = 256 << 10

var (
	frontReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	frontWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// frontConn is one client connection.
type frontConn struct {
	p  *Proxy
	c  net.Conn
	fr flushingReader   // c
	lr io.LimitedReader // fr, limited while headers are read
	br *bufio.Reader
	bw *bufio.Writer

	// mu orders what goes to the client outside bw's single writer: a
	// "100 Continue" sent when the body is first read, interim responses,
	// and the start of the final response (final).
	mu    sync.Mutex
	final bool

	// bodyWrite, when set, gets the result of sending the request body
	// upstream on a goroutine of its own.
	bodyWrite    chan error
	bodyWriteErr error

	// deadline is when the sweep closes the connection (unix
	// nanoseconds), 0 for never: the end of the idle timeout while it
	// waits for a request, of the header timeout while it reads one.
	deadline atomic.Int64

	// stateMu guards state, which Shutdown reads, and peer, the upstream
	// connection of the request being forwarded, which it closes.
	stateMu sync.Mutex
	state   frontState
	peer    net.Conn
}

type frontState int

const (
	frontIdle     frontState = iota // waiting for a request
	frontActive                     // serving one
	frontHijacked                   // a tunnel or a relay owns the connection
	frontClosed                     // closed by the proxy
)

// Serve accepts proxy clients on ln, which may be a TCP or a unix socket
// listener, until Shutdown or Close; it then returns nil. Serve may be
// called for several listeners at once. A failure to accept (such as too
// many open files) is retried after a pause that grows to one second.
func (p *Proxy) Serve(ln net.Listener) error {
	if !p.addListener(ln) {
		ln.Close()
		return nil
	}
	defer p.removeListener(ln)
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.stopping() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("egress proxy on %s: %w", ln.Addr(), err)
			}
			// As net/http's server does (server.go:3437-3450@go1.26.8).
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		fc := &frontConn{p: p, c: c}
		fc.deadline.Store(time.Now().Add(readHeaderTimeout).UnixNano())
		if !p.trackFront(fc) {
			c.Close()
			continue
		}
		go fc.serve()
	}
}

// The header and idle timeouts of client connections are kept by one
// sweep of them all, every sweepPeriod, rather than by a deadline on each
// connection: a deadline is a timer, and a timer due sooner than any
// other wakes the runtime's network poller on another thread, which cost
// a CONNECT as much CPU time as its tunnel's setup (bench/egress.sh). A
// connection is closed up to sweepPeriod after its timeout.
func (p *Proxy) sweepPeriod() time.Duration {
	return min(max(min(p.idleTimeout, readHeaderTimeout)/8, 10*time.Millisecond), time.Second)
}

// sweep closes the client connections whose timeout has passed, and
// comes again after sweepPeriod unless the proxy stops.
func (p *Proxy) sweep() {
	now := time.Now().UnixNano()
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.closing.Load() {
		return
	}
	for fc := range p.fronts {
		if d := fc.deadline.Load(); d != 0 && now >= d {
			fc.closeIf(frontIdle)
		}
	}
	p.sweeper.Reset(p.sweepPeriod())
}

// setState moves the connection to s, unless the proxy closed it or, for
// frontIdle, is stopping; it reports whether it did.
func (fc *frontConn) setState(s frontState) bool {
	fc.stateMu.Lock()
	defer fc.stateMu.Unlock()
	if fc.state == frontClosed || s == frontIdle && fc.p.stopping() {
		return false
	}
	fc.state = s
	return true
}

// closeIf closes the connection if it is in one of states.
func (fc *frontConn) closeIf(states ...frontState) {
	fc.stateMu.Lock()
	defer fc.stateMu.Unlock()
	for _, s := range states {
		if fc.state == s {
			fc.state = frontClosed
			fc.c.Close()
			if fc.peer != nil {
				fc.peer.Close()
			}
			return
		}
	}
}

func (fc *frontConn) serve() {
	p := fc.p
	defer p.untrackFront(fc)
	fc.fr.r = fc.c
	fc.lr.R = &fc.fr
	fc.br = frontReaders.Get().(*bufio.Reader)
	fc.br.Reset(&fc.lr)
	fc.bw = frontWriters.Get().(*bufio.Writer)
	fc.bw.Reset(fc.c)
	defer func() {
		fc.br.Reset(nil)
		frontReaders.Put(fc.br)
		fc.bw.Reset(nil)
		frontWriters.Put(fc.bw)
	}()
	hijacked := false
	defer func() {
		if !hijacked {
			fc.c.Close()
		}
	}()
	lastMethod := ""
	for first := true; ; first = false {
		if !first {
			if !fc.setState(frontIdle) {
				return
			}
			if fc.br.Buffered() == 0 {
				fc.deadline.Store(time.Now().Add(p.idleTimeout).UnixNano())
				if _, err := fc.br.Peek(1); err != nil {
					return
				}
			}
			fc.deadline.Store(time.Now().Add(readHeaderTimeout).UnixNano())
		}
		fc.lr.N = maxHeaderBytes
		if lastMethod == http.MethodPost {
			// Tolerance for old clients that end a POST body with an
			// extra line break (server.go:993-996@go1.26.8).
			peek, _ := fc.br.Peek(4)
			fc.br.Discard(leadingLineBreaks(peek))
		}
		req, err := http.ReadRequest(fc.br)
		if !fc.setState(frontActive) {
			return
		}
		if err != nil {
			fc.badRequest(err)
			return
		}
		fc.deadline.Store(0)
		lastMethod = req.Method
		fc.lr.N = math.MaxInt64
		if status, text := checkFrontRequest(req); status != 0 {
			fc.writeStatusError(status, text)
			return
		}
		fc.final = false
		w := &frontWriter{fc: fc, req: req, h: http.Header{}}
		if req.Body != nil && req.Body != http.NoBody {
			w.body = &eofBody{ReadCloser: req.Body}
			req.Body = w.body
			if expectsContinue(req) {
				w.cont = &continueReader{ReadCloser: w.body, fc: fc}
				req.Body = w.cont
			}
		}
		if req.Method == http.MethodConnect {
			if p.serveConnect(w, req) {
				hijacked = true
				return
			}
		} else if p.serveForward(w, req) {
			hijacked = true
			return
		}
		if !w.finish() {
			return
		}
	}
}

func leadingLineBreaks(b []byte) int {
	for i, c := range b {
		if c != '\r' && c != '\n' {
			return i
		}
	}
	return len(b)
}

// errorHeaders end the status line of net/http's answers to malformed
// requests (server.go:1996@go1.26.8).
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// badRequest answers a request http.ReadRequest could not read, as
// net/http's server does (server.go:1998-2037@go1.26.8): nothing for a
// connection that ended or timed out, 431 for headers over the limit,
// 501 for an unknown transfer coding, else 400.
func (fc *frontConn) badRequest(err error) {
	switch {
	case fc.lr.N <= 0:
		const publicErr = "431 Request Header Fields Too Large"
		io.WriteString(fc.c, "HTTP/1.1 "+publicErr+errorHeaders+publicErr)
		closeWriteAndWait(fc.c)
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
		// unsupportedTEError (transfer.go:615@go1.26.8) is not exported;
		// its text is.
		fmt.Fprintf(fc.c, "HTTP/1.1 %d %s%sUnsupported transfer encoding", http.StatusNotImplemented, http.StatusText(http.StatusNotImplemented), errorHeaders)
	case isCommonNetReadError(err):
	default:
		const publicErr = "400 Bad Request"
		io.WriteString(fc.c, "HTTP/1.1 "+publicErr+errorHeaders+publicErr)
	}
}

// writeStatusError answers a request the checks refused, and the
// connection ends.
func (fc *frontConn) writeStatusError(code int, text string) {
	fmt.Fprintf(fc.c, "HTTP/1.1 %d %s: %s%s%d %s: %s", code, http.StatusText(code), text, errorHeaders, code, http.StatusText(code), text)
}

// closeWriteAndWait half-closes c and waits briefly, so that the client
// reads the answer before the connection is reset (server.go:1774@go1.26.8).
func closeWriteAndWait(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(500 * time.Millisecond)
}

// isCommonNetReadError is net/http's (server.go:1869-1880@go1.26.8).
func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "read" {
		return true
	}
	return false
}

// checkFrontRequest applies net/http's server's checks to a request it
// read (server.go:1006-1035 and 2041-2048@go1.26.8), returning the status
// and text of a refusal, or 0. http.ReadRequest has removed the Host
// headers (request.go:1058-1066@go1.26.8), so their number is not
// checked; the proxy takes the destination from the request target and
// never from a Host header, and an origin-form request is refused anyway.
func checkFrontRequest(req *http.Request) (int, string) {
	if req.ProtoMajor != 1 {
		return http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return http.StatusBadRequest, "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return http.StatusBadRequest, "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return http.StatusBadRequest, "invalid header value"
			}
		}
	}
	if e := req.Header.Get("Expect"); e != "" && !strings.EqualFold(e, "100-continue") {
		return http.StatusExpectationFailed, "unsupported Expect"
	}
	return 0, ""
}

// expectsContinue reports whether the client waits for "100 Continue"
// before it sends the body.
func expectsContinue(req *http.Request) bool {
	return req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && strings.EqualFold(req.Header.Get("Expect"), "100-continue")
}

// continueReader sends "100 Continue" when the body is first read, unless
// the final response has begun (as net/http's expectContinueReader,
// server.go:932-970@go1.26.8).
type continueReader struct {
	io.ReadCloser
	fc   *frontConn
	sent bool
}

func (r *continueReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		r.fc.mu.Lock()
		if !r.fc.final {
			io.WriteString(r.fc.c, "HTTP/1.1 100 Continue\r\n\r\n")
		}
		r.fc.mu.Unlock()
	}
	return r.ReadCloser.Read(p)
}

// beginFinal marks the start of the final response: no "100 Continue"
// may follow.
func (fc *frontConn) beginFinal() {
	fc.mu.Lock()
	fc.final = true
	fc.mu.Unlock()
}

// hijack hands the connection and what the client sent ahead to a
// tunnel or a relay; the caller closes the connection.
func (fc *frontConn) hijack() (net.Conn, []byte, bool) {
	if !fc.setState(frontHijacked) {
		return nil, nil, false
	}
	var early []byte
	if n := fc.br.Buffered(); n > 0 {
		b, _ := fc.br.Peek(n)
		early = append([]byte(nil), b...)
		fc.br.Discard(n)
	}
	return fc.c, early, true
}

// frontWriter is the http.ResponseWriter of the proxy's own answers on a
// client connection (refusals, failures): each has a Content-Length, and
// one without ends the connection.
type frontWriter struct {
	fc    *frontConn
	req   *http.Request
	h     http.Header
	wrote bool
	// close ends the connection after this response.
	close bool
	// failed is set when writing to the client failed.
	failed bool
	// body is the request body as read, if any; cont sends "100 Continue"
	// on its first read, when the client expects it.
	body *eofBody
	cont *continueReader
}

func (w *frontWriter) Header() http.Header { return w.h }

func (w *frontWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.fc.beginFinal()
	if !w.bodyDone() || w.req.Close || w.h.Get("Content-Length") == "" || httpguts.HeaderValuesContainsToken(w.h["Connection"], "close") {
		w.close = true
		w.h.Set("Connection", "close")
	}
	bw := w.fc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	w.h.Write(bw)
	bw.WriteString("\r\n")
}

func (w *frontWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.req.Method == http.MethodHead {
		return len(b), nil
	}
	return w.fc.bw.Write(b)
}

// finish sends what is buffered and reports whether the connection can
// carry another request: the answer did not end it, and the client did
// not ask to.
func (w *frontWriter) finish() bool {
	if err := w.fc.bw.Flush(); err != nil || w.failed || w.close || w.req.Close {
		return false
	}
	return w.bodyDone()
}

// bodyDone reports whether the request body was read to its end, reading
// and discarding up to maxDrainBytes of it first, as net/http's server
// does before it answers (server.go:1382-1432@go1.26.8). A body the
// client waits to send until it hears "100 Continue" is never read.
func (w *frontWriter) bodyDone() bool {
	if w.body == nil || w.body.sawEOF.Load() {
		return true
	}
	if w.cont != nil && !w.cont.sent {
		return false
	}
	n, err := io.CopyN(io.Discard, w.body, maxDrainBytes+1)
	return err == io.EOF && n <= maxDrainBytes
}

// eofBody is a request body as read from the client. It records whether
// it was read to its end, which leaves the connection ready for the next
// request. Its Close does not close the body it wraps, which would read
// the rest of a body sent for however long the client takes; once closed
// early, the connection is not used again.
type eofBody struct {
	io.ReadCloser
	// sawEOF is set by the goroutine that sends the body upstream and
	// read by the request's.
	sawEOF atomic.Bool
	closed bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.sawEOF.Store(true)
	}
	return n, err
}

func (b *eofBody) Close() error {
	b.closed = true
	return nil
}

// prefixConn is a connection whose first bytes were read ahead into
// early.
type prefixConn struct {
	net.Conn
	early []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

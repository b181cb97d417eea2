package egress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"golang.org/x/net/http/httpguts"
)

// plainPool keeps the plain-HTTP forwarder's upstream connections alive
// between requests, but never across decisions: a connection is kept
// under its decision's key (the rule set, the deciding rule, the host and
// the port) and taken again only for a request with the same key, so a
// connection dialled and checked for one decision never carries a request
// another decision allowed, and goes to the address that was checked when
// it was dialled. A change of the rules makes every key new and closes the
// kept connections.
type plainPool struct {
	// noKeepAlive dials for every request, as the proxy did before it
	// kept connections: the benchmark's baseline.
	noKeepAlive bool

	mu    sync.Mutex
	rules *[]plan.Rule // the rule set of the kept connections
	idle  map[plainKey][]*upstreamConn
	n     int // connections in idle
}

// plainKey identifies a decision: the rule set (which the proxy never
// changes in place), the deciding rule's index in it, the host and the
// port.
type plainKey struct {
	rules *[]plan.Rule
	rule  int
	host  string
	port  int
}

// Bounds of the kept connections.
const (
	maxIdlePerKey = 8
	maxIdle       = 1024
	// upstreamIdle is how long an idle upstream connection is kept.
	upstreamIdle = 90 * time.Second
)

// maxResponseHeaderBytes bounds a destination's answer's status line and
// headers, interim answers included, as net/http's Transport does by
// default (transport.go:329-334@go1.26.8).
const maxResponseHeaderBytes = 10 << 20

// upstreamConn is a connection to a plain-HTTP destination.
type upstreamConn struct {
	c     net.Conn
	fr    flushingReader   // c
	lr    io.LimitedReader // fr, limited while an answer's header is read
	br    *bufio.Reader
	bw    *bufio.Writer
	addr  netip.AddrPort
	key   plainKey
	timer *time.Timer // closes it after upstreamIdle in the pool
}

// get returns a kept connection for k that is still open, or nil.
func (u *plainPool) get(k plainKey) *upstreamConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		list := u.idle[k]
		if len(list) == 0 {
			return nil
		}
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		u.idle[k] = list[:len(list)-1]
		u.n--
		if !uc.timer.Stop() {
			continue // its idle time is up; the timer closes it
		}
		if uc.br.Buffered() > 0 || !stillOpen(uc.c) {
			uc.c.Close()
			continue
		}
		return uc
	}
}

// put keeps uc for its key, or closes it when the rules changed since
// its request was decided or the pool is full.
func (u *plainPool) put(uc *upstreamConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	// Bytes the destination sent behind its answer would be read as the
	// answer to the next request: such a connection is not kept (as
	// net/http's Transport refuses one, transport.go:2472-2483@go1.26.8).
	if u.noKeepAlive || uc.br.Buffered() > 0 || uc.key.rules != u.rules || u.n >= maxIdle || len(u.idle[uc.key]) >= maxIdlePerKey {
		uc.c.Close()
		return
	}
	if u.idle == nil {
		u.idle = map[plainKey][]*upstreamConn{}
	}
	u.idle[uc.key] = append(u.idle[uc.key], uc)
	u.n++
	if uc.timer == nil {
		uc.timer = time.AfterFunc(upstreamIdle, func() { u.expire(uc) })
	} else {
		uc.timer.Reset(upstreamIdle)
	}
}

// expire closes uc, kept for too long, and forgets it.
func (u *plainPool) expire(uc *upstreamConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[uc.key]
	for i, c := range list {
		if c == uc {
			u.idle[uc.key] = append(list[:i], list[i+1:]...)
			u.n--
			break
		}
	}
	uc.c.Close()
}

// reset closes every kept connection and keeps new ones only for the rule
// set rules (nil: none, the proxy stops).
func (u *plainPool) reset(rules *[]plan.Rule) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, list := range u.idle {
		for _, uc := range list {
			uc.timer.Stop()
			uc.c.Close()
		}
	}
	u.idle, u.n, u.rules = nil, 0, rules
}

// stillOpen reports whether a kept connection is still open and has sent
// nothing unasked: a destination may close a kept connection at any time,
// and a request sent on it would fail.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	raw.Read(func(fd uintptr) bool {
		open = peekOpen(fd)
		return true
	})
	return open
}

// hopHeaders are the hop-by-hop headers, which a proxy does not pass on
// (httputil/reverseproxy.go:365-375@go1.26.8).
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop removes the hop-by-hop headers from h, and those its
// Connection header names (reverseproxy.go:660-674@go1.26.8).
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, f := range hopHeaders {
		h.Del(f)
	}
}

// upgradeType is the protocol a message's Upgrade header names, if its
// Connection header has "upgrade" (reverseproxy.go:676-681@go1.26.8).
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// plainRequest is one absolute-URI request on its way to its destination.
type plainRequest struct {
	p   *Proxy
	w   *frontWriter
	r   *http.Request
	key plainKey
	ev  *Event
	// upType is the protocol the client asked to switch to, if any.
	upType string
	// up and down count the body bytes each way.
	up, down int64
}

// forwardPlain sends r, which d allows, to its destination over a kept or
// a new connection, and relays the answer. It reports whether the
// connection was handed over to a relay (a switch of protocols). ev is
// logged here.
func (p *Proxy) forwardPlain(w *frontWriter, r *http.Request, d Decision, key plainKey, ev *Event) (hijacked bool) {
	pr := &plainRequest{p: p, w: w, r: r, key: key, ev: ev, upType: upgradeType(r.Header)}
	// As httputil.ReverseProxy prepares its outgoing request
	// (reverseproxy.go:470-495@go1.26.8): no hop-by-hop header, an
	// upgrade asked for again, trailers kept if the client takes them.
	teTrailers := httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers")
	removeHopByHop(r.Header)
	if teTrailers {
		r.Header.Set("Te", "trailers")
	}
	if pr.upType != "" {
		if !httpguts.ValidHeaderFieldValue(pr.upType) || strings.ContainsAny(pr.upType, ",") {
			p.fail(w, ev, d, fmt.Errorf("client tried to switch to invalid protocol %q", pr.upType))
			return false
		}
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", pr.upType)
	}
	// The proxy answers "100 Continue" itself, when the body is first read.
	r.Header.Del("Expect")
	// The Host header follows the destination, never a header the client
	// chose; no User-Agent is added.
	r.Host = ""
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{""}
	}
	r.RequestURI = ""
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingReadCloser{ReadCloser: r.Body, n: &pr.up}
	}

	uc, resp, err := pr.roundTrip(d)
	if err != nil {
		pr.failed(d, uc, err)
		return false
	}
	fillDecision(ev, d)
	ev.Addr = uc.addr.String()
	ev.Status = resp.StatusCode
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return pr.relayUpgrade(uc, resp, d)
	}
	err = pr.relay(uc, resp)
	ev.BytesUp, ev.BytesDown = pr.up, pr.down
	if err != nil {
		ev.Error = err.Error()
	}
	p.finish(ev)
	return false
}

// errWrite wraps a failure to send the request upstream.
type errWrite struct{ err error }

func (e *errWrite) Error() string { return e.err.Error() }
func (e *errWrite) Unwrap() error { return e.err }

// roundTrip sends the request over a connection for its decision and
// reads the destination's answer, passing interim (1xx) answers on to the
// client. A request without a body that fails on a kept connection before
// any answer is sent again once over a new one: the destination may have
// closed the connection as it was taken.
func (pr *plainRequest) roundTrip(d Decision) (*upstreamConn, *http.Response, error) {
	hasBody := pr.r.Body != nil && pr.r.Body != http.NoBody
	for attempt := 0; ; attempt++ {
		uc := pr.p.plain.get(pr.key)
		reused := uc != nil
		if uc == nil {
			var err error
			if uc, err = pr.p.dialPlain(d, pr.key); err != nil {
				return nil, nil, err
			}
		}
		pr.w.fc.setPeer(uc.c)
		resp, err := pr.exchange(uc, hasBody)
		if err == nil {
			return uc, resp, nil
		}
		uc.c.Close()
		if reused && !hasBody && attempt == 0 && retryable(err) {
			continue
		}
		return uc, nil, err
	}
}

// retryable reports whether a request may have failed only because its
// kept connection was closed under it.
func retryable(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// exchange writes the request to uc and reads the final answer. A body is
// sent on a goroutine of its own, so that a destination that answers
// before it has read the whole body is heard.
func (pr *plainRequest) exchange(uc *upstreamConn, hasBody bool) (*http.Response, error) {
	r := pr.r
	var wrote chan error
	if !hasBody {
		err := r.Write(uc.bw)
		if err == nil {
			err = uc.bw.Flush()
		}
		if err != nil {
			return nil, &errWrite{err}
		}
	} else {
		wrote = make(chan error, 1)
		// While the body comes in, what was sent of it goes out before
		// the proxy waits for more.
		fr := &pr.w.fc.fr
		fr.dst = uc.bw
		go func() {
			err := r.Write(noReadFrom{uc.bw})
			if err == nil {
				err = uc.bw.Flush()
			}
			fr.dst = nil
			if err != nil {
				// The destination would wait for the rest forever.
				uc.c.Close()
			}
			wrote <- err
		}()
	}
	for {
		uc.lr.N = maxResponseHeaderBytes
		resp, err := http.ReadResponse(uc.br, r)
		tooLarge := uc.lr.N <= 0
		uc.lr.N = math.MaxInt64
		if tooLarge {
			err = fmt.Errorf("the answer's header is over %d bytes", maxResponseHeaderBytes)
		}
		if err != nil {
			if wrote != nil {
				if werr := <-wrote; werr != nil {
					return nil, &errWrite{werr}
				}
			}
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			// An interim answer, which a proxy passes on, except to an
			// HTTP/1.0 client, which would take it for the final one
			// (RFC 9110, section 15.2).
			if !r.ProtoAtLeast(1, 1) {
				continue
			}
			if err := pr.w.fc.writeInterim(resp); err != nil {
				uc.c.Close()
				if wrote != nil {
					<-wrote
				}
				return nil, err
			}
			continue
		}
		if wrote != nil {
			pr.w.fc.bodyWrite = wrote
		}
		return resp, nil
	}
}

// failed answers a request that got no answer from its destination.
func (pr *plainRequest) failed(d Decision, uc *upstreamConn, err error) {
	var we *errWrite
	if errors.As(err, &we) {
		if ref := scanRefusal(we.err); ref != nil {
			pr.p.refuse(pr.w, pr.ev, d, pr.r, ref)
			return
		}
	}
	if uc == nil {
		pr.p.fail(pr.w, pr.ev, d, err)
		return
	}
	// The destination was reached: report what went wrong with it rather
	// than as a refusal.
	fillDecision(pr.ev, d)
	pr.ev.Addr = uc.addr.String()
	pr.ev.Status, pr.ev.Error = http.StatusBadGateway, err.Error()
	pr.ev.BytesUp = pr.up
	pr.p.finish(pr.ev)
	reply(pr.w, pr.ev.Status, "bottle: egress to "+hostPort(d.Host, d.Port)+" failed: "+err.Error()+"\n", false)
}

// relay sends the destination's final answer to the client, then keeps
// the upstream connection if both sides are done with it cleanly.
func (pr *plainRequest) relay(uc *upstreamConn, resp *http.Response) error {
	fc := pr.w.fc
	reusable := !resp.Close && !pr.p.plain.noKeepAlive
	removeHopByHop(resp.Header)
	if !fc.bodySent() && pr.w.body != nil && pr.w.body.sawEOF.Load() {
		// The whole body was read from the client: its goroutine is only
		// finishing its write. Wait for it rather than end a connection
		// that may carry more requests.
		fc.bodyWriteErr = <-fc.bodyWrite
		fc.bodyWrite = nil
	}
	if pr.r.Close || !pr.r.ProtoAtLeast(1, 1) || pr.p.stopping() || !fc.bodySent() {
		// A body still being sent when the answer comes is cut off
		// (waitBodyWrite), so the client's connection ends.
		pr.w.close = true
	}
	resp.Close = pr.w.close
	bodyless := pr.r.Method == http.MethodHead || !bodyAllowed(resp.StatusCode)
	if !bodyAllowed(resp.StatusCode) {
		// A 204 or 304 has no body, whatever framing its header claims:
		// passed on, a chunked one would be followed by a last chunk
		// the client reads as the start of the next answer. (An answer
		// to HEAD keeps its framing header, which says what a GET would
		// get; Response.Write sends it no body.)
		resp.TransferEncoding = nil
		resp.Body = http.NoBody
	}
	if !bodyless && resp.ContentLength < 0 && len(resp.TransferEncoding) == 0 {
		// A body that ends when the destination closes: chunked to a
		// client that reads chunks, so that its connection stays.
		if pr.r.ProtoAtLeast(1, 1) {
			resp.TransferEncoding = []string{"chunked"}
		} else {
			resp.Close, pr.w.close = true, true
		}
	}
	if !pr.r.ProtoAtLeast(1, 1) && len(resp.TransferEncoding) > 0 {
		// An HTTP/1.0 client reads no chunks.
		resp.TransferEncoding, resp.Close, pr.w.close = nil, true, true
	}
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	body := &countingReadCloser{ReadCloser: resp.Body, n: &pr.down}
	resp.Body = body
	fc.beginFinal()
	uc.fr.dst = fc.bw
	err := resp.Write(noReadFrom{fc.bw})
	uc.fr.dst = nil
	if err == nil {
		err = fc.bw.Flush()
	}
	if err != nil {
		pr.w.failed = true
		reusable = false
	}
	if !body.eof {
		reusable = false
	}
	if werr := fc.waitBodyWrite(); werr != nil {
		reusable = false
		if err == nil {
			err = fmt.Errorf("send request body: %w", werr)
		}
	}
	fc.setPeer(nil)
	if reusable {
		pr.p.plain.put(uc)
	} else {
		uc.c.Close()
	}
	if err != nil {
		return fmt.Errorf("relay response: %w", err)
	}
	return nil
}

// bodyAllowed reports whether a response with status may have a body
// (transfer.go bodyAllowedForStatus@go1.26.8).
func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// relayUpgrade takes on the destination's switch of protocols: it checks
// that the protocol is the one asked for, passes the answer on and relays
// both connections as a tunnel until either side closes, no byte moves
// for the idle timeout, or the proxy stops.
func (pr *plainRequest) relayUpgrade(uc *upstreamConn, resp *http.Response, d Decision) bool {
	p, fc, ev := pr.p, pr.w.fc, pr.ev
	resUp := upgradeType(resp.Header)
	var bad error
	switch {
	case pr.upType == "":
		bad = errors.New("the destination switched protocols unasked")
	case !strings.EqualFold(resUp, pr.upType):
		// As reverseproxy.go:820-829@go1.26.8.
		bad = fmt.Errorf("backend tried to switch protocol %q when %q was requested", resUp, pr.upType)
	}
	if werr := fc.waitBodyWrite(); werr != nil && bad == nil {
		bad = fmt.Errorf("send request body: %w", werr)
	}
	fc.setPeer(nil)
	if bad != nil {
		uc.c.Close()
		ev.Status, ev.Error = http.StatusBadGateway, bad.Error()
		p.finish(ev)
		reply(pr.w, ev.Status, "bottle: egress to "+hostPort(ev.Host, ev.Port)+" failed: "+bad.Error()+"\n", true)
		return false
	}
	// What the destination sent behind its answer.
	var upEarly []byte
	if n := uc.br.Buffered(); n > 0 {
		b, _ := uc.br.Peek(n)
		upEarly = append([]byte(nil), b...)
	}
	var upstream net.Conn = uc.c
	if ev.Intercepted {
		// A host whose requests are checked: the WebSocket's messages
		// are scanned as on the https path (guardUpgrade), what came
		// behind the answer too.
		rwc, err := p.icpt.guardUpgrade(resp, &forwardState{d: d}, &prefixConn{Conn: uc.c, early: upEarly})
		if err != nil {
			uc.c.Close()
			ev.Status, ev.Error = http.StatusBadGateway, err.Error()
			p.finish(ev)
			reply(pr.w, ev.Status, "bottle: egress to "+hostPort(ev.Host, ev.Port)+" failed: "+err.Error()+"\n", true)
			return false
		}
		upstream, upEarly = &guardedConn{Conn: uc.c, rwc: rwc}, nil
	}
	client, early, ok := fc.hijack()
	if !ok {
		uc.c.Close()
		ev.Error = errStopping.Error()
		p.finish(ev)
		return false
	}
	t := &tunnel{client: client, upstream: upstream}
	if !p.track(t) {
		t.close()
		ev.Error = errStopping.Error()
		p.finish(ev)
		return true
	}
	defer p.untrack(t)
	t.up.Store(pr.up)
	// The answer, then what the destination sent behind it, then what the
	// client sent behind its request.
	fc.beginFinal()
	err := resp.Write(fc.bw)
	if err == nil {
		fc.bw.Write(upEarly)
		t.down.Add(int64(len(upEarly)))
		err = fc.bw.Flush()
	}
	if err == nil && len(early) > 0 {
		_, err = upstream.Write(early)
		t.up.Add(int64(len(early)))
	}
	if err != nil {
		t.close()
		ev.Error = fmt.Sprintf("relay upgraded connection: %v", err)
	} else if err := t.run(p.idleTimeout); err != nil {
		ev.Error = err.Error()
	}
	if t.stopped.Load() {
		ev.Error = stoppedText
	}
	ev.BytesUp, ev.BytesDown = t.up.Load(), t.down.Load()
	p.finish(ev)
	return true
}

// dialPlain dials a new upstream connection for d.
func (p *Proxy) dialPlain(d Decision, key plainKey) (*upstreamConn, error) {
	c, addr, err := p.dial(p.stopCtx, d)
	if err != nil {
		return nil, err
	}
	keepAlive(c)
	uc := &upstreamConn{c: c, bw: bufio.NewWriterSize(c, 4<<10), addr: addr, key: key}
	uc.fr.r = c
	uc.lr = io.LimitedReader{R: &uc.fr, N: math.MaxInt64}
	uc.br = bufio.NewReaderSize(&uc.lr, 4<<10)
	return uc, nil
}

// flushingReader is a connection as its bufio.Reader reads it. Before
// each read of the connection, where it may wait, it sends on what dst,
// the writer the data read is relayed to, has buffered: a stream
// (server-sent events, an upload in parts) moves as it comes, whatever the
// reader above waits for (a body's next bytes, or the rest of a chunk's
// size line or of the line break after its data), and a body that is all
// there goes out in as few writes as it takes. dst is set only while a
// body is relayed, by the goroutine that relays it, which alone writes to
// dst then.
type flushingReader struct {
	r   io.Reader
	dst *bufio.Writer
}

func (f *flushingReader) Read(p []byte) (int, error) {
	if f.dst != nil && f.dst.Buffered() > 0 {
		if err := f.dst.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

// noReadFrom is the bufio.Writer a body is relayed to, without its
// ReadFrom: io.Copy would call it, and it reads the body into the
// writer's own buffer, which flushingReader's flush empties under it; the
// header's first bytes then went out again in place of the body. Through
// noReadFrom io.Copy reads into a buffer of its own. WriteByte keeps
// Request.Write from putting a buffer of its own in front
// (request.go:668@go1.26.8), which the flush would not reach.
type noReadFrom struct{ bw *bufio.Writer }

func (w noReadFrom) Write(p []byte) (int, error)       { return w.bw.Write(p) }
func (w noReadFrom) WriteString(s string) (int, error) { return w.bw.WriteString(s) }
func (w noReadFrom) WriteByte(c byte) error            { return w.bw.WriteByte(c) }

// countingReadCloser counts the bytes read through a body, and whether it
// was read to its end.
type countingReadCloser struct {
	io.ReadCloser
	n   *int64
	eof bool
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	*c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// writeInterim passes an interim (1xx) answer on to the client, unless
// the final answer has begun.
func (fc *frontConn) writeInterim(resp *http.Response) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.final {
		return nil
	}
	removeHopByHop(resp.Header)
	fmt.Fprintf(fc.bw, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	resp.Header.Write(fc.bw)
	fc.bw.WriteString("\r\n")
	return fc.bw.Flush()
}

// setPeer records the upstream connection the client's request is on, for
// the proxy's stop to close.
func (fc *frontConn) setPeer(c net.Conn) {
	fc.stateMu.Lock()
	defer fc.stateMu.Unlock()
	fc.peer = c
	if c != nil && fc.state == frontClosed {
		c.Close()
	}
}

// bodySent reports whether the request body's goroutine, if any, has
// ended, keeping its result for waitBodyWrite.
func (fc *frontConn) bodySent() bool {
	if fc.bodyWrite == nil {
		return true
	}
	select {
	case err := <-fc.bodyWrite:
		fc.bodyWrite, fc.bodyWriteErr = nil, err
		return true
	default:
		return false
	}
}

// waitBodyWrite waits for the request body's goroutine, if any, to end,
// and returns its error. A destination that answered before it read the
// whole body gets no more of it: the connection to it is closed, and the
// client's, whose body is left unread, ends after the answer.
func (fc *frontConn) waitBodyWrite() error {
	if fc.bodySent() {
		err := fc.bodyWriteErr
		fc.bodyWriteErr = nil
		return err
	}
	ch := fc.bodyWrite
	fc.bodyWrite = nil
	fc.stateMu.Lock()
	if fc.peer != nil {
		fc.peer.Close()
	}
	fc.stateMu.Unlock()
	fc.c.SetReadDeadline(time.Now())
	<-ch
	fc.c.SetReadDeadline(time.Time{})
	return errors.New("the destination answered before it had the whole request body")
}

// scanRefusal is the refusal of a request whose body the outbound scan
// stopped, or nil.
func scanRefusal(err error) *refusal {
	var leak *Leak
	switch {
	case errors.As(err, &leak):
		return &refusal{status: http.StatusForbidden, reason: "outbound scan: " + leak.Error()}
	case errors.Is(err, ErrBodyTooLarge):
		return &refusal{status: http.StatusRequestEntityTooLarge, reason: "outbound scan: " + err.Error()}
	case errors.Is(err, ErrUnscannableBody):
		return &refusal{status: http.StatusUnsupportedMediaType, reason: "outbound scan: " + err.Error()}
	}
	return nil
}

// guardedConn is an upstream connection whose reads and writes go through
// rwc, a guard of its WebSocket messages; it is never spliced.
type guardedConn struct {
	net.Conn
	rwc io.ReadWriteCloser
}

func (c *guardedConn) Read(p []byte) (int, error)  { return c.rwc.Read(p) }
func (c *guardedConn) Write(p []byte) (int, error) { return c.rwc.Write(p) }
func (c *guardedConn) Close() error                { return c.rwc.Close() }

// CloseWrite passes the client's end of stream on as a half-close.
func (c *guardedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

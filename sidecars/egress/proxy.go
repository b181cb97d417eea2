// Package egress is bottle's built-in egress proxy: a forward proxy for
// CONNECT tunnels and HTTP/1.1 absolute-URI requests that lets the sandbox
// reach only the host:port pairs of an allow-list of plan.Rule values.
//
// Decide is the pure matcher, shared by the proxy and `bottle policy check`.
// The proxy adds what a matcher cannot see: it resolves allowed names
// itself, refuses names that resolve to loopback, private, link-local,
// metadata and other non-public addresses unless the deciding rule sets
// AllowPrivate, and dials exactly the addresses it checked, so a second,
// different DNS answer can never be dialed (DNS rebinding). A name with any
// non-public address among its answers is refused as a whole: such a mix is
// the signature of a rebinding attack or of a misconfiguration, and dialing
// only its public part would hide either.
//
// Every request is decided separately, also on a kept-alive client
// connection, and logged as one JSON line (Event). Rules may be replaced or
// extended while the proxy runs (SetRules, AddRule) without dropping open
// tunnels. A tunnel, or a connection upgraded to another protocol (a
// WebSocket) on the forward path, lives until either side closes it, no
// byte has moved in either direction for the idle timeout, or the proxy
// stops; there is no cap on its total duration.
package egress

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// Defaults for Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultIdleTimeout    = time.Hour
)

// readHeaderTimeout bounds how long a client may take to send a
// request's headers; tests shorten it.
var readHeaderTimeout = 30 * time.Second

// Resolver looks up the addresses of a name. *net.Resolver implements it.
// The proxy passes network "ip" and a fully-qualified name with a trailing
// dot, so that no resolv.conf search domain is ever appended.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Proxy.
type Options struct {
	// Rules is the initial allow-list; each rule must be canonical (see
	// ValidateRule).
	Rules []plan.Rule
	// Resolver resolves destination names; nil means net.DefaultResolver.
	Resolver Resolver
	// ConnectTimeout bounds resolving and dialing a destination; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes a tunnel or an upgraded connection, or a
	// kept-alive client connection between requests, after this long
	// without traffic in either direction; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Log receives one JSON line per request (see Event); nil discards.
	Log io.Writer
	// ErrorLog receives the errors of the HTTP servers and reverse proxy
	// of intercepted connections (malformed requests and the like); nil
	// means the standard logger.
	ErrorLog *log.Logger

	// Secrets are the bottle's secrets: those bound to hosts, whose
	// placeholders the proxy replaces with their values in requests to
	// those hosts, and those visible to the agent, which it only looks
	// for. See intercept.go.
	Secrets []Secret
	// InspectAll terminates TLS for every allowed host, as if every rule
	// set Inspect.
	InspectAll bool
	// UpstreamRoots verifies the certificates of intercepted hosts; nil
	// means the system's roots.
	UpstreamRoots *x509.CertPool
	// ScanLogOnly logs what the gitleaks rules find in a decrypted request
	// and lets it through; the bottle's own values and placeholders are
	// refused regardless.
	ScanLogOnly bool
}

// Proxy is the egress proxy. Its methods are safe for concurrent use.
type Proxy struct {
	rules          atomic.Pointer[[]plan.Rule]
	rulesMu        sync.Mutex // serialises SetRules and AddRule
	resolver       Resolver
	dns            dnsCache
	connectTimeout time.Duration
	idleTimeout    time.Duration
	log            *Log
	errorLog       *log.Logger
	// plain keeps the plain-HTTP upstream connections, per decision;
	// tlsUpstreams those of intercepted hosts.
	plain        plainPool
	tlsUpstreams upstreamPool
	// icpt terminates TLS for the hosts that need it.
	icpt *interception
	// sweeper runs sweep.
	sweeper *time.Timer
	// stopCtx ends dials in progress when the proxy closes.
	stopCtx  context.Context
	stopDial context.CancelFunc

	// connsMu guards the listeners, the client connections and the
	// hijacked ones (tunnels, relays and intercepted connections).
	connsMu   sync.Mutex
	listeners map[net.Listener]struct{}
	fronts    map[*frontConn]struct{}
	hijacked  map[hijacked]struct{}
	// closing is set once the proxy stops: no listener, connection,
	// tunnel or relay is taken on then. It is set under connsMu and read
	// without it too.
	closing atomic.Bool
	// frontWG counts the client connections' goroutines; hijackedWG the
	// handlers of the hijacked connections, each until it has logged its
	// connection.
	frontWG, hijackedWG sync.WaitGroup
}

// hijacked is a client connection taken over from the HTTP server.
type hijacked interface {
	// shut closes both ends because the proxy stops.
	shut()
}

// stoppedText is the log's error for a connection the proxy closed when it
// stopped.
const stoppedText = "closed when the proxy stopped"

// New returns a proxy configured by opts. It fails when a rule is invalid.
func New(opts Options) (*Proxy, error) {
	p := &Proxy{
		resolver:       opts.Resolver,
		connectTimeout: opts.ConnectTimeout,
		idleTimeout:    opts.IdleTimeout,
		log:            NewLog(opts.Log),
		errorLog:       opts.ErrorLog,
		listeners:      map[net.Listener]struct{}{},
		fronts:         map[*frontConn]struct{}{},
		hijacked:       map[hijacked]struct{}{},
	}
	p.stopCtx, p.stopDial = context.WithCancel(context.Background())
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if p.connectTimeout <= 0 {
		p.connectTimeout = DefaultConnectTimeout
	}
	if p.idleTimeout <= 0 {
		p.idleTimeout = DefaultIdleTimeout
	}
	if err := p.SetRules(opts.Rules); err != nil {
		return nil, err
	}
	var err error
	if p.icpt, err = newInterception(p, opts); err != nil {
		return nil, err
	}
	p.sweeper = time.AfterFunc(p.sweepPeriod(), p.sweep)
	return p, nil
}

// ValidateRule checks that r is canonical as allow() makes it
// (plan.CheckRule): its host as plan.NormalizeHost returns it, at least one
// port, each within 1-65535, and its methods and paths normalised.
func ValidateRule(r plan.Rule) error {
	if err := plan.CheckRule(r); err != nil {
		return fmt.Errorf("rule %q is not canonical: %w", r.Host, err)
	}
	return nil
}

// Rules returns a copy of the current allow-list.
func (p *Proxy) Rules() []plan.Rule {
	return slices.Clone(*p.rules.Load())
}

// SetRules replaces the allow-list. It changes nothing when a rule is
// invalid. Open tunnels stay open; every later request is decided by the
// new rules.
func (p *Proxy) SetRules(rules []plan.Rule) error {
	for _, r := range rules {
		if err := ValidateRule(r); err != nil {
			return fmt.Errorf("set egress rules: %w", err)
		}
	}
	rs := cloneRules(rules)
	p.rulesMu.Lock()
	defer p.rulesMu.Unlock()
	p.rules.Store(&rs)
	p.plain.reset(&rs)
	p.tlsUpstreams.reset()
	return nil
}

// AddRule appends r to the allow-list. Adding a rule equal to one already
// present changes nothing.
func (p *Proxy) AddRule(r plan.Rule) error {
	if err := ValidateRule(r); err != nil {
		return fmt.Errorf("add egress rule: %w", err)
	}
	p.rulesMu.Lock()
	defer p.rulesMu.Unlock()
	cur := *p.rules.Load()
	for _, c := range cur {
		if equalRule(c, r) {
			return nil
		}
	}
	rs := cloneRules(append(slices.Clip(cur), r))
	p.rules.Store(&rs)
	p.plain.reset(&rs)
	p.tlsUpstreams.reset()
	return nil
}

func equalRule(a, b plan.Rule) bool {
	return a.Host == b.Host && slices.Equal(a.Ports, b.Ports) && a.AllowPrivate == b.AllowPrivate && a.From == b.From &&
		slices.Equal(a.Methods, b.Methods) && slices.Equal(a.Paths, b.Paths) && a.Inspect == b.Inspect
}

// cloneRules deep-copies rules so that callers cannot change them later.
func cloneRules(rules []plan.Rule) []plan.Rule {
	out := make([]plan.Rule, len(rules))
	for i, r := range rules {
		r.Ports = slices.Clone(r.Ports)
		r.Methods, r.Paths = slices.Clone(r.Methods), slices.Clone(r.Paths)
		out[i] = r
	}
	return out
}

// Shutdown stops accepting clients, closes the idle ones, and waits for
// requests, tunnels and upgraded connections in flight to end, until ctx
// is done; it then closes whatever is left and returns ctx's error. Every
// request, tunnel and upgraded connection has been logged when it returns.
func (p *Proxy) Shutdown(ctx context.Context) error {
	defer p.log.Flush()
	defer p.plain.reset(nil)
	defer p.tlsUpstreams.reset()
	p.stop(false)
	done := make(chan struct{})
	go func() {
		p.frontWG.Wait()
		p.hijackedWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.stopDial()
		return nil
	case <-ctx.Done():
		p.stop(true)
		<-done
		return fmt.Errorf("shut down egress proxy: %w", ctx.Err())
	}
}

// Close stops the proxy at once, closing listeners, client connections,
// tunnels and upgraded connections; it returns once they are logged.
func (p *Proxy) Close() error {
	defer p.log.Flush()
	defer p.plain.reset(nil)
	defer p.tlsUpstreams.reset()
	p.stop(true)
	p.frontWG.Wait()
	p.hijackedWG.Wait()
	return nil
}

// stop closes the listeners and the idle client connections, and refuses
// new ones, new tunnels and new upgrades. With all, it also closes the
// connections being served, with the destinations they are forwarded to,
// and the tunnels, relays and intercepted connections.
func (p *Proxy) stop(all bool) {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	p.closing.Store(true)
	p.sweeper.Stop()
	for ln := range p.listeners {
		ln.Close()
	}
	if all {
		p.stopDial()
		for c := range p.hijacked {
			c.shut()
		}
	}
	for fc := range p.fronts {
		if all {
			fc.closeIf(frontIdle, frontActive)
		} else {
			fc.closeIf(frontIdle)
		}
	}
}

// stopping reports whether the proxy is stopping.
func (p *Proxy) stopping() bool {
	return p.closing.Load()
}

func (p *Proxy) addListener(ln net.Listener) bool {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.listeners[ln] = struct{}{}
	return true
}

func (p *Proxy) removeListener(ln net.Listener) {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	delete(p.listeners, ln)
}

// trackFront adds a client connection, unless the proxy is stopping; the
// connection's goroutine calls untrackFront when it ends.
func (p *Proxy) trackFront(fc *frontConn) bool {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.fronts[fc] = struct{}{}
	p.frontWG.Add(1)
	return true
}

func (p *Proxy) untrackFront(fc *frontConn) {
	p.connsMu.Lock()
	delete(p.fronts, fc)
	p.connsMu.Unlock()
	p.frontWG.Done()
}

// decide decides a request to host and port under the current rules,
// which it returns too.
func (p *Proxy) decide(host string, port int) (Decision, *[]plan.Rule) {
	rs := p.rules.Load()
	return Decide(*rs, host, port), rs
}

// reply writes a short plain-text answer that ends the client connection's
// use for further requests when closeConn is set.
func reply(w http.ResponseWriter, status int, body string, closeConn bool) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	if closeConn {
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const notProxyRequest = "bottle: this is an egress proxy; send CONNECT host:port or an absolute-URI request (GET http://host/path)\n"

// serveConnect answers a CONNECT: a refusal, or a tunnel to the
// destination (or an intercepted connection) on the client's connection,
// which it then owns; it reports whether it took the connection over.
func (p *Proxy) serveConnect(w *frontWriter, r *http.Request) (hijacked bool) {
	ev := Event{Time: time.Now().UTC(), Method: r.Method}
	host, portText, err := net.SplitHostPort(r.Host)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil {
		ev.Host, ev.Reason, ev.Status = quoteInvalid(r.Host), "malformed CONNECT target; want host:port", http.StatusBadRequest
		p.finish(&ev)
		reply(w, ev.Status, "bottle: CONNECT needs host:port, got "+ev.Host+"\n", true)
		return false
	}
	d, _ := p.decide(host, port)
	if !d.Allowed {
		p.deny(w, &ev, d)
		return false
	}
	if p.icpt.intercepts(d) {
		return p.serveIntercepted(w, &ev, d)
	}
	upstream, addr, err := p.dial(p.stopCtx, d)
	if err != nil {
		p.fail(w, &ev, d, err)
		return false
	}
	client, early, ok := w.fc.hijack()
	if !ok {
		upstream.Close()
		ev.Error = errStopping.Error()
		p.finish(&ev)
		return false
	}
	ev.Addr = addr.String()
	ev.Status = http.StatusOK
	fillDecision(&ev, d)
	t := &tunnel{client: client, upstream: upstream}
	if !p.track(t) {
		t.close()
		ev.Error = errStopping.Error()
		p.finish(&ev)
		return true
	}
	defer p.untrack(t)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		t.close()
		ev.Error = fmt.Sprintf("answer CONNECT: %v", err)
		p.finish(&ev)
		return true
	}
	// Bytes the client sent after its CONNECT request, before it saw the
	// answer, were read ahead; pass them on first.
	if len(early) > 0 {
		if _, err := upstream.Write(early); err != nil {
			t.close()
			ev.Error = fmt.Sprintf("forward early bytes: %v", err)
			p.finish(&ev)
			return true
		}
		t.up.Add(int64(len(early)))
	}
	if err := t.run(p.idleTimeout); err != nil {
		ev.Error = err.Error()
	}
	if t.stopped.Load() {
		ev.Error = stoppedText
	}
	ev.BytesUp, ev.BytesDown = t.up.Load(), t.down.Load()
	p.finish(&ev)
	return true
}

// track adds c to the hijacked connections, unless the proxy is stopping.
// The caller calls untrack once it has logged c.
func (p *Proxy) track(c hijacked) bool {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.closing.Load() {
		return false
	}
	p.hijacked[c] = struct{}{}
	p.hijackedWG.Add(1)
	return true
}

func (p *Proxy) untrack(c hijacked) {
	p.connsMu.Lock()
	delete(p.hijacked, c)
	p.connsMu.Unlock()
	p.hijackedWG.Done()
}

// forwardKey carries a *forwardState in an absolute-URI request's context.
type forwardKey struct{}

// forwardState is what the forwarding of one request learns, for its log line.
type forwardState struct {
	d        Decision
	addr     atomic.Pointer[netip.AddrPort]
	status   atomic.Int64
	up, down atomic.Int64
	logged   atomic.Bool
	// upgrade is the connection once the destination switched protocols;
	// only the request's handler goroutine sets and reads it.
	upgrade *upgraded
}

// serveForward answers an absolute-URI request: a refusal, or the
// destination's answer (forwardPlain). It reports whether it took the
// client's connection over (a switch of protocols).
func (p *Proxy) serveForward(w *frontWriter, r *http.Request) (hijacked bool) {
	ev := Event{Time: time.Now().UTC(), Method: r.Method}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		ev.Host, ev.Reason, ev.Status = quoteInvalid(r.Host), "not a proxy request (no absolute URI)", http.StatusBadRequest
		p.finish(&ev)
		reply(w, ev.Status, notProxyRequest, false)
		return false
	}
	if r.URL.Scheme != "http" {
		ev.Host, ev.Reason, ev.Status = quoteInvalid(r.URL.Host), "unsupported scheme "+strconv.Quote(r.URL.Scheme), http.StatusBadRequest
		p.finish(&ev)
		reply(w, ev.Status, "bottle: only http:// URLs are forwarded; use CONNECT for https and others\n", false)
		return false
	}
	port := 80
	if ps := r.URL.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil {
			ev.Host, ev.Reason, ev.Status = quoteInvalid(r.URL.Host), "malformed port", http.StatusBadRequest
			p.finish(&ev)
			reply(w, ev.Status, "bottle: malformed port in "+ev.Host+"\n", false)
			return false
		}
		port = n
	}
	d, rules := p.decide(r.URL.Hostname(), port)
	if !d.Allowed {
		p.deny(w, &ev, d)
		return false
	}
	if p.icpt.intercepts(d) {
		// Plain HTTP to a host whose requests are checked: the same
		// checks, and no secret is substituted without TLS.
		ev.Intercepted = true
		subst, ref := p.icpt.checkRequest(r, d, false)
		if ref != nil {
			p.refuse(w, &ev, d, r, ref)
			return false
		}
		ev.Path, ev.Substituted = r.URL.Path, subst
	}
	return p.forwardPlain(w, r, d, plainKey{rules: rules, rule: d.ruleIndex, host: d.Host, port: d.Port}, &ev)
}

// forwardPath configures the reverse proxy of intercepted hosts' requests
// (reverseProxy): where a request goes, and how the destination's answer
// is checked and guarded. The reverse proxy counts the bytes each way,
// records the status, and relays an upgraded connection as a tunnel.
type forwardPath struct {
	transport http.RoundTripper
	// target points the outgoing request at its destination; nil leaves
	// the client's absolute URI.
	target func(out *http.Request, st *forwardState)
	// check refuses a response; nil refuses none.
	check func(resp *http.Response, st *forwardState) error
	// upgraded wraps the connection of a switch of protocols; nil keeps it.
	upgraded func(resp *http.Response, st *forwardState, rwc io.ReadWriteCloser) (io.ReadWriteCloser, error)
	// body wraps a response body once it is counted; nil keeps it.
	body         func(resp *http.Response, body io.ReadCloser) io.ReadCloser
	errorHandler func(http.ResponseWriter, *http.Request, error)
}

// reverseProxy makes the reverse proxy of fp. Each request's context
// carries its *forwardState (forwardKey).
func (p *Proxy) reverseProxy(fp forwardPath, errorLog *log.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := pr.Out.Context().Value(forwardKey{}).(*forwardState)
			if fp.target != nil {
				fp.target(pr.Out, st)
			}
			// The Host header follows the destination, never a header
			// the client chose.
			pr.Out.Host = ""
			if pr.Out.Body != nil && pr.Out.Body != http.NoBody {
				pr.Out.Body = &countingBody{ReadCloser: pr.Out.Body, n: &st.up}
			}
		},
		Transport: fp.transport,
		// A response of known length goes out as the server buffers it,
		// in as few writes as it takes; the reverse proxy flushes
		// server-sent events and responses of unknown length (streams)
		// after every write.
		FlushInterval: 0,
		ModifyResponse: func(resp *http.Response) error {
			st := resp.Request.Context().Value(forwardKey{}).(*forwardState)
			st.status.Store(int64(resp.StatusCode))
			if fp.check != nil {
				if err := fp.check(resp, st); err != nil {
					return err
				}
			}
			if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
				// An upgraded connection (WebSocket): the reverse proxy
				// writes the client's bytes into the body, so it must stay
				// writable; both directions are counted, and the idle
				// timeout and a shutdown apply as to a tunnel.
				if fp.upgraded != nil {
					var err error
					if rwc, err = fp.upgraded(resp, st, rwc); err != nil {
						return err
					}
				}
				return p.upgrade(st, resp, rwc)
			}
			body := io.ReadCloser(&countingBody{ReadCloser: resp.Body, n: &st.down})
			if fp.body != nil {
				body = fp.body(resp, body)
			}
			resp.Body = body
			return nil
		},
		ErrorHandler: fp.errorHandler,
		ErrorLog:     errorLog,
	}
}

// errStopping refuses a tunnel or an upgrade while the proxy stops.
var errStopping = errors.New("proxy is shutting down")

// upgrade takes on resp, the destination's switch to another protocol, with
// rwc its connection: it tracks the connection, so that a shutdown closes
// it, watches it for the idle timeout and counts its bytes. It refuses the
// switch while the proxy stops.
func (p *Proxy) upgrade(st *forwardState, resp *http.Response, rwc io.ReadWriteCloser) error {
	u := &upgraded{backend: rwc, done: make(chan struct{}), idled: make(chan bool, 1)}
	if !p.track(u) {
		return errStopping
	}
	st.upgrade = u
	resp.Body = &countingConn{rwc: rwc, up: &st.up, down: &st.down}
	progress := func() uint64 { return uint64(st.up.Load() + st.down.Load()) }
	go func() { u.idled <- watchIdle(p.idleTimeout, progress, u.done, u.close) }()
	return nil
}

// upgraded is a connection switched to another protocol on the forward
// path. The reverse proxy relays it between the client's connection, which
// it takes over from the HTTP server, and the destination's; the proxy
// keeps hold of both so that the idle timeout and a shutdown can close
// them.
type upgraded struct {
	mu      sync.Mutex
	backend io.Closer
	client  net.Conn // once taken over
	closed  bool
	stopped bool // closed because the proxy stops

	done  chan struct{} // closed when the relay has ended
	idled chan bool     // the idle watch's verdict
}

// hijack takes the client connection over from w for the relay, unless
// the upgrade was closed already.
func (u *upgraded) hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, nil, errStopping
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	u.client = c
	if brw.Reader.Buffered() > 0 {
		// The reverse proxy relays from the connection, not from brw:
		// bytes the client sent right behind its request, which the
		// server has read ahead, would be lost.
		return &readAheadConn{Conn: c, r: brw.Reader}, brw, nil
	}
	return c, brw, nil
}

// readAheadConn is a client connection whose first bytes the HTTP server
// has read ahead into r.
type readAheadConn struct {
	net.Conn
	r *bufio.Reader // until drained
}

func (c *readAheadConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p) // only what is buffered
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection, which the reverse proxy does when
// the destination has ended its stream.
func (c *readAheadConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (u *upgraded) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	u.closed = true
	u.backend.Close()
	if u.client != nil {
		u.client.Close()
	}
}

func (u *upgraded) shut() {
	u.mu.Lock()
	u.stopped = !u.closed
	u.mu.Unlock()
	u.close()
}

// end stops the idle watch once the relay has ended and reports whether
// the idle timeout or the proxy's stop closed the connection.
func (u *upgraded) end() (idled, stopped bool) {
	close(u.done)
	idled = <-u.idled
	u.close()
	u.mu.Lock()
	defer u.mu.Unlock()
	return idled, u.stopped
}

// forwardWriter is the response writer the reverse proxy answers a
// forwarded request through: it takes the client connection over for an
// upgrade only through the upgrade's bookkeeping.
type forwardWriter struct {
	http.ResponseWriter
	st *forwardState
}

func (w *forwardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *forwardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.st.upgrade == nil {
		return nil, nil, errors.New("egress: no protocol switch to take the connection over for")
	}
	return w.st.upgrade.hijack(w.ResponseWriter)
}

// dialForward is the forwarding transport's dialer: it dials the request's
// destination as its decision allows.
func (p *Proxy) dialForward(ctx context.Context, _, _ string) (net.Conn, error) {
	st, ok := ctx.Value(forwardKey{}).(*forwardState)
	if !ok {
		return nil, errors.New("egress: dial without a decision")
	}
	c, addr, err := p.dial(ctx, st.d)
	if err != nil {
		return nil, err
	}
	keepAlive(c)
	st.addr.Store(&addr)
	return c, nil
}

// forwardError answers an absolute-URI request whose forwarding failed.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(forwardKey{}).(*forwardState)
	ev := Event{Time: time.Now().UTC(), Method: r.Method}
	if a := st.addr.Load(); a != nil {
		ev.Addr = a.String()
		// The destination answered something; report what went wrong
		// with it rather than as a refusal.
		fillDecision(&ev, st.d)
		ev.Status, ev.Error = http.StatusBadGateway, err.Error()
		ev.BytesUp = st.up.Load()
		st.logged.Store(true)
		p.finish(&ev)
		reply(w, ev.Status, "bottle: egress to "+hostPort(st.d.Host, st.d.Port)+" failed: "+err.Error()+"\n", false)
		return
	}
	st.logged.Store(true)
	p.fail(w, &ev, st.d, err)
}

// errRefusedAddr is a destination refused for its resolved address.
type errRefusedAddr struct {
	addr  netip.Addr
	class string
}

func (e *errRefusedAddr) Error() string {
	return ReasonPrivate + ": " + e.addr.String() + " (" + e.class + "), which is refused unless its rule sets allow_private"
}

// errLookup is a failure to resolve an allowed destination.
type errLookup struct{ err error }

func (e *errLookup) Error() string { return "cannot resolve the host: " + e.err.Error() }
func (e *errLookup) Unwrap() error { return e.err }

// dial resolves d's host, checks every address and dials the checked
// addresses in the resolver's order until one answers. The connection has
// TCP keep-alive off; the caller turns it on (keepAlive), a tunnel only
// once its client has the answer.
func (p *Proxy) dial(ctx context.Context, d Decision) (net.Conn, netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, p.connectTimeout)
	defer cancel()
	addrs, err := p.dns.lookup(ctx, p.resolver, d.Host+".")
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return nil, netip.AddrPort{}, &errLookup{err}
	}
	if d.Rule == nil || !d.Rule.AllowPrivate {
		for _, a := range addrs {
			if c := AddrClass(a); c != "" {
				return nil, netip.AddrPort{}, &errRefusedAddr{addr: a, class: c}
			}
		}
	}
	dialer := net.Dialer{KeepAlive: -1}
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(d.Port))
		c, err := dialer.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			return c, ap, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("connect: %w", errors.Join(errs...))
}

// deny answers a request the rules refuse and logs it.
func (p *Proxy) deny(w http.ResponseWriter, ev *Event, d Decision) {
	ev.Host, ev.Port, ev.Allowed, ev.Reason, ev.Status = d.Host, d.Port, false, d.Reason, http.StatusForbidden
	if d.Nearest != nil {
		ev.Rule, ev.RuleFrom = d.Nearest.Host, d.Nearest.From
	}
	p.finish(ev)
	reply(w, http.StatusForbidden, d.DenialText(), false)
}

// fail answers an allowed request the proxy could not carry out: a refused
// address (403), a lookup or connect failure (502) or timeout (504).
func (p *Proxy) fail(w http.ResponseWriter, ev *Event, d Decision, err error) {
	var refused *errRefusedAddr
	if errors.As(err, &refused) {
		d.Allowed, d.NeedsPrivate, d.Reason = false, true, refused.Error()
		ev.Host, ev.Port, ev.Allowed, ev.Reason, ev.Status = d.Host, d.Port, false, d.Reason, http.StatusForbidden
		if d.Rule != nil {
			ev.Rule, ev.RuleFrom = d.Rule.Host, d.Rule.From
		}
		p.finish(ev)
		reply(w, http.StatusForbidden, d.DenialText(), false)
		return
	}
	fillDecision(ev, d)
	ev.Status = http.StatusBadGateway
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		ev.Status = http.StatusGatewayTimeout
	}
	ev.Error = err.Error()
	p.finish(ev)
	reply(w, ev.Status, "bottle: egress to "+hostPort(d.Host, d.Port)+" failed: "+err.Error()+"\n", false)
}

func fillDecision(ev *Event, d Decision) {
	ev.Host, ev.Port, ev.Allowed, ev.Reason = d.Host, d.Port, d.Allowed, d.Reason
	if d.Rule != nil {
		ev.Rule, ev.RuleFrom = d.Rule.Host, d.Rule.From
	}
}

// finish completes ev's duration and writes it to the log.
func (p *Proxy) finish(ev *Event) {
	ev.DurationMS = time.Since(ev.Time).Milliseconds()
	p.log.Write(*ev)
}

// countingConn is an upgraded connection's body: it counts the bytes read
// (down) and written (up).
type countingConn struct {
	rwc      io.ReadWriteCloser
	up, down *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.rwc.Read(p)
	c.down.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.rwc.Write(p)
	c.up.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error { return c.rwc.Close() }

// CloseWrite passes the client's end of stream on to the destination as a
// half-close, as through a tunnel; the reverse proxy does that only through
// a body with this method, and otherwise ends the relay at once, dropping
// what the destination had still to send.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// countingBody counts the bytes read through a body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

package egress

// TLS interception. The proxy terminates TLS only for the hosts that need
// it: a host a bound secret names (Secret.Hosts), a host whose deciding
// rule has method or path rules or sets Inspect, and, with
// Options.InspectAll, every allowed host. Every other host stays a blind
// CONNECT tunnel.
//
// An intercepted CONNECT is answered 200 as a tunnel is; the proxy then
// shakes hands with the client as the destination, with a leaf certificate
// from the bottle's CA (ca.go), and serves the decrypted HTTP/1.1 or
// HTTP/2 (by ALPN) requests itself. Each request is decided again,
// checked (checkRequest), and forwarded over a TLS connection of the
// proxy's own, verified against the system roots, to the address the
// decision checked. Server-sent events are streamed as they come; a
// WebSocket upgrade over HTTP/1.1 is relayed like one on the forward path.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/bottle-dev/bottle/plan"
)

// Secret is one of the bottle's secrets as the egress proxy holds it.
type Secret struct {
	// Name is the secret's name, the agent's variable; logs and refusals
	// name a secret by it, never by its value.
	Name string
	// Value is the real value.
	Value string
	// Placeholder is what the agent holds instead of Value, for a secret
	// bound to Hosts; empty for a secret visible to the agent.
	Placeholder string
	// Hosts are the host names and "*." patterns the secret is bound to,
	// canonical as plan.Rule.Host; empty for a visible secret.
	Hosts []string
}

// boundTo reports whether the secret's value may go to host.
func (s *Secret) boundTo(host string) bool {
	for _, h := range s.Hosts {
		if plan.MatchHost(h, host) {
			return true
		}
	}
	return false
}

// InterceptedNames returns the host names and "*." patterns whose TLS the
// proxy may terminate under rules, secrets and inspectAll: the hosts of the
// bound secrets, of the rules that are Intercepted, and with inspectAll of
// every rule; sorted, without duplicates. The bottle's CA is limited to
// them.
func InterceptedNames(rules []plan.Rule, secrets []Secret, inspectAll bool) []string {
	var names []string
	for _, r := range rules {
		if inspectAll || r.Intercepted() {
			names = append(names, r.Host)
		}
	}
	for _, s := range secrets {
		names = append(names, s.Hosts...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// interception is what the proxy needs to terminate TLS.
type interception struct {
	ca         *CA
	inspectAll bool
	secrets    []Secret
	// headerScan finds, in a header, the real values of the bound secrets
	// and every placeholder; bodyScan finds every secret's real value and
	// every placeholder, none of which belongs in a URL or a body;
	// realScan finds the bound secrets' real values, which must never come
	// back to the sandbox. Each is nil when it has nothing to find.
	headerScan, bodyScan, realScan *SecretScanner
	// visible are the values of the secrets the agent sees, which the
	// gitleaks rules do not look for in headers.
	visible []string
	// dlp runs the gitleaks rules on headers and URLs (the bottle's own
	// values there are checked by headerScan and bodyScan); bodyDLP runs
	// them and bodyScan on bodies. Both are made on first use.
	dlp, bodyDLP func() (*DLP, error)
	// headerDLP is dlp without gitleaks' catch-all rule (genericRule).
	headerDLP func() (*DLP, error)
	// scanLogOnly logs gitleaks findings instead of refusing (see
	// Options.ScanLogOnly), through log.
	scanLogOnly bool
	log         func(*Event)

	rp *httputil.ReverseProxy
}

func newInterception(p *Proxy, opts Options) (*interception, error) {
	ic := &interception{inspectAll: opts.InspectAll, secrets: slices.Clone(opts.Secrets), scanLogOnly: opts.ScanLogOnly, log: p.finish}
	names := InterceptedNames(opts.Rules, opts.Secrets, opts.InspectAll)
	header, body, real := map[string]string{}, map[string]string{}, map[string]string{}
	for _, s := range opts.Secrets {
		if s.Name == "" || s.Value == "" {
			return nil, fmt.Errorf("egress secret %q: no name or no value", s.Name)
		}
		// A value shorter than MinScannedSecret cannot be told from
		// ordinary text and is not looked for; its placeholder always is.
		if len(s.Hosts) == 0 {
			ic.visible = append(ic.visible, s.Value)
		}
		scanned := len(s.Value) >= MinScannedSecret
		if scanned {
			body[s.Name] = s.Value
		}
		if len(s.Hosts) > 0 {
			if len(s.Placeholder) < MinScannedSecret || strings.Contains(s.Placeholder, s.Value) || strings.Contains(s.Value, s.Placeholder) {
				return nil, fmt.Errorf("egress secret %s: a bound secret needs a placeholder of at least %d bytes unlike its value", s.Name, MinScannedSecret)
			}
			for _, h := range s.Hosts {
				if _, err := plan.NormalizeHost(strings.TrimPrefix(h, "*.")); err != nil {
					return nil, fmt.Errorf("egress secret %s: host %q: %w", s.Name, h, err)
				}
			}
			if scanned {
				header[s.Name] = s.Value
				real[s.Name] = s.Value
			}
			header[s.Name+" (placeholder)"] = s.Placeholder
			body[s.Name+" (placeholder)"] = s.Placeholder
		}
	}
	var err error
	for _, sc := range []struct {
		m   map[string]string
		dst **SecretScanner
	}{{header, &ic.headerScan}, {body, &ic.bodyScan}, {real, &ic.realScan}} {
		if len(sc.m) == 0 {
			continue
		}
		if *sc.dst, err = NewSecretScanner(sc.m); err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
	}
	if len(names) > 0 {
		if ic.ca, err = NewCA(names); err != nil {
			return nil, err
		}
	}
	ic.dlp = sync.OnceValues(func() (*DLP, error) { return NewDLP(nil) })
	ic.headerDLP = sync.OnceValues(func() (*DLP, error) {
		d, err := ic.dlp()
		if err != nil {
			return nil, err
		}
		// In a header, a name that says "key" or "token" before a random
		// value is how every API authenticates and how WebSocket opens
		// (Sec-WebSocket-Key): gitleaks' catch-all rule would refuse
		// them all. The rules for known credential formats still apply.
		return d.WithoutRules(genericRule), nil
	})
	ic.bodyDLP = sync.OnceValues(func() (*DLP, error) { return NewDLP(ic.bodyScan) })
	ic.rp = p.reverseProxy(forwardPath{
		transport: &p.tlsUpstreams,
		target: func(out *http.Request, st *forwardState) {
			out.URL.Scheme = "https"
			out.URL.Host = st.d.Host
			if st.d.Port != 443 {
				out.URL.Host = hostPort(st.d.Host, st.d.Port)
			}
		},
		check:        ic.checkResponse,
		upgraded:     ic.guardUpgrade,
		body:         ic.guardBody,
		errorHandler: p.interceptError,
	}, opts.ErrorLog)
	p.tlsUpstreams.tlsConfig = &tls.Config{RootCAs: opts.UpstreamRoots, MinVersion: tls.VersionTLS12}
	p.tlsUpstreams.dial = p.dialForward
	return ic, nil
}

// guardUpgrade guards a switch to WebSocket, the only upgrade relayed
// (checkRequest), without extensions: its frames both ways (wsguard.go).
func (ic *interception) guardUpgrade(resp *http.Response, st *forwardState, rwc io.ReadWriteCloser) (io.ReadWriteCloser, error) {
	if len(resp.Header.Values("Sec-WebSocket-Extensions")) > 0 {
		return nil, errors.New("the destination switched to WebSocket with an extension the client was not let offer")
	}
	g := &guardedRWC{ReadWriteCloser: rwc}
	if ic.realScan != nil {
		g.r = newWSDownGuard(rwc, ic.realScan)
	}
	up := &wsUpGuard{w: rwc}
	if ic.bodyScan != nil {
		up.stream = ic.bodyScan.Stream()
	}
	if d, err := ic.bodyDLP(); err == nil {
		if rep := ic.reporter(resp.Request.Method, resp.Request.URL.Path, st.d); rep != nil {
			d = d.Reporting(rep)
		}
		up.dlp = d
	}
	g.w = up
	return g, nil
}

// guardBody guards a response body, and its trailers, for the bound
// secrets' values.
func (ic *interception) guardBody(resp *http.Response, body io.ReadCloser) io.ReadCloser {
	if ic.realScan == nil {
		return body
	}
	g := newGuardReader(body, ic.realScan, "response body")
	g.atEOF = func() error { return ic.scanHeader("response trailer", resp.Trailer) }
	return g
}

// guardedRWC is an upgraded connection whose reads (from the
// destination) and writes (from the client) may be guarded.
type guardedRWC struct {
	io.ReadWriteCloser
	r io.Reader
	w io.Writer
}

func (g *guardedRWC) Read(p []byte) (int, error) {
	if g.r == nil {
		return g.ReadWriteCloser.Read(p)
	}
	return g.r.Read(p)
}

func (g *guardedRWC) Write(p []byte) (int, error) {
	if g.w == nil {
		return g.ReadWriteCloser.Write(p)
	}
	return g.w.Write(p)
}

func (g *guardedRWC) CloseWrite() error {
	if cw, ok := g.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CACertPEM returns the bottle CA's certificate in PEM form, for the
// sandbox to trust, or nil when no host is intercepted.
func (p *Proxy) CACertPEM() []byte {
	if p.icpt == nil || p.icpt.ca == nil {
		return nil
	}
	return p.icpt.ca.CertPEM()
}

// intercepts reports whether the proxy terminates TLS for d.
func (ic *interception) intercepts(d Decision) bool {
	if ic == nil || d.Rule == nil {
		return false
	}
	return ic.inspectAll || d.Rule.Intercepted() || ic.bound(d.Host)
}

// genericRule is gitleaks' catch-all rule: a name such as "key" or
// "token" before a value of high entropy.
const genericRule = "generic-api-key"

// ReasonNotCovered refuses a host that needs interception but that the
// bottle's CA cannot sign for: its rule came after the bottle started.
const ReasonNotCovered = "this host must be intercepted, but the bottle's CA was made for other names; restart the bottle for its rules to take effect"

// handshakeTimeout bounds the client's TLS handshake with the proxy.
const handshakeTimeout = 30 * time.Second

// serveIntercepted terminates the client's TLS for the CONNECT d allowed
// and serves its requests until the client closes the connection, the
// idle timeout passes, or the proxy stops. It reports whether it took the
// client's connection over.
func (p *Proxy) serveIntercepted(w *frontWriter, ev *Event, d Decision) (hijacked bool) {
	ic := p.icpt
	if ic.ca == nil || !ic.ca.Permits(d.Host) {
		d.Allowed, d.Reason = false, ReasonNotCovered
		ev.Host, ev.Port, ev.Allowed, ev.Reason, ev.Status = d.Host, d.Port, false, d.Reason, http.StatusForbidden
		ev.Rule, ev.RuleFrom = d.Rule.Host, d.Rule.From
		p.finish(ev)
		reply(w, http.StatusForbidden, "bottle: egress to "+hostPort(d.Host, d.Port)+" denied: "+d.Reason+"\n", false)
		return false
	}
	leaf, err := ic.ca.Leaf(d.Host)
	if err != nil {
		p.fail(w, ev, d, err)
		return false
	}
	client, early, ok := w.fc.hijack()
	if !ok {
		ev.Error = errStopping.Error()
		p.finish(ev)
		return false
	}
	fillDecision(ev, d)
	ev.Status, ev.Intercepted = http.StatusOK, true
	c := &interceptedConn{client: client}
	if !p.track(c) {
		client.Close()
		ev.Error = errStopping.Error()
		p.finish(ev)
		return true
	}
	defer p.untrack(c)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		ev.Error = fmt.Sprintf("answer CONNECT: %v", err)
		p.finish(ev)
		return true
	}
	var raw net.Conn = &countedConn{Conn: client, up: &c.up, down: &c.down}
	if len(early) > 0 {
		raw = &prefixConn{Conn: raw, early: early}
	}
	tc := tls.Server(raw, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// The name the client asks for must be the one it
			// connected to: a certificate for any other would let it
			// reach a second host through the first one's decision.
			if sni := strings.TrimSuffix(strings.ToLower(hello.ServerName), "."); sni != "" && sni != d.Host {
				return nil, fmt.Errorf("the client asked for %q on a connection to %s", sni, d.Host)
			}
			return leaf, nil
		},
	})
	hctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		tc.Close()
		ev.Error = "TLS handshake with the client: " + err.Error() + " (does the client trust the bottle's CA? see SSL_CERT_FILE)"
		ev.BytesUp, ev.BytesDown = c.up.Load(), c.down.Load()
		p.finish(ev)
		return true
	}
	// handlers counts the requests being served, so that a WebSocket's
	// relay, which outlives the server's hold on the connection, is
	// waited for.
	var handlers sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			p.serveDecrypted(w, r, d.Host, d.Port)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       p.idleTimeout,
		ErrorLog:          p.errorLog,
	}
	ln := newOneConnListener(tc)
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			ln.Close()
		}
	}
	c.setServer(srv)
	srv.Serve(ln)
	srv.Shutdown(context.Background())
	handlers.Wait()
	tc.Close()
	if c.stopped.Load() {
		ev.Error = stoppedText
	}
	ev.BytesUp, ev.BytesDown = c.up.Load(), c.down.Load()
	p.finish(ev)
	return true
}

// interceptedConn is a client connection whose TLS the proxy terminated,
// tracked so that the proxy's stop closes it.
type interceptedConn struct {
	client   net.Conn
	up, down atomic.Int64
	stopped  atomic.Bool

	mu  sync.Mutex
	srv *http.Server
}

func (c *interceptedConn) setServer(s *http.Server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.srv = s
}

func (c *interceptedConn) shut() {
	c.stopped.Store(true)
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	c.client.Close()
}

// countedConn counts the bytes read (up) and written (down).
type countedConn struct {
	net.Conn
	up, down *atomic.Int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.up.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.down.Add(int64(n))
	return n, err
}

// oneConnListener hands one connection to an http.Server, then blocks
// until closed.
type oneConnListener struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{c: make(chan net.Conn, 1), done: make(chan struct{}), addr: c.LocalAddr()}
	l.c <- c
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

// refusal is a decrypted request the proxy refuses.
type refusal struct {
	status int
	reason string
	// hint is the refusal body's second line, if any.
	hint string
	// withholdPath keeps the URL's path out of the log.
	withholdPath bool
}

// serveDecrypted decides, checks and forwards one request read from an
// intercepted connection to host:port.
func (p *Proxy) serveDecrypted(w http.ResponseWriter, r *http.Request, host string, port int) {
	ev := Event{Time: time.Now().UTC(), Method: r.Method, Intercepted: true}
	d := Decide(p.Rules(), host, port)
	if !d.Allowed {
		// The rules changed since the CONNECT.
		p.deny(w, &ev, d)
		return
	}
	st := &forwardState{d: d}
	subst, ref := p.icpt.checkRequest(r, d, true)
	if ref != nil {
		p.refuse(w, &ev, d, r, ref)
		return
	}
	ev.Path = r.URL.Path
	ev.Substituted = subst
	defer func() {
		if st.upgrade != nil {
			p.untrack(st.upgrade)
		}
	}()
	// The reverse proxy aborts the response with http.ErrAbortHandler when
	// copying it fails (the client went away first); the request is logged
	// all the same, then the abort goes on.
	aborted := false
	func() {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v)
				}
				aborted = true
			}
		}()
		p.icpt.rp.ServeHTTP(&interimDropper{forwardWriter{ResponseWriter: w, st: st}}, r.WithContext(context.WithValue(r.Context(), forwardKey{}, st)))
	}()
	if aborted {
		defer panic(http.ErrAbortHandler)
	}
	var idled, stopped bool
	if u := st.upgrade; u != nil {
		idled, stopped = u.end()
	}
	if st.logged.Load() {
		return
	}
	fillDecision(&ev, d)
	if a := st.addr.Load(); a != nil {
		ev.Addr = a.String()
	}
	ev.Status = int(st.status.Load())
	ev.BytesUp, ev.BytesDown = st.up.Load(), st.down.Load()
	switch {
	case stopped:
		ev.Error = stoppedText
	case idled:
		ev.Error = fmt.Sprintf("closed after %s without traffic", p.idleTimeout)
	case aborted:
		ev.Error = "the answer was cut short: the client went away, or the destination's body failed"
	}
	p.finish(&ev)
}

// refuse answers a request checkRequest refused, and logs it.
func (p *Proxy) refuse(w http.ResponseWriter, ev *Event, d Decision, r *http.Request, ref *refusal) {
	fillDecision(ev, d)
	ev.Allowed, ev.Status, ev.Reason = false, ref.status, ref.reason
	ev.Path = r.URL.Path
	if ref.withholdPath {
		ev.Path = "[withheld]"
	}
	p.finish(ev)
	body := "bottle: " + r.Method + " to " + hostPort(d.Host, d.Port) + " refused: " + ref.reason + "\n"
	if ref.hint != "" {
		body += ref.hint + "\n"
	}
	reply(w, ref.status, body, false)
}

// interceptError answers a decrypted request whose forwarding failed: a
// leak found in its body (403), an upstream response that carried a bound
// secret (502), or an upstream failure.
func (p *Proxy) interceptError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(forwardKey{}).(*forwardState)
	var leak *Leak
	status := 0
	switch {
	case errors.As(err, &leak):
		status = http.StatusForbidden
	case errors.Is(err, ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnscannableBody):
		status = http.StatusUnsupportedMediaType
	}
	if status != 0 {
		ev := Event{Time: time.Now().UTC(), Method: r.Method, Intercepted: true, Path: r.URL.Path}
		st.logged.Store(true)
		reason := err.Error()
		if leak != nil {
			reason = leak.Error()
		}
		p.refuse(w, &ev, st.d, r, &refusal{status: status, reason: "outbound scan: " + reason})
		return
	}
	p.forwardError(w, r, err)
}

// checkRequest checks a decrypted request (tls) or a plain-HTTP one to an
// intercepted host against d's rule and the bottle's secrets, and puts the
// real values of the secrets bound to d.Host in place of their
// placeholders in its headers. It returns the names of the secrets
// substituted, or why the request is refused. It wraps r.Body so that the
// body is scanned as it is sent.
func (ic *interception) checkRequest(r *http.Request, d Decision, tlsOK bool) ([]string, *refusal) {
	if ref := checkAuthority(r, d); ref != nil {
		return nil, ref
	}
	bound := ic.bound(d.Host)
	if bound && !tlsOK {
		// Its responses could carry the value stored over https back in
		// the clear; the guard is on the https path only.
		return nil, &refusal{status: http.StatusForbidden, reason: "a host a secret is bound to is reached over https only"}
	}
	if ref := checkMethodPath(r, d); ref != nil {
		return nil, ref
	}
	if up := r.Header.Get("Upgrade"); up != "" && !strings.EqualFold(strings.TrimSpace(up), "websocket") {
		// An upgrade the proxy cannot read (h2c, which is never valid
		// over TLS, or any other protocol) would carry requests past
		// every check.
		return nil, &refusal{status: http.StatusForbidden, reason: "an upgrade to " + quoteInvalid(up) + " is not relayed to an intercepted host; only WebSocket is"}
	}
	r.Header.Del("HTTP2-Settings")
	// No WebSocket extension: a compressed frame could not be scanned.
	r.Header.Del("Sec-WebSocket-Extensions")
	if len(r.Trailer) > 0 {
		return nil, &refusal{status: http.StatusBadRequest, reason: "request trailers are not forwarded to an intercepted host"}
	}
	// The URL: no secret and no placeholder, in any form.
	target := r.URL.RequestURI()
	if ic.bodyScan != nil {
		if m, found := ic.bodyScan.Scan([]byte(target)); found {
			return nil, &refusal{status: http.StatusForbidden, reason: "the URL carries " + m.Secret + " (" + m.Encoding + ")", withholdPath: true}
		}
	}
	dlp, err := ic.dlp()
	if err != nil {
		return nil, &refusal{status: http.StatusInternalServerError, reason: "outbound scan unavailable: " + err.Error()}
	}
	// With scan = "log", a finding is logged as its own line (the first
	// of the body, and each of the headers and URL) and the request goes on.
	report := ic.reporter(r.Method, r.URL.Path, d)
	if report != nil {
		dlp = dlp.Reporting(report)
	}
	if leak := dlp.ScanText("URL", target, nil); leak != nil {
		return nil, &refusal{status: http.StatusForbidden, reason: "outbound scan: " + leak.Error(), withholdPath: true}
	}
	hdlp, err := ic.headerDLP()
	if err != nil {
		return nil, &refusal{status: http.StatusInternalServerError, reason: "outbound scan unavailable: " + err.Error()}
	}
	if report != nil {
		hdlp = hdlp.Reporting(report)
	}
	subst, ref := ic.headers(r, d.Host, tlsOK, hdlp)
	if ref != nil {
		return nil, ref
	}
	if bound {
		// The responses of a host a secret is bound to are scanned for
		// its value, which it may have stored and send back later: only
		// an unencoded one can be, and only whole (no byte ranges).
		r.Header.Set("Accept-Encoding", "identity")
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	}
	if r.Body != nil && r.Body != http.NoBody {
		bodyDLP, err := ic.bodyDLP()
		if err != nil {
			return nil, &refusal{status: http.StatusInternalServerError, reason: "outbound scan unavailable: " + err.Error()}
		}
		if report != nil {
			bodyDLP = bodyDLP.Reporting(report)
		}
		// Every secret's value and every placeholder is refused in a
		// body, and the gitleaks rules apply, to the body decoded.
		body, err := bodyDLP.EncodedBody(r.Body, strings.Join(r.Header.Values("Content-Encoding"), ","), nil)
		if err != nil {
			return nil, &refusal{status: http.StatusUnsupportedMediaType, reason: err.Error()}
		}
		if r.ContentLength >= 0 && r.ContentLength <= dlpWindow {
			// A body of one window (most API requests) is scanned before
			// anything is sent, so that a refused request never reaches
			// the destination, not even its headers.
			b, err := io.ReadAll(io.LimitReader(body, dlpWindow+1))
			var leak *Leak
			switch {
			case errors.As(err, &leak):
				return nil, &refusal{status: http.StatusForbidden, reason: "outbound scan: " + leak.Error()}
			case errors.Is(err, ErrBodyTooLarge):
				return nil, &refusal{status: http.StatusRequestEntityTooLarge, reason: "outbound scan: " + err.Error()}
			case errors.Is(err, ErrUnscannableBody):
				return nil, &refusal{status: http.StatusUnsupportedMediaType, reason: "outbound scan: " + err.Error()}
			case err != nil:
				return nil, &refusal{status: http.StatusBadRequest, reason: "reading the request body: " + err.Error()}
			case int64(len(b)) != r.ContentLength:
				return nil, &refusal{status: http.StatusBadRequest, reason: "the request body is not as long as its Content-Length"}
			}
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(b))
			return subst, nil
		}
		r.Body = readCloser{Reader: body, Closer: r.Body}
	}
	return subst, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// checkAuthority refuses a request whose Host (or :authority) is not the
// host it was decided for: through one allowed CONNECT, a request for
// another name served at the same address would go out under this host's
// decision and with its secrets.
func checkAuthority(r *http.Request, d Decision) *refusal {
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	name, err := plan.NormalizeHost(host)
	want := strconv.Itoa(d.Port)
	okPort := port == want || port == "" && (d.Port == 443 || d.Port == 80)
	if err != nil || name != d.Host || !okPort {
		return &refusal{status: http.StatusMisdirectedRequest, reason: "the request's Host " + quoteInvalid(r.Host) + " is not the host it was sent to (" + hostPort(d.Host, d.Port) + ")"}
	}
	return nil
}

// checkMethodPath applies the deciding rule's methods and paths. A path
// with a dot segment or an encoded slash or backslash is refused on a host
// with path rules: the destination could resolve it to a path the rules
// do not allow.
func checkMethodPath(r *http.Request, d Decision) *refusal {
	rule := d.Rule
	if rule == nil || len(rule.Methods) == 0 && len(rule.Paths) == 0 {
		return nil
	}
	ruleText := RuleText(*rule)
	if len(rule.Methods) > 0 && !slices.Contains(rule.Methods, r.Method) {
		return &refusal{status: http.StatusForbidden,
			reason: "method " + quoteInvalid(r.Method) + " is not among the rule's methods " + strings.Join(rule.Methods, ", "),
			hint:   "the deciding rule: " + ruleText + " at " + rule.From + allowHint(*rule, r.Method, r.URL.Path)}
	}
	if len(rule.Methods) > 0 {
		// Frameworks (Express, ASP.NET, Symfony, Google's APIs) run the
		// method these name instead of the request's.
		for _, name := range methodOverrides {
			for _, v := range r.Header.Values(name) {
				if !slices.Contains(rule.Methods, strings.ToUpper(strings.TrimSpace(v))) {
					return &refusal{status: http.StatusForbidden,
						reason: "header " + name + " asks for method " + quoteInvalid(v) + ", which is not among the rule's methods " + strings.Join(rule.Methods, ", ")}
				}
			}
		}
		for _, v := range r.URL.Query()["_method"] {
			if !slices.Contains(rule.Methods, strings.ToUpper(strings.TrimSpace(v))) {
				return &refusal{status: http.StatusForbidden,
					reason: "the query's _method asks for method " + quoteInvalid(v) + ", which is not among the rule's methods " + strings.Join(rule.Methods, ", ")}
			}
		}
	}
	if len(rule.Paths) == 0 {
		return nil
	}
	if bad := ambiguousPath(r.URL.EscapedPath()); bad != "" {
		return &refusal{status: http.StatusForbidden, reason: "the path has " + bad + ", which a host with path rules does not take", withholdPath: true}
	}
	for _, g := range rule.Paths {
		if ok, _ := doublestar.Match(g, r.URL.Path); ok {
			return nil
		}
	}
	return &refusal{status: http.StatusForbidden,
		reason: "the path is not among the rule's paths " + strings.Join(rule.Paths, ", "),
		hint:   "the deciding rule: " + ruleText + " at " + rule.From + allowHint(*rule, r.Method, r.URL.Path)}
}

// methodOverrides are the request headers that frameworks read as the
// method to run instead of the request's own.
var methodOverrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// allowHint is the refusal's line with the allow() call that would let
// method reach path, or "" when allow() could not say it (a method that
// is not one allow() takes).
func allowHint(r plan.Rule, method, p string) string {
	if _, err := plan.NormalizeMethods([]string{method}); err != nil || method != strings.ToUpper(method) || plan.CheckPath(escapeGlob(p)) != nil {
		return ""
	}
	return "\nto allow it, add to the profile: " + allowFor(r, method, p)
}

// ambiguousPath names what in an escaped path a server may resolve
// differently from its decoded form, or returns "".
//
// Servers differ: Java servlet containers drop a segment's ";" parameters
// before they resolve dots ("..;" is ".."), and some decode a path twice
// ("%252e" is "."), so both count as ambiguous too.
func ambiguousPath(escaped string) string {
	lower := strings.ToLower(escaped)
	for _, enc := range []string{"%2f", "%5c"} {
		if strings.Contains(lower, enc) {
			return "an encoded slash or backslash"
		}
	}
	for _, enc := range []string{"%252e", "%252f", "%255c", "%2525"} {
		if strings.Contains(lower, enc) {
			return "a doubly encoded dot, slash or backslash"
		}
	}
	if strings.Contains(escaped, "\\") {
		return "a backslash"
	}
	for _, seg := range strings.Split(lower, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		seg, _, _ = strings.Cut(seg, "%3b")
		switch strings.ReplaceAll(seg, "%2e", ".") {
		case ".", "..":
			return "a dot segment"
		}
	}
	return ""
}

// RuleText writes r as the allow() call that makes it.
func RuleText(r plan.Rule) string {
	var b strings.Builder
	b.WriteString("allow(" + strconv.Quote(r.Host))
	if !slices.Equal(r.Ports, []int{DefaultPort}) {
		b.WriteString(", ports = [")
		for i, p := range r.Ports {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(p))
		}
		b.WriteString("]")
	}
	if r.AllowPrivate {
		b.WriteString(", allow_private = True")
	}
	if len(r.Methods) > 0 {
		b.WriteString(", methods = " + quoteList(r.Methods))
	}
	if len(r.Paths) > 0 {
		b.WriteString(", paths = " + quoteList(r.Paths))
	}
	if r.Inspect {
		b.WriteString(", inspect = True")
	}
	b.WriteString(")")
	return b.String()
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// allowFor is the allow() call that would let method reach path on r's
// host: r's own, widened by the method and the exact path (special glob
// characters escaped).
func allowFor(r plan.Rule, method, p string) string {
	n := r
	n.From = ""
	if len(n.Methods) > 0 && !slices.Contains(n.Methods, method) {
		n.Methods = append(slices.Clone(n.Methods), method)
		slices.Sort(n.Methods)
	}
	if len(n.Paths) > 0 {
		n.Paths = []string{escapeGlob(p)}
	}
	return RuleText(n)
}

func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]{}\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// headers checks every request header and substitutes the placeholders of
// the secrets bound to host. A header may carry the placeholder of a
// secret bound to host (substituted, over TLS only; also inside Basic
// credentials) and the value of a visible secret; no other secret value or
// placeholder, in any form, and nothing a gitleaks rule matches.
func (ic *interception) headers(r *http.Request, host string, tlsOK bool, dlp *DLP) ([]string, *refusal) {
	var subst []string
	for name, vals := range r.Header {
		for i, v := range vals {
			plain, basic := v, false
			if scheme, cred, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Basic") && isAuthHeader(name) {
				if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred)); err == nil {
					plain, basic = string(dec), true
				}
			}
			masked, out := plain, plain
			var here []string
			for j := range ic.secrets {
				s := &ic.secrets[j]
				if s.Placeholder == "" || !s.boundTo(host) || !strings.Contains(plain, s.Placeholder) {
					continue
				}
				if !tlsOK {
					return nil, &refusal{status: http.StatusForbidden, reason: "header " + name + " carries the placeholder of " + s.Name + ", whose value is sent only over https"}
				}
				masked = strings.ReplaceAll(masked, s.Placeholder, "")
				out = strings.ReplaceAll(out, s.Placeholder, s.Value)
				here = append(here, s.Name)
			}
			if ic.headerScan != nil {
				for _, t := range []string{name + ": " + masked, v} {
					if len(here) > 0 && t == v {
						continue // the masked form is what counts
					}
					if m, found := ic.headerScan.Scan([]byte(t)); found {
						return nil, &refusal{status: http.StatusForbidden, reason: headerFinding(name, m, host)}
					}
				}
			}
			if leak := dlp.ScanText("header "+name, name+": "+masked, ic.visible); leak != nil {
				return nil, &refusal{status: http.StatusForbidden, reason: "outbound scan: " + leak.Error()}
			}
			if len(here) > 0 {
				if basic {
					out = "Basic " + base64.StdEncoding.EncodeToString([]byte(out))
				}
				r.Header[name][i] = out
				for _, n := range here {
					if !slices.Contains(subst, n) {
						subst = append(subst, n)
					}
				}
			}
		}
	}
	slices.Sort(subst)
	return subst, nil
}

func isAuthHeader(name string) bool {
	return strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Proxy-Authorization")
}

// headerFinding says what a header carried that it must not.
func headerFinding(header string, m SecretMatch, host string) string {
	if name, ok := strings.CutSuffix(m.Secret, " (placeholder)"); ok {
		return "header " + header + " carries the placeholder of " + name + " (" + m.Encoding + "), which is not bound to " + host
	}
	return "header " + header + " carries the value of " + m.Secret + " (" + m.Encoding + "), which never leaves the proxy that way"
}

// checkResponse refuses a response whose headers carry a bound secret's
// value, or whose body is encoded so that it cannot be scanned for one
// after the proxy sent one.
func (ic *interception) checkResponse(resp *http.Response, st *forwardState) error {
	if ic.realScan == nil {
		return nil
	}
	if err := ic.scanHeader("response header", resp.Header); err != nil {
		return err
	}
	if !ic.bound(st.d.Host) {
		return nil
	}
	for _, v := range resp.Header.Values("Content-Encoding") {
		for _, ce := range strings.Split(v, ",") {
			if ce = strings.TrimSpace(ce); ce != "" && !strings.EqualFold(ce, "identity") {
				return fmt.Errorf("the destination answered with Content-Encoding %q, which the proxy cannot scan for the bound secrets' values", ce)
			}
		}
	}
	if resp.StatusCode == http.StatusPartialContent {
		return errors.New("the destination answered with a byte range, in which the proxy cannot see a bound secret's value whole")
	}
	return nil
}

// reporter is, with scan = "log", what logs a finding of the outbound
// scan in a request for path decided by d; nil otherwise.
func (ic *interception) reporter(method, path string, d Decision) func(*Leak) {
	if !ic.scanLogOnly {
		return nil
	}
	return func(l *Leak) {
		ev := Event{Time: time.Now().UTC(), Method: method, Intercepted: true, Path: path}
		fillDecision(&ev, d)
		ev.Reason = "outbound scan, logged only (scan = \"log\"): " + l.Error()
		ic.log(&ev)
	}
}

// bound reports whether a secret is bound to host.
func (ic *interception) bound(host string) bool {
	for i := range ic.secrets {
		if ic.secrets[i].boundTo(host) {
			return true
		}
	}
	return false
}

// scanHeader looks for a bound secret's value in h.
func (ic *interception) scanHeader(where string, h http.Header) error {
	for name, vals := range h {
		for _, v := range vals {
			if m, found := ic.realScan.Scan([]byte(name + ": " + v)); found {
				return &SecretFound{Where: where + " " + name, SecretMatch: m}
			}
		}
	}
	return nil
}

// interimDropper is the response writer of a decrypted request: it drops
// the destination's informational (1xx) responses, which the reverse
// proxy would pass on with their headers outside ModifyResponse, where
// nothing checks them for a bound value. The client's own server still
// answers Expect: 100-continue.
type interimDropper struct{ forwardWriter }

func (w *interimDropper) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return // the reverse proxy clears the header map after
	}
	w.forwardWriter.WriteHeader(code)
}

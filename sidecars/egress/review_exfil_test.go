package egress

// A hostile agent's attempts to get a bound secret's real value (or any
// secret) out through the intercepting proxy. Tests named
// TestReviewFixed... are leaks a review found in the first version, which
// failed until they were fixed. Tests named TestReviewHeld... are attacks
// the proxy stopped from the start, kept so that it goes on stopping them.

import (
	"bufio"
	"compress/gzip"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"golang.org/x/net/websocket"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// startReviewIntercepting is startIntercepting with an upstream of the
// test's own: h serves every name of the test's hosts (after the request
// is recorded, as the shared upstream does).
func startReviewIntercepting(t *testing.T, h http.Handler) *icptEnv {
	t.Helper()
	ca, err := NewCA([]string{"*.test"})
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{roots: x509.NewCertPool(), sseRelease: make(chan struct{})}
	up.roots.AddCert(ca.Certificate())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.got = append(up.got, recorded{Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header.Clone(), Proto: r.Proto})
		up.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: ca.GetCertificate, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	up.port = ln.Addr().(*net.TCPAddr).Port
	return startInterceptingAt(t, up)
}

// everything sends req and returns all the client could see of the
// answer, 1xx headers, headers, body and trailers included, as text.
func (e *icptEnv) everything(t *testing.T, req *http.Request) string {
	t.Helper()
	var seen strings.Builder
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&seen, "%d %v\n", code, h)
		return nil
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := e.client.Do(req)
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return seen.String() + "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(&seen, "%s %v\n%s\ntrailer %v\n", resp.Status, resp.Header, b, resp.Trailer)
	if err != nil {
		seen.WriteString("error: " + err.Error())
	}
	return seen.String()
}

// assertNoValue fails when the real value is in what the client saw or
// in the log.
func (e *icptEnv) assertNoValue(t *testing.T, what, seen string) {
	t.Helper()
	if strings.Contains(seen, e.real) {
		t.Errorf("%s: the real value reached the agent:\n%s", what, seen)
	}
	if strings.Contains(e.log.String(), e.real) {
		t.Errorf("%s: the real value is in the log", what)
	}
}

// upstreamGotValue fails the test when the upstream never received the
// real value: the attack then showed nothing.
func (e *icptEnv) upstreamGotValue(t *testing.T) {
	t.Helper()
	for _, r := range e.up.requests() {
		if strings.Contains(fmt.Sprint(r.Header), e.real) {
			return
		}
	}
	t.Fatal("the upstream never received the real value, so the attack shows nothing")
}

// TestReviewFixedGuardSplitValue: the response guard holds back a
// possible start of a secret form only when it is at least minHeld (4)
// bytes long; a shorter one is released, and is not kept for the next
// scan. A bound host that echoes a request header in a stream (any echo
// service that flushes as it writes, or whose TLS records or HTTP/2 DATA
// frames happen to end there: the agent controls the padding before the
// value, so it can place the boundary) and whose read ends 1 to 3 bytes
// into the value gets those bytes released, and then the rest of the
// value, which is no whole form on its own, passes too: the agent
// reassembles the whole real value from one response.
//
// Fix: keep a scan tail of the already released bytes (the scanner's
// longest form minus one, as SecretStream does) and scan tail+pending+new;
// a form found across the boundary cuts the stream, so at most minHeld-1
// bytes of it were ever released.
func TestReviewFixedGuardSplitValue(t *testing.T) {
	for _, split := range []int{1, 2, 3} {
		for _, h1 := range []bool{false, true} {
			t.Run(fmt.Sprintf("split=%d,h1=%v", split, h1), func(t *testing.T) {
				e := startReviewIntercepting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					v := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
					if len(v) <= split {
						return
					}
					io.WriteString(w, "you sent: "+v[:split])
					w.(http.Flusher).Flush()
					time.Sleep(100 * time.Millisecond)
					io.WriteString(w, v[split:]+"\n")
				}))
				e.useH1(h1)
				req, _ := http.NewRequest("GET", e.url(echoHost, "/stream-echo"), nil)
				req.Header.Set("Authorization", "Bearer "+e.ph)
				seen := e.everything(t, req)
				e.upstreamGotValue(t)
				e.assertNoValue(t, "a value split 1-3 bytes in", seen)
			})
		}
	}
}

// TestReviewFixedInformationalHeaders: the reverse proxy passes a 1xx
// informational response's headers (103 Early Hints, or any 1xx) on to
// the client through ClientTrace.Got1xxResponse, before and outside
// ModifyResponse, so checkResponse never sees them. A bound host that
// echoes a request header into an informational response hands the
// agent the real value.
//
// Fix: in the interception's reverse proxy, scan 1xx headers before they
// are written: wrap the outgoing request's context with a ClientTrace
// whose Got1xxResponse runs scanHeader and returns its error (which
// aborts the round trip; the reverse proxy's own hook runs after the
// one installed later), or drop 1xx responses other than 100 and 101.
func TestReviewFixedInformationalHeaders(t *testing.T) {
	for _, h1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h1=%v", h1), func(t *testing.T) {
			e := startReviewIntercepting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</style.css>; rel=preload; x-echo=\""+r.Header.Get("Authorization")+"\"")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Del("Link")
				io.WriteString(w, "done\n")
			}))
			e.useH1(h1)
			req, _ := http.NewRequest("GET", e.url(echoHost, "/hints"), nil)
			req.Header.Set("Authorization", "Bearer "+e.ph)
			seen := e.everything(t, req)
			e.upstreamGotValue(t)
			e.assertNoValue(t, "a 103 echoing the request", seen)
		})
	}
}

// bin is a stateful echo ("request bin"): /store keeps the request's
// Authorization, /read gives it back, gzipped when the client accepts
// gzip, as most servers do; /file serves it as a file (with ranges).
func bin() http.Handler {
	var mu sync.Mutex
	var kept string
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/store":
			kept = r.Header.Get("Authorization")
			io.WriteString(w, "stored\n")
		case "/file":
			http.ServeContent(w, r, "kept.txt", time.Time{}, strings.NewReader("kept: "+kept+"\n"))
		case "/read":
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				io.WriteString(zw, "kept: "+kept+"\n")
				zw.Close()
				return
			}
			io.WriteString(w, "kept: "+kept+"\n")
		}
	})
}

// readAll reads a response body, gunzipped when it says gzip.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return "gzip: " + err.Error()
		}
		r = zr
	}
	b, _ := io.ReadAll(r)
	return resp.Status + "\n" + string(b)
}

// TestReviewFixedGuardCompressedLater: the proxy asks for an unencoded
// response (Accept-Encoding: identity), and refuses an encoded one, only
// on a request in which it substituted a secret. A bound host that keeps
// what it was sent and gives it back later (a request bin, an API that
// stores and lists a header, a log viewer) answers a second request,
// which carries no placeholder and asks for gzip, with the value
// compressed: the guard scans the gzip bytes and finds nothing. No trick
// is needed on the agent's side: Go's and curl's clients (--compressed)
// ask for gzip by default and gunzip what comes back.
//
// Fix: on every request to a host a secret is bound to (not only those
// that carried its placeholder), force Accept-Encoding: identity and
// refuse an encoded answer, or decode gzip/deflate/br in the guard.
func TestReviewFixedGuardCompressedLater(t *testing.T) {
	e := startReviewIntercepting(t, bin())
	resp, body := e.do(t, "GET", e.url(echoHost, "/store"), "", "Authorization", "Bearer "+e.ph)
	if resp.StatusCode != 200 {
		t.Fatalf("store: %d %q", resp.StatusCode, body)
	}
	e.upstreamGotValue(t)
	req, _ := http.NewRequest("GET", e.url(echoHost, "/read"), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := e.client.Do(req)
	if err != nil {
		return // refused: held
	}
	e.assertNoValue(t, "a later gzipped read of what a bound host kept", readAll(t, resp))
}

// TestReviewFixedGuardPlainHTTPLater: plain-HTTP requests to a bound host
// go through the forward path, which refuses a placeholder (no value
// without TLS) but has no response guard at all. A bound host that keeps
// what it was sent over https gives it back over http, unguarded.
//
// Fix: guard the forward path's responses from intercepted hosts as the
// TLS path does (ModifyResponse with checkResponse and a guardReader), or
// refuse plain HTTP to a host a secret is bound to.
func TestReviewFixedGuardPlainHTTPLater(t *testing.T) {
	h := bin()
	e := startReviewIntercepting(t, h)
	// The same bin serves plain HTTP on another port of the bound host,
	// which a rule allows.
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: h}
	go plain.Serve(plainLn)
	t.Cleanup(func() { plain.Close() })
	plainPort := plainLn.Addr().(*net.TCPAddr).Port
	if err := e.AddRule(plan.Rule{Host: echoHost, Ports: []int{plainPort}, AllowPrivate: true, From: "//p.star:5:1"}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, "GET", e.url(echoHost, "/store"), "", "Authorization", "Bearer "+e.ph)
	if resp.StatusCode != 200 {
		t.Fatalf("store: %d %q", resp.StatusCode, body)
	}
	e.upstreamGotValue(t)
	resp, err = e.client.Get("http://" + echoHost + ":" + strconv.Itoa(plainPort) + "/read")
	if err != nil {
		return // refused: held
	}
	e.assertNoValue(t, "a later plain-HTTP read of what a bound host kept", readAll(t, resp))
}

// TestReviewFixedWebSocketOutboundUnscanned: once an intercepted host
// switches to WebSocket, what the client sends is relayed unscanned
// (intercept.go says so: frames are masked and not parsed). Masking is
// no protection: the key is in each frame. So a credential gitleaks knows
// (here a GitHub token), which the proxy refuses in a header, URL or body
// of the same host, goes out in a plain WebSocket text message to any
// intercepted host that accepts an upgrade.
//
// Fix: parse the client's WebSocket frames on an upgraded connection
// (RFC 6455: unmask, reassemble text/binary messages, inflate
// permessage-deflate or strip it from Sec-WebSocket-Extensions) and run
// the body DLP and bodyScan on the messages, or refuse upgrades to
// intercepted hosts unless a rule opts in.
func TestReviewFixedWebSocketOutboundUnscanned(t *testing.T) {
	e := startIntercepting(t)
	pat := fakePAT(t)
	// The same token in a body is refused: the scan is meant to apply.
	if resp, _ := e.do(t, "POST", e.url(inspectHost, "/"), "token "+pat); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the PAT in a body: %s; want 403", resp.Status)
	}
	c := e.openTunnel(t, inspectHost+":"+strconv.Itoa(e.up.port))
	tc := tls.Client(c, &tls.Config{ServerName: inspectHost, RootCAs: e.clientRoots, NextProtos: []string{"http/1.1"}})
	cfg, err := websocket.NewConfig("wss://"+inspectHost+":"+strconv.Itoa(e.up.port)+"/ws", "https://"+inspectHost)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, tc)
	if err != nil {
		return // upgrades refused: held
	}
	defer ws.Close()
	msg := "token " + pat
	if _, err := ws.Write([]byte(msg)); err != nil {
		return
	}
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 256)
	n, _ := ws.Read(buf)
	if strings.Contains(string(buf[:n]), pat) {
		t.Errorf("a GitHub token went out in a WebSocket message (the upstream echoed it back): %q", buf[:n])
	}
}

// TestReviewFixedWebSocketFramedEcho: the guard on an upgraded connection
// scans the raw bytes from the destination, but a WebSocket message is
// framed: a server that sends a message in fragments (many cut messages
// at a buffer size; the agent pads the message so the cut falls inside
// the value) puts a frame header in the middle of the value. No raw form
// matches, and the client, which reassembles the message, reads the
// whole value. The same holds for any framing over an upgrade (HTTP/2
// after an h2c upgrade, HPACK-coded headers included).
//
// Fix: parse the destination's WebSocket frames and guard the
// reassembled payload, or refuse upgrades from hosts a secret is bound
// to.
func TestReviewFixedWebSocketFramedEcho(t *testing.T) {
	e := startReviewIntercepting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "websocket only", 400)
			return
		}
		key := r.Header.Get("Sec-WebSocket-Key")
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		// "your key: Bearer <value>" in fragments of 20 bytes: a text
		// frame without FIN, continuations, the last with FIN.
		msg := []byte("your key: " + r.Header.Get("Authorization"))
		for i := 0; i < len(msg); i += 20 {
			part := msg[i:min(i+20, len(msg))]
			op := byte(0x0)
			if i == 0 {
				op = 0x1
			}
			if i+20 >= len(msg) {
				op |= 0x80
			}
			brw.Write([]byte{op, byte(len(part))})
			brw.Write(part)
		}
		brw.Flush()
		io.Copy(io.Discard, c)
	}))
	c := e.openTunnel(t, echoHost+":"+strconv.Itoa(e.up.port))
	tc := tls.Client(c, &tls.Config{ServerName: echoHost, RootCAs: e.clientRoots, NextProtos: []string{"http/1.1"}})
	cfg, _ := websocket.NewConfig("wss://"+echoHost+":"+strconv.Itoa(e.up.port)+"/ws", "https://"+echoHost)
	cfg.Header = http.Header{"Authorization": {"Bearer " + e.ph}}
	ws, err := websocket.NewClient(cfg, tc)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	// x/net/websocket hands out each fragment as it comes; a client
	// that reassembles (a browser, Node's ws) gets the message whole.
	var got string
	for {
		var part string
		if err := websocket.Message.Receive(ws, &part); err != nil {
			break
		}
		got += part
		if len(got) >= len("your key: Bearer ")+len(e.real) {
			break
		}
	}
	e.upstreamGotValue(t)
	e.assertNoValue(t, "a fragmented WebSocket echo", got)
}

// TestReviewFixedGuardRanges: the guard looks for whole forms of the
// value in one response. A bound host that keeps what it was sent and
// serves it as a file honours Range: two requests for two halves of the
// stored value each carry a part that is no whole form, and the agent
// joins them. (The same holds for one multi-range request: the
// multipart/byteranges boundaries split the value.)
//
// Fix: on hosts a secret is bound to, drop Range and If-Range from
// requests (or refuse 206 responses), and treat any long enough
// substring of a value (say 8 bytes of its random part) as a find, not
// only the whole value.
func TestReviewFixedGuardRanges(t *testing.T) {
	e := startReviewIntercepting(t, bin())
	resp, body := e.do(t, "GET", e.url(echoHost, "/store"), "", "Authorization", "Bearer "+e.ph)
	if resp.StatusCode != 200 {
		t.Fatalf("store: %d %q", resp.StatusCode, body)
	}
	e.upstreamGotValue(t)
	var joined string
	for _, rng := range []string{"bytes=0-39", "bytes=40-"} {
		req, _ := http.NewRequest("GET", e.url(echoHost, "/file"), nil)
		req.Header.Set("Range", rng)
		resp, err := e.client.Do(req)
		if err != nil {
			return // the whole file was sent and cut: held
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil || resp.StatusCode != http.StatusPartialContent {
			e.assertNoValue(t, "a range request answered whole", string(b))
			return // ranges refused: held
		}
		joined += string(b)
	}
	e.assertNoValue(t, "two ranges of a stored value", joined)
}

// rawTLS opens a CONNECT to host, shakes hands as sni over HTTP/1.1, and
// sends req as written; it returns the answers read for n requests.
func (e *icptEnv) rawTLS(t *testing.T, host, sni, req string, n int) []string {
	t.Helper()
	c := e.openTunnel(t, host+":"+strconv.Itoa(e.up.port))
	defer c.Close()
	tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: e.clientRoots, NextProtos: []string{"http/1.1"}})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return []string{"handshake: " + err.Error()}
	}
	if _, err := io.WriteString(tc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	var out []string
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			out = append(out, "error: "+err.Error())
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	return out
}

// TestReviewHeldAuthorityTricks: through a CONNECT to a bound host, the
// agent names another host in the request, so that the placeholder is
// substituted under the bound host's decision and the request goes
// elsewhere, or through a CONNECT to a host that is not bound, it names
// the bound one. Each is refused (421), or goes to the CONNECT's own host
// only; the upstream never gets the value for another name.
func TestReviewHeldAuthorityTricks(t *testing.T) {
	e := startIntercepting(t)
	port := strconv.Itoa(e.up.port)
	auth := "Authorization: Bearer " + e.ph + "\r\n"
	cases := []struct {
		name, connect, sni, req string
	}{
		{"absolute-form to another host", boundHost, boundHost,
			"GET https://" + inspectHost + ":" + port + "/x HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"absolute-form to the bound host on a non-bound CONNECT", inspectHost, inspectHost,
			"GET https://" + boundHost + ":" + port + "/x HTTP/1.1\r\nHost: " + inspectHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"Host of the bound host on a non-bound CONNECT", inspectHost, inspectHost,
			"GET /x HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"SNI of the bound host on a non-bound CONNECT", inspectHost, boundHost,
			"GET /x HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"Host with another port", boundHost, boundHost,
			"GET /x HTTP/1.1\r\nHost: " + boundHost + ":1\r\n" + auth + "\r\n"},
		{"Host without a port (not 443)", boundHost, boundHost,
			"GET /x HTTP/1.1\r\nHost: " + boundHost + "\r\n" + auth + "\r\n"},
		{"two Host headers", boundHost, boundHost,
			"GET /x HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\nHost: " + inspectHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"userinfo in the Host", boundHost, boundHost,
			"GET /x HTTP/1.1\r\nHost: " + inspectHost + "@" + boundHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"CONNECT inside the stream to another host", boundHost, boundHost,
			"CONNECT " + inspectHost + ":" + port + " HTTP/1.1\r\nHost: " + inspectHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"pipelined second request for another host", boundHost, boundHost,
			"GET /a HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\n\r\nGET /b HTTP/1.1\r\nHost: " + inspectHost + ":" + port + "\r\n" + auth + "\r\n"},
		{"a request smuggled in a body (CL and TE)", boundHost, boundHost,
			"POST /a HTTP/1.1\r\nHost: " + boundHost + ":" + port + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: " + inspectHost + ":" + port + "\r\n" + auth + "\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := e.rawTLS(t, c.connect, c.sni, c.req, strings.Count(c.req, " HTTP/1.1\r\n"))
			e.assertNoValue(t, c.name, strings.Join(out, "\n"))
			for _, r := range e.up.requests() {
				if strings.Contains(fmt.Sprint(r.Header), e.real) && r.Host != boundHost+":"+port {
					t.Errorf("the value went to %q", r.Host)
				}
				if r.Host != boundHost+":"+port && r.Host != inspectHost+":"+port {
					t.Errorf("a request reached the upstream as %q", r.Host)
				}
			}
			for _, r := range e.up.requests() {
				if r.Host == inspectHost+":"+port && strings.Contains(fmt.Sprint(r.Header), e.real) {
					t.Errorf("the value went to %s", inspectHost)
				}
			}
		})
	}
}

// TestReviewHeldHeaderTricks: the placeholder in forms and places the
// substitution does not handle is refused toward a host it is not bound
// to (so it is never substituted there), and a gitleaks credential in a
// header's name, a cookie or an encoded query is refused.
func TestReviewHeldHeaderTricks(t *testing.T) {
	e := startIntercepting(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	pat := fakePAT(t)
	cases := []struct {
		name, host, path string
		hdr              []string
	}{
		{"lowercase basic to a host it is not bound to", inspectHost, "/", []string{"Authorization", "basic " + b64("u:"+e.ph)}},
		{"Basic with spaces around", inspectHost, "/", []string{"Authorization", "Basic   " + b64("u:"+e.ph) + "  "}},
		{"Basic in the URL alphabet", inspectHost, "/", []string{"Authorization", "Basic " + base64.URLEncoding.EncodeToString([]byte("u:"+e.ph))}},
		{"Basic unpadded", inspectHost, "/", []string{"Authorization", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("uu:"+e.ph))}},
		{"Basic in another header", inspectHost, "/", []string{"X-Auth", "Basic " + b64("u:"+e.ph)}},
		{"a cookie", inspectHost, "/", []string{"Cookie", "a=b; session=" + e.ph}},
		{"Proxy-Authorization", inspectHost, "/", []string{"Proxy-Authorization", "Bearer " + e.ph}},
		{"PAT in a cookie", inspectHost, "/", []string{"Cookie", "t=" + pat}},
		{"PAT percent-encoded in the query", inspectHost, "/?q=" + strings.ReplaceAll(url.QueryEscape(pat), "_", "%5F"), nil},
		{"PAT base64 in a header", inspectHost, "/", []string{"X-Note", b64("token=" + pat)}},
	}
	for _, h1 := range []bool{false, true} {
		e.useH1(h1)
		for _, c := range cases {
			before := len(e.up.requests())
			resp, body := e.do(t, "GET", e.url(c.host, c.path), "", c.hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("h1=%v %s: %d %q; want 403", h1, c.name, resp.StatusCode, body)
			}
			for _, r := range e.up.requests()[before:] {
				if s := fmt.Sprint(r.Header) + r.Path; strings.Contains(s, e.real) || strings.Contains(s, pat) {
					t.Errorf("h1=%v %s: the upstream got it: %v", h1, c.name, r.Header)
				}
			}
		}
	}
	e.assertNoValue(t, "header tricks", "")
}

// TestReviewHeldPlainHTTPPlaceholder: the placeholder in a plain-HTTP
// request (the forward path) to the host it is bound to is refused, not
// substituted in the clear.
func TestReviewHeldPlainHTTPPlaceholder(t *testing.T) {
	h := bin()
	e := startReviewIntercepting(t, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var mu sync.Mutex
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, fmt.Sprint(r.Header))
		mu.Unlock()
	})}
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	if err := e.AddRule(plan.Rule{Host: echoHost, Ports: []int{port}, AllowPrivate: true}); err != nil {
		t.Fatal(err)
	}
	for _, hdr := range [][]string{{"Authorization", "Bearer " + e.ph}, {"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+e.ph))}} {
		resp, body := e.do(t, "GET", "http://"+echoHost+":"+strconv.Itoa(port)+"/", "", hdr...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%v over plain HTTP: %d %q; want 403", hdr, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range got {
		if strings.Contains(h, e.real) {
			t.Errorf("the value went out in the clear: %s", h)
		}
	}
}

// TestReviewHeldResponseEchoes: a bound host that sends the value back
// in the ways an ordinary server does is cut before the value reaches the
// agent: a stored value read back unencoded, a CORS reflection of a
// header, a redirect whose Location carries it, a body that is gzipped
// although identity was asked for, a Basic credential echoed in its
// base64 form, the value as hex, and a raw TLS echo of the whole request
// (whose parse error must not quote it, in the 502 or the log).
func TestReviewHeldResponseEchoes(t *testing.T) {
	h := bin()
	mux := http.NewServeMux()
	mux.Handle("/store", h)
	mux.Handle("/read", h)
	mux.HandleFunc("/cors", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+inspectHost+"/?k="+url.QueryEscape(r.Header.Get("X-Key")), http.StatusFound)
	})
	mux.HandleFunc("/gzip-anyway", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, r.Header.Get("Authorization"))
		zw.Close()
	})
	mux.HandleFunc("/echo-auth", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "{\"authorization\": \""+r.Header.Get("Authorization")+"\"}")
	})
	mux.HandleFunc("/hex", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%X", r.Header.Get("X-Key"))
	})
	e := startReviewIntercepting(t, mux)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+e.ph))
	steps := []struct {
		path string
		hdr  []string
	}{
		{"/store", []string{"Authorization", "Bearer " + e.ph}},
		{"/read", []string{"Accept-Encoding", "identity"}},
		{"/cors", []string{"Origin", "https://" + e.ph}},
		{"/redirect", []string{"X-Key", e.ph}},
		{"/gzip-anyway", []string{"Authorization", "Bearer " + e.ph}},
		{"/echo-auth", []string{"Authorization", basic}},
		{"/hex", []string{"X-Key", e.ph}},
	}
	for _, h1 := range []bool{false, true} {
		e.useH1(h1)
		for _, s := range steps {
			req, _ := http.NewRequest("GET", e.url(echoHost, s.path), nil)
			for i := 0; i+1 < len(s.hdr); i += 2 {
				req.Header.Set(s.hdr[i], s.hdr[i+1])
			}
			seen := e.everything(t, req)
			e.assertNoValue(t, fmt.Sprintf("h1=%v %s", h1, s.path), seen)
			if strings.Contains(seen, base64.StdEncoding.EncodeToString([]byte("x:" + e.real))[4:40]) {
				t.Errorf("h1=%v %s: the Basic credential came back", h1, s.path)
			}
		}
	}
	e.upstreamGotValue(t)

	// A raw TLS echo as the bound host: the proxy's request comes back as
	// the "response".
	ca, _ := NewCA([]string{"*.test"})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: ca.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	echoPort := ln.Addr().(*net.TCPAddr).Port
	e2 := startInterceptingAt(t, &upstream{port: echoPort, roots: func() *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(ca.Certificate())
		return p
	}()})
	for _, h1 := range []bool{false, true} {
		e2.useH1(h1)
		for _, method := range []string{"GET", "HTTP", "POST"} {
			req, _ := http.NewRequest(method, e2.url(echoHost, "/200"), nil)
			req.Header.Set("Authorization", "Bearer "+e2.ph)
			seen := e2.everything(t, req)
			e2.assertNoValue(t, "a raw TLS echo", seen)
		}
	}
}

// pctAll percent-encodes every byte of s, as a client may (RFC 3986
// allows any byte to be encoded; %2D is '-').
func pctAll(s string, upper bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if upper {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			fmt.Fprintf(&b, "%%%02x", s[i])
		}
	}
	return b.String()
}

// TestReviewFixedPercentEncodedEveryByte: the README promises that a
// secret or placeholder is refused "percent-encoded", but the scanner
// knows only url.QueryEscape's and url.PathEscape's forms, which leave
// letters, digits and '-' as they are. The same value with every byte
// encoded (what many encoders do for a "safe" form, and what any server
// decodes the same) passes in the URL and in a form body: here the
// visible secret to an inspected host and the placeholder to a host it is
// not bound to, in upper- and lowercase hex.
//
// Fix: decode percent-encoding (and, for hex, fold case) before the
// own-secret scan of URLs, bodies and headers, as gitleaks' decoders do,
// rather than matching a fixed list of encoded forms.
func TestReviewFixedPercentEncodedEveryByte(t *testing.T) {
	e := startIntercepting(t)
	for _, upper := range []bool{true, false} {
		for _, c := range []struct{ name, secret string }{{"VISIBLE", e.visible}, {"API_KEY placeholder", e.ph}} {
			enc := pctAll(c.secret, upper)
			before := len(e.up.requests())
			resp, body := e.do(t, "GET", e.url(inspectHost, "/q?k="+enc), "")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s percent-encoded (upper=%v) in the query: %d %q; want 403", c.name, upper, resp.StatusCode, body)
			}
			resp, body = e.do(t, "POST", e.url(inspectHost, "/form"), "k="+enc, "Content-Type", "application/x-www-form-urlencoded")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s percent-encoded (upper=%v) in a form body: %d %q; want 403", c.name, upper, resp.StatusCode, body)
			}
			for _, r := range e.up.requests()[before:] {
				if q, _ := url.QueryUnescape(r.Body); strings.Contains(q, c.secret) {
					t.Logf("the upstream decoded %s from the body", c.name)
				}
			}
		}
	}
}

// TestReviewFixedGuardSecondContentEncoding: checkResponse refuses an
// encoded answer to a request that carried a substituted value, but reads
// only the first Content-Encoding field (Header.Get). A bound host that
// answers with "Content-Encoding: identity" and then
// "Content-Encoding: gzip" (two fields, as a server that adds its own
// after a framework's does) sends a gzipped body; the guard scans the
// compressed bytes, finds nothing, and the agent gunzips the value.
//
// Fix: check every Content-Encoding value (Header.Values, split on
// commas), and refuse any coding other than identity.
func TestReviewFixedGuardSecondContentEncoding(t *testing.T) {
	e := startReviewIntercepting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Encoding"] = []string{"identity", "gzip"}
		zw := gzip.NewWriter(w)
		io.WriteString(zw, "you sent: "+r.Header.Get("Authorization"))
		zw.Close()
	}))
	for _, h1 := range []bool{false, true} {
		e.useH1(h1)
		req, _ := http.NewRequest("GET", e.url(echoHost, "/"), nil)
		req.Header.Set("Authorization", "Bearer "+e.ph)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := e.client.Do(req)
		if err != nil {
			continue // refused: held
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen := string(b)
		if zr, err := gzip.NewReader(strings.NewReader(seen)); err == nil {
			d, _ := io.ReadAll(zr)
			seen = string(d)
		}
		e.upstreamGotValue(t)
		e.assertNoValue(t, fmt.Sprintf("h1=%v two Content-Encoding fields", h1), seen)
	}
}

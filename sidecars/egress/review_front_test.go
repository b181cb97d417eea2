package egress

// A hostile agent against the proxy's own HTTP/1.1 server (front.go) and
// its plain-HTTP forwarding over kept upstream connections (plain.go).
// Tests named TestReviewFrontBreak... show a break in the code as it
// stands and fail until it is fixed; tests named TestReviewFrontHeld...
// are attacks the proxy stops, kept so that it goes on stopping them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// frontUpHost is the allowed plain-HTTP destination of these tests;
// frontDeniedHost is never allowed.
const (
	frontUpHost     = "up.example.com"
	frontDeniedHost = "denied.example.com"
)

// rawUp is a plain-HTTP destination written byte by byte: it reads each
// request with http.ReadRequest, records it, and lets the test answer.
type rawUp struct {
	port  int
	mu    sync.Mutex
	conns int      // connections accepted
	reqs  []string // "METHOD request-target body" of every request parsed
}

// rawHandler answers req, the n-th request (from 0) on connection conn
// (from 0); it returns false to close the connection.
type rawHandler func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool

func startRawUp(t testing.TB, h rawHandler) *rawUp {
	t.Helper()
	u := &rawUp{}
	u.port = echoServer(t, func(c net.Conn) {
		u.mu.Lock()
		conn := u.conns
		u.conns++
		u.mu.Unlock()
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, err := io.ReadAll(req.Body)
			u.mu.Lock()
			u.reqs = append(u.reqs, req.Method+" "+req.RequestURI+" "+string(body))
			u.mu.Unlock()
			if err != nil {
				return
			}
			if !h(u, conn, n, req, body, c, br) {
				return
			}
		}
	})
	return u
}

func (u *rawUp) connCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func (u *rawUp) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.reqs...)
}

// answerPath answers with the request's path as its body.
func answerPath(_ *rawUp, _, _ int, req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
	return true
}

// frontReviewProxy runs a proxy that allows frontUpHost on port (loopback,
// allow_private).
func frontReviewProxy(t *testing.T, port int, opts ...func(*Options)) (*testProxy, string) {
	t.Helper()
	o := Options{
		Resolver: fakeResolver{frontUpHost: loopback, frontDeniedHost: loopback},
		Rules:    []plan.Rule{{Host: frontUpHost, Ports: []int{port}, AllowPrivate: true, From: "//review:1:1"}},
	}
	for _, f := range opts {
		f(&o)
	}
	return startProxy(t, "tcp", o), "http://" + frontUpHost + ":" + strconv.Itoa(port)
}

// exchangeRaw writes raw on a new proxy connection, half-closes it, and
// returns every response the proxy sent before it closed the connection.
func exchangeRaw(t *testing.T, tp *testProxy, raw string) []string {
	t.Helper()
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		io.WriteString(c, raw)
		c.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReader(c)
	var out []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the proxy neither answered nor closed within 10 s; answers so far %q", out)
			}
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
		if resp.Close {
			return out
		}
	}
}

// TestReviewFrontBreakPoolUnsolicitedBytes: a kept upstream connection is
// checked for bytes the destination sent unasked only at the socket
// (stillOpen peeks the kernel buffer), never in the connection's own
// read buffer. A destination whose answer comes in one segment with more
// bytes behind it (a second response, a body behind a 204 or 304, a body
// longer than its Content-Length) leaves those bytes in uc.br; the
// connection goes back to the pool (relay: body.eof, !resp.Close), and
// the next request for that decision, from any client of the proxy, is
// answered with them. The real answer then waits in the socket and the
// connection is dropped only at its next use: the proxy hands another
// client a response the destination forged before that client asked
// (response desynchronisation / pool poisoning). net/http's Transport,
// which the forward path used before, refuses such a connection
// ("Unsolicited response received on idle HTTP channel").
//
// Where: plain.go, plainPool.get/put and relay: a connection whose
// uc.br.Buffered() > 0 after the response body must not be kept (relay)
// or reused (get).
func TestReviewFrontBreakPoolUnsolicitedBytes(t *testing.T) {
	const forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: yes\r\n\r\nforged"
	for _, tc := range []struct{ name, method, first string }{
		{"a second response behind the first", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged},
		{"a body behind a 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + forged},
		{"a body behind a 304", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n" + forged},
		{"a 100 Continue after the final answer", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 100 Continue\r\n\r\n" + forged},
		{"a body behind a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, _ []byte, c net.Conn, br *bufio.Reader) bool {
				if req.URL.Path == "/first" {
					io.WriteString(c, tc.first) // one write, one segment
					return true
				}
				return answerPath(u, conn, n, req, nil, c, br)
			})
			tp, base := frontReviewProxy(t, up.port)
			methodRequest(t, tp, tc.method, base+"/first")
			tp.log.waitEvents(t, 1)
			// Another client, the same decision.
			resp, body := methodRequest(t, tp, "GET", base+"/second")
			if body != "/second" || resp.Header.Get("X-Forged") != "" {
				t.Errorf("a second client's GET /second got %d %q (X-Forged %q): bytes the destination sent behind an earlier answer, from a kept connection",
					resp.StatusCode, body, resp.Header.Get("X-Forged"))
			}
		})
	}
}

// methodRequest sends one request without a body on a new proxy
// connection and returns the answer with its body read.
func methodRequest(t *testing.T, tp *testProxy, method, u string) (*http.Response, string) {
	t.Helper()
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, u)
	br := bufio.NewReader(c)
	for {
		resp, body := readResponse(t, br, method)
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, body
		}
	}
}

// TestReviewFrontBreakUpstreamHeaderUnbounded: the destination's response
// header is read by http.ReadResponse with no limit (plain.go exchange,
// on uc.br straight from the socket). net/http's Transport, which the
// forward path used before, stops at MaxResponseHeaderBytes (10 MiB by
// default); the proxy reads a header line of any length into memory, so
// one allowed destination (or several requests to it at once) can grow
// the proxy's heap without bound and kill it for every client. The same
// holds for interim (1xx) answers, which go through the same call.
//
// Where: plain.go, plainRequest.exchange: http.ReadResponse(uc.br, r)
// must read through a limit (an io.LimitedReader under uc.br, reset
// after the header, as Transport's persistConn.readLimit does).
func TestReviewFrontBreakUpstreamHeaderUnbounded(t *testing.T) {
	const offer = 48 << 20 // what the destination tries to send
	var written atomic.Int64
	up := startRawUp(t, func(_ *rawUp, _, _ int, _ *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for written.Load() < offer {
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return false
			}
		}
		return false
	})
	tp, base := frontReviewProxy(t, up.port)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: x\r\n\r\n", base)
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Logf("answer after %s: %s", time.Since(start), resp.Status)
	}
	if n := written.Load(); n >= 32<<20 {
		t.Errorf("the proxy took %d MiB of a single response header line from the destination into memory; want it to stop reading at a limit (net/http: 10 MiB)", n>>20)
	}
}

// TestReviewFrontBreakPlainWebSocketUnscanned: on the TLS path, a
// WebSocket to an inspected host is guarded (guardUpgrade scans the
// client's frames with the body DLP and the bottle's own values). The
// plain-HTTP path to the same kind of host applies checkRequest, which
// lets a WebSocket upgrade through, and then relays the switched
// connection as a blind tunnel (relayUpgrade, t.run): the value of a
// secret the agent can see, which the proxy refuses in a body of the very
// same host and route, leaves in a WebSocket frame. (The forward path had
// no guard on upgrades before the rewrite either.)
//
// Where: plain.go relayUpgrade, entered from proxy.go serveForward for an
// intercepted decision: wrap the upstream side in the interception's
// WebSocket guards (ic.guardUpgrade), or refuse the upgrade on the plain
// path to intercepted hosts.
func TestReviewFrontBreakPlainWebSocketUnscanned(t *testing.T) {
	visible := randomToken("vis-", 40)
	got := make(chan string, 1)
	up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool {
		if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
			return answerPath(u, conn, n, req, body, c, br)
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(br)
		got <- string(b)
		return false
	})
	const host = "ws.inspect.test"
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{host: loopback},
		Rules:    []plan.Rule{{Host: host, Ports: []int{up.port}, AllowPrivate: true, Inspect: true, From: "//review:1:1"}},
		Secrets:  []Secret{{Name: "VISIBLE", Value: visible}},
	})
	base := "http://" + host + ":" + strconv.Itoa(up.port)
	// The value in a body of the same host is refused: the scan applies.
	resp, _ := tp.rawRequest(t, fmt.Sprintf("POST %s/ws HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", base, len(visible), visible))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the visible secret's value in a plain-HTTP body: %d; want 403", resp.StatusCode)
	}
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", base)
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		return // the upgrade is refused: held
	}
	// A masked text frame with a zero key: valid, and the payload is the
	// value as it is.
	msg := "key " + visible
	frame := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
	c.Write(frame)
	c.(*net.TCPConn).CloseWrite()
	if s := <-got; strings.Contains(s, visible) {
		t.Errorf("the visible secret's value went out in a WebSocket frame on the plain-HTTP path to an inspected host (%d bytes relayed unscanned)", len(s))
	}
}

// TestReviewFrontHeldFraming: body-length confusions, pipelining and
// malformed framing never make the destination parse a request the proxy
// did not decide: the proxy reads each request with net/http's parser and
// writes it out again in its own framing, so what the client put in a
// body stays a body. "smuggled" must never be a request the destination
// sees, and no answer may carry it.
func TestReviewFrontHeldFraming(t *testing.T) {
	up := startRawUp(t, answerPath)
	tp, base := frontReviewProxy(t, up.port)
	hostHdr := "Host: " + strings.TrimPrefix(base, "http://") + "\r\n"
	smuggledAllowed := "GET " + base + "/smuggled HTTP/1.1\r\n" + hostHdr + "\r\n"
	smuggledOrigin := "GET /smuggled HTTP/1.1\r\n" + hostHdr + "\r\n"
	smuggledDenied := "GET http://" + frontDeniedHost + "/smuggled HTTP/1.1\r\nHost: " + frontDeniedHost + "\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		// first is the status of the first answer, 0 for none expected.
		first int
	}{
		{"Content-Length and chunked", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Content-Length: " + strconv.Itoa(5+len(smuggledOrigin)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledOrigin, 200},
		{"chunked and Content-Length", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" +
			strconv.FormatInt(int64(len(smuggledOrigin)), 16) + "\r\n" + smuggledOrigin + "\r\n0\r\n\r\n", 200},
		{"two Content-Lengths", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Content-Length: 0\r\nContent-Length: " +
			strconv.Itoa(len(smuggledAllowed)) + "\r\n\r\n" + smuggledAllowed, 400},
		{"Content-Length list", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Content-Length: 0, " + strconv.Itoa(len(smuggledAllowed)) + "\r\n\r\n" + smuggledAllowed, 400},
		{"Content-Length with a sign", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Content-Length: +0\r\n\r\n" + smuggledAllowed, 400},
		{"folded Content-Length", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Content-Length: 0\r\n 5\r\n\r\n" + smuggledAllowed, 400},
		{"space before the colon", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n" + smuggledAllowed, 400},
		{"two transfer codings", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggledAllowed, 501},
		{"chunked twice", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledAllowed, 400},
		{"bad chunk size", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + smuggledOrigin, 0},
		{"chunk size overflow", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n" + smuggledOrigin, 0},
		{"chunk extension with a line break", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\n\r\n3;x=\"a\r\n" + smuggledOrigin + "\"\r\nabc\r\n0\r\n\r\n", 0},
		{"bare CR in a header", "GET " + base + "/one HTTP/1.1\r\n" + hostHdr + "X: a\rContent-Length: 40\r\n\r\n" + smuggledOrigin, 400},
		{"trailer then a request", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n1\r\na\r\n0\r\nX-T: " +
			"v\r\n\r\n" + smuggledDenied, 200},
		{"pipelined past a refusal", "GET " + base + "/a HTTP/1.1\r\n" + hostHdr + "\r\n" + smuggledDenied + "GET " + base + "/b HTTP/1.1\r\n" + hostHdr + "\r\n", 200},
		{"origin form pipelined", "GET " + base + "/a HTTP/1.1\r\n" + hostHdr + "\r\n" + smuggledOrigin, 200},
		{"Expect with the body at once", "POST " + base + "/one HTTP/1.1\r\n" + hostHdr + "Expect: 100-continue\r\nContent-Length: " +
			strconv.Itoa(len(smuggledOrigin)) + "\r\n\r\n" + smuggledOrigin, 100},
		{"refused Expect with the body at once", "POST " + smuggledDenied[4:strings.Index(smuggledDenied, " HTTP")] + " HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: " +
			strconv.Itoa(len(smuggledAllowed)) + "\r\n\r\n" + smuggledAllowed, 403},
		{"refused CONNECT with a body", "CONNECT " + frontDeniedHost + ":443 HTTP/1.1\r\nContent-Length: " + strconv.Itoa(len(smuggledAllowed)) + "\r\n\r\n" + smuggledAllowed, 403},
		{"refused CONNECT with a chunked body", "CONNECT " + frontDeniedHost + ":443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(smuggledAllowed)), 16) + "\r\n" + smuggledAllowed + "\r\n0\r\n\r\n", 403},
		{"HTTP/1.0 keep-alive", "GET " + base + "/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + smuggledDenied, 200},
		{"HTTP/0.9", "GET " + base + "/smuggled\r\n\r\n", 400},
		{"LF line ends", "POST " + base + "/one HTTP/1.1\nContent-Length: 0\nTransfer-Encoding: chunked\n\n0\n\n" + smuggledDenied, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			answers := exchangeRaw(t, tp, tc.raw)
			for _, a := range answers {
				if strings.Contains(a, "smuggled") {
					t.Errorf("an answer carries the smuggled request's: %q", a)
				}
			}
			if tc.first != 0 && (len(answers) == 0 || !strings.HasPrefix(answers[0], strconv.Itoa(tc.first)+" ")) {
				t.Errorf("answers %q; want the first to be %d", answers, tc.first)
			}
			for _, r := range up.requests()[before:] {
				if strings.HasPrefix(strings.SplitN(r, " ", 3)[1], "/smuggled") {
					t.Errorf("the destination parsed a request the proxy never decided: %q (answers %q)", r, answers)
				}
			}
		})
	}
}

// TestReviewFrontHeldAuthority: the destination of an absolute-URI
// request is its URI's host and port, whatever userinfo, Host header or
// port spelling comes with it; a port out of range or malformed and an
// IP literal are refused before anything is dialled.
func TestReviewFrontHeldAuthority(t *testing.T) {
	seen := make(chan string, 16)
	up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool {
		seen <- req.Host
		return answerPath(u, conn, n, req, body, c, br)
	})
	tp, _ := frontReviewProxy(t, up.port)
	port := strconv.Itoa(up.port)
	// Each is refused (400 or 403) before anything is dialled.
	for _, tc := range []struct {
		target string
		status int
	}{
		{"http://" + frontUpHost + ":" + port + "@" + frontDeniedHost + ":" + port + "/", 403},
		{"http://user:pw@" + frontDeniedHost + ":" + port + "/", 403},
		{"http://" + frontDeniedHost + ":" + port + "#@" + frontUpHost + ":" + port + "/", 403},
		{"http://[::1]:" + port + "/", 403},
		{"http://[::ffff:127.0.0.1]:" + port + "/", 403},
		{"http://127.0.0.1:" + port + "/", 403},
		{"http://2130706433:" + port + "/", 403},
		{"http://" + frontUpHost + ":0/", 403},
		{"http://" + frontUpHost + ":65536/", 403},
		{"http://" + frontUpHost + ":" + strconv.Itoa(up.port+65536) + "/", 403},
		{"http://" + frontUpHost + ":+" + port + "/", 400},
		{"http://" + frontUpHost + ":-" + port + "/", 400},
		{"http://" + frontUpHost + ":99999999999999999999999/", 400},
		{"http://" + frontUpHost + "%00.evil:" + port + "/", 400},
		{"http://" + frontUpHost + "\\@" + frontDeniedHost + ":" + port + "/", 400},
	} {
		resp, body := tp.rawRequest(t, "GET "+tc.target+" HTTP/1.1\r\nHost: "+frontUpHost+":"+port+"\r\n\r\n")
		if resp.StatusCode != tc.status && (resp.StatusCode != 400 && resp.StatusCode != 403) {
			t.Errorf("GET %s: %d %q; want %d", tc.target, resp.StatusCode, body, tc.status)
		} else if resp.StatusCode != tc.status {
			t.Logf("GET %s: %d, refused otherwise than expected (%d)", tc.target, resp.StatusCode, tc.status)
		}
	}
	if n := up.connCount(); n != 0 {
		t.Errorf("the destination got %d connections from refused requests", n)
	}
	// Allowed, with a Host header for another name: the destination sees
	// the URI's authority.
	resp, body := tp.rawRequest(t, "GET http://user:pw@"+frontUpHost+":"+port+"/ok HTTP/1.1\r\nHost: "+frontDeniedHost+"\r\n\r\n")
	if resp.StatusCode != 200 || body != "/ok" {
		t.Fatalf("allowed with userinfo: %d %q", resp.StatusCode, body)
	}
	if h := <-seen; h != frontUpHost+":"+port {
		t.Errorf("the destination saw Host %q; want %q", h, frontUpHost+":"+port)
	}
}

// TestReviewFrontHeldUpgradeTricks: a 101 the client did not ask for, or
// for another protocol than it asked for, is refused with a 502 and the
// client's connection ends; nothing the destination sent behind the 101
// reaches the client, and the refused connection is not kept.
func TestReviewFrontHeldUpgradeTricks(t *testing.T) {
	const behind = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool {
		if req.URL.Path == "/normal" {
			return answerPath(u, conn, n, req, body, c, br)
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"+behind)
		return true
	})
	tp, base := frontReviewProxy(t, up.port)
	for _, extra := range []string{"", "Connection: Upgrade\r\nUpgrade: websocket\r\n"} {
		answers := exchangeRaw(t, tp, "GET "+base+"/switch HTTP/1.1\r\nHost: x\r\n"+extra+"\r\nGET "+base+"/normal HTTP/1.1\r\nHost: x\r\n\r\n")
		if len(answers) != 1 || !strings.HasPrefix(answers[0], "502 ") {
			t.Errorf("an unasked or other 101 (%q): answers %q; want one 502 and the connection closed", extra, answers)
		}
	}
	// The next request, from another client, is not answered from the
	// refused connection.
	resp, body := tp.rawRequest(t, "GET "+base+"/normal HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || body != "/normal" {
		t.Errorf("after refused switches: %d %q", resp.StatusCode, body)
	}
}

// TestReviewFrontHeldInterimFlood: a destination that sends many interim
// answers before its final one neither hangs the request nor makes the
// proxy invent any: the client gets at most the interim answers sent,
// then the final answer (or a 502, or the end of its connection, should
// the proxy cap interim answers as net/http's Transport does).
func TestReviewFrontHeldInterimFlood(t *testing.T) {
	const interim = 2000
	up := startRawUp(t, func(_ *rawUp, _, _ int, _ *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		w := bufio.NewWriter(c)
		for range interim {
			io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
		}
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		w.Flush()
		return true
	})
	tp, base := frontReviewProxy(t, up.port)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: x\r\n\r\n", base)
	br := bufio.NewReader(c)
	n := 0
	for {
		resp, err := http.ReadResponse(br, nil)
		if isTimeout(err) {
			t.Fatalf("no final answer within 20 s, after %d interim answers", n)
		}
		if err != nil {
			break // the proxy gave up on the destination and closed
		}
		if resp.StatusCode == http.StatusEarlyHints {
			n++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		if !(resp.StatusCode == 200 && string(b) == "final") && resp.StatusCode != http.StatusBadGateway {
			t.Errorf("final answer %d %q", resp.StatusCode, b)
		}
		break
	}
	if n > interim {
		t.Errorf("%d interim answers reached the client; the destination sent %d", n, interim)
	}
}

// TestReviewFrontHeldCutShortNotReused: an upstream connection whose
// answer the client did not take whole (it closed its connection in the
// middle of the body) is not kept: the next request, with a body, goes
// over a new connection and gets its own answer, not the rest of the
// first one.
func TestReviewFrontHeldCutShortNotReused(t *testing.T) {
	// More than loopback's socket buffers take, so that the proxy cannot
	// have sent the whole answer before the client's close reaches it (a
	// connection read to its end would rightly be kept).
	big := strings.Repeat("x", 64<<20)
	up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool {
		if req.URL.Path == "/big" {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
			return true
		}
		return answerPath(u, conn, n, req, body, c, br)
	})
	tp, base := frontReviewProxy(t, up.port)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s/big HTTP/1.1\r\nHost: x\r\n\r\n", base)
	io.ReadFull(c, make([]byte, 1000))
	c.Close()
	tp.log.waitEvents(t, 1)
	resp, body := tp.rawRequest(t, "POST "+base+"/after HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata")
	if resp.StatusCode != 200 || body != "/after" {
		t.Errorf("the request after a cut-short answer: %d %q", resp.StatusCode, body[:min(len(body), 64)])
	}
	if n := up.connCount(); n != 2 {
		t.Errorf("%d upstream connections; want 2 (the cut-short one dropped)", n)
	}
}

// TestReviewFrontHeldRulesChangeKeptConnection: a connection kept under
// one rule set never carries a request decided under another: after
// SetRules (even with the same rules) or AddRule the next request, on the
// same client connection, dials anew; once the rule loses allow_private,
// the kept connection to loopback is not used and the cached loopback
// answer is refused; and a request in flight across SetRules does not put
// its connection back.
func TestReviewFrontHeldRulesChangeKeptConnection(t *testing.T) {
	release := make(chan struct{})
	up := startRawUp(t, func(u *rawUp, conn, n int, req *http.Request, body []byte, c net.Conn, br *bufio.Reader) bool {
		if req.URL.Path == "/slow" {
			<-release
		}
		return answerPath(u, conn, n, req, body, c, br)
	})
	tp, base := frontReviewProxy(t, up.port)
	rule := plan.Rule{Host: frontUpHost, Ports: []int{up.port}, AllowPrivate: true, From: "//review:1:1"}
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	get := func(path string) (int, string) {
		t.Helper()
		fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: x\r\n\r\n", base, path)
		resp, body := readResponse(t, br, "GET")
		return resp.StatusCode, body
	}
	get("/1")
	get("/2")
	if n := up.connCount(); n != 1 {
		t.Fatalf("%d upstream connections for two requests in a row; want the first kept", n)
	}
	if err := tp.SetRules([]plan.Rule{rule}); err != nil {
		t.Fatal(err)
	}
	get("/3")
	if n := up.connCount(); n != 2 {
		t.Errorf("after SetRules: %d upstream connections; want a new one (2)", n)
	}
	if err := tp.AddRule(plan.Rule{Host: "other.example.com", Ports: []int{80}}); err != nil {
		t.Fatal(err)
	}
	get("/4")
	if n := up.connCount(); n != 3 {
		t.Errorf("after AddRule: %d upstream connections; want a new one (3)", n)
	}
	// A rule for the same name on another port, without allow_private:
	// the cached loopback answer is refused there.
	if err := tp.AddRule(plan.Rule{Host: frontUpHost, Ports: []int{up.port + 1}}); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET http://%s:%d/x HTTP/1.1\r\nHost: x\r\n\r\n", frontUpHost, up.port+1)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cached loopback answer under a rule without allow_private: %d; want 403", resp.StatusCode)
	}
	get("/5")
	nBefore := up.connCount()
	// Without allow_private: refused, the kept loopback connection unused.
	noPrivate := rule
	noPrivate.AllowPrivate = false
	if err := tp.SetRules([]plan.Rule{noPrivate}); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/6"); code != http.StatusForbidden {
		t.Errorf("after allow_private was dropped: %d %q; want 403", code, body)
	}
	if n := up.connCount(); n != nBefore {
		t.Errorf("a refused request dialled (%d connections, was %d)", n, nBefore)
	}
	for _, r := range up.requests() {
		if strings.Contains(r, "/6") {
			t.Errorf("the destination got %q after allow_private was dropped", r)
		}
	}
	// A request in flight across SetRules: its connection is dropped.
	if err := tp.SetRules([]plan.Rule{rule}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc, err := tp.dial()
		if err != nil {
			return
		}
		defer sc.Close()
		sc.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(sc, "GET %s/slow HTTP/1.1\r\nHost: x\r\n\r\n", base)
		if resp, err := http.ReadResponse(bufio.NewReader(sc), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !slicesHasSuffix(up.requests(), "/slow") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := tp.SetRules([]plan.Rule{rule}); err != nil {
		t.Fatal(err)
	}
	nBefore = up.connCount()
	close(release)
	<-done
	time.Sleep(20 * time.Millisecond)
	get("/7")
	if n := up.connCount(); n != nBefore+1 {
		t.Errorf("the request after one in flight across SetRules: %d connections, was %d; want a new one", n, nBefore)
	}
}

func slicesHasSuffix(reqs []string, path string) bool {
	for _, r := range reqs {
		if strings.Contains(r, " "+path+" ") {
			return true
		}
	}
	return false
}

// TestReviewFrontHeldHeaderLimit: a request of exactly the header limit
// (1 MiB plus 4096 bytes, line and headers) is served; one byte more is
// refused with 431 and the connection ends.
func TestReviewFrontHeldHeaderLimit(t *testing.T) {
	up := startRawUp(t, answerPath)
	tp, base := frontReviewProxy(t, up.port)
	build := func(size int) string {
		head := "GET " + base + "/limit HTTP/1.1\r\nX: "
		tail := "\r\n\r\n"
		return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
	}
	if got := exchangeRaw(t, tp, build(maxHeaderBytes)); len(got) == 0 || got[0] != "200 /limit" {
		t.Errorf("a request of exactly %d header bytes: %q; want it served", maxHeaderBytes, got)
	}
	if got := exchangeRaw(t, tp, build(maxHeaderBytes+1)); len(got) != 1 || !strings.HasPrefix(got[0], "431 ") {
		t.Errorf("a request of %d header bytes: %q; want 431", maxHeaderBytes+1, got)
	}
}

// TestReviewFrontHeldSlowloris: a client that drips its headers, a byte
// well within any per-read timeout, is closed at the header timeout
// counted from the request's start; idle and dripping connections by the
// hundred all end, and their goroutines with them.
func TestReviewFrontHeldSlowloris(t *testing.T) {
	// Restored after the proxy's Close (cleanups run last first), whose
	// sweep reads it until then.
	old := readHeaderTimeout
	t.Cleanup(func() { readHeaderTimeout = old })
	readHeaderTimeout = 300 * time.Millisecond
	up := startRawUp(t, answerPath)
	tp, base := frontReviewProxy(t, up.port, func(o *Options) { o.IdleTimeout = 400 * time.Millisecond })
	baseline := runtime.NumGoroutine()

	drip, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer drip.Close()
	start := time.Now()
	req := "GET " + base + "/ HTTP/1.1\r\nX: " + strings.Repeat("a", 1000)
	closed := false
	for i := 0; i < len(req) && time.Since(start) < 5*time.Second; i++ {
		if _, err := drip.Write([]byte{req[i]}); err != nil {
			closed = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !closed {
		drip.SetReadDeadline(time.Now().Add(time.Second))
		_, err := drip.Read(make([]byte, 1))
		closed = err != nil && !isTimeout(err)
	}
	if !closed {
		t.Errorf("a header dripped a byte every 20 ms was still open after %s (header timeout 300 ms)", time.Since(start))
	}

	var conns []net.Conn
	for i := range 200 {
		c, err := tp.dial()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			io.WriteString(c, "GET "+base+"/ HTTP/1.1\r\n") // stalls in its headers
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
			t.Fatal("an idle or stalled client was still open 5 s after its timeout")
		}
	}
	for time.Now().Before(deadline) && runtime.NumGoroutine() > baseline+10 {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+10 {
		t.Errorf("%d goroutines after every client was closed; %d before", n, baseline)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReviewFrontHeldShutdownStreamingBody: Shutdown while a client
// streams a request body it never finishes waits only until its context
// ends, then closes the client and the destination's connection, and the
// proxy keeps no upstream connection.
func TestReviewFrontHeldShutdownStreamingBody(t *testing.T) {
	upClosed := make(chan struct{})
	up := startRawUpStreaming(t, upClosed)
	tp, base := frontReviewProxy(t, up)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n", base)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- tp.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Shutdown returned nil with a request body still streaming")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Shutdown took %s with a 300 ms context", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hung on a streaming request body")
	}
	select {
	case <-upClosed:
	case <-time.After(5 * time.Second):
		t.Error("the destination's connection stayed open after Shutdown")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Error("the client's connection stayed open after Shutdown")
	}
	ev := tp.log.waitEvents(t, 1)
	if len(ev) != 1 {
		t.Errorf("log: %+v", ev)
	}
}

// startRawUpStreaming is a destination that reads a request body forever
// and closes upClosed when the proxy closes its connection.
func startRawUpStreaming(t *testing.T, upClosed chan struct{}) int {
	t.Helper()
	return echoServer(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		close(upClosed)
	})
}

// TestReviewFrontHeldEarlyAnswerNotKept: a destination that answers an
// upload before reading it, without closing, leaves the body's rest on
// the connection: the proxy must end the client's connection (its body
// was not read) and must not keep the upstream one, on which the rest of
// the body would be taken for the next request.
func TestReviewFrontHeldEarlyAnswerNotKept(t *testing.T) {
	var conns atomic.Int32
	port := echoServer(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/upload" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
				io.Copy(io.Discard, br) // never parses another request
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
		}
	})
	tp, base := frontReviewProxy(t, port)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST %s/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", base, 64<<20)
	go c.Write(make([]byte, 256<<10))
	br := bufio.NewReader(c)
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != 200 || body != "early" || !resp.Close {
		t.Errorf("early answer: %d %q close %v; want 200 \"early\" and the connection closed", resp.StatusCode, body, resp.Close)
	}
	tp.log.waitEvents(t, 1)
	resp, body = methodRequest(t, tp, "GET", base+"/next")
	if resp.StatusCode != 200 || body != "/next" {
		t.Errorf("the request after an early answer: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d upstream connections; want 2 (the early-answered one dropped)", n)
	}
}

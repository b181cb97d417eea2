package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// fakeResolver answers from a map and says "no such host" otherwise.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if !strings.HasSuffix(host, ".") {
		return nil, fmt.Errorf("resolver got %q, which is not fully qualified", host)
	}
	if a, ok := f[strings.TrimSuffix(host, ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

// syncBuffer is a log destination tests can read while the proxy writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) events(t testing.TB) []Event {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, line := range strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e Event
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// lastEvent waits for the log to hold n events and returns the last.
func (s *syncBuffer) waitEvents(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev := s.events(t)
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("log holds %d events, want %d: %+v", len(ev), n, ev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testProxy is a running proxy and how to reach it.
type testProxy struct {
	*Proxy
	log  *syncBuffer
	dial func() (net.Conn, error)
	// client is an HTTP client that uses the proxy for everything.
	client *http.Client
}

// startProxy runs a proxy on a fresh listener of network ("tcp" or "unix").
func startProxy(t testing.TB, network string, opts Options) *testProxy {
	t.Helper()
	tp := &testProxy{log: &syncBuffer{}}
	if opts.Log == nil {
		opts.Log = tp.log
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tp.Proxy = p
	var ln net.Listener
	if network == "unix" {
		ln, err = net.Listen("unix", filepath.Join(t.TempDir(), "egress.sock"))
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr()
	tp.dial = func() (net.Conn, error) { return net.Dial(addr.Network(), addr.String()) }
	tr := &http.Transport{
		// Every connection of the client goes to the proxy.
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy.test:3128"}),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, addr.Network(), addr.String())
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	tp.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return tp
}

// trustServer makes the proxy client trust srv's certificate.
func (tp *testProxy) trustServer(srv *httptest.Server) {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tp.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
}

func serverPort(t *testing.T, srv *httptest.Server) int {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

// rawRequest sends one raw request on a new proxy connection and returns
// the response with its body read.
func (tp *testProxy) rawRequest(t *testing.T, req string) (*http.Response, string) {
	t.Helper()
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.Path)
}

func TestAllowedEndToEnd(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			plain := httptest.NewServer(http.HandlerFunc(hello))
			defer plain.Close()
			secure := httptest.NewTLSServer(http.HandlerFunc(hello))
			defer secure.Close()
			tp := startProxy(t, network, Options{
				Resolver: fakeResolver{"example.com": loopback, "plain.example.org": loopback},
				Rules: []plan.Rule{
					{Host: "example.com", Ports: []int{serverPort(t, secure)}, AllowPrivate: true, From: "//bottle.star:1:1"},
					{Host: "plain.example.org", Ports: []int{serverPort(t, plain)}, AllowPrivate: true, From: "//bottle.star:2:1"},
				},
			})
			tp.trustServer(secure)

			code, body := get(t, tp.client, fmt.Sprintf("https://example.com:%d/tls", serverPort(t, secure)))
			if code != 200 || body != "hello GET /tls" {
				t.Errorf("CONNECT: %d %q", code, body)
			}
			code, body = get(t, tp.client, fmt.Sprintf("http://PLAIN.example.org.:%d/plain", serverPort(t, plain)))
			if code != 200 || body != "hello GET /plain" {
				t.Errorf("absolute URI: %d %q", code, body)
			}
			tp.client.Transport.(*http.Transport).CloseIdleConnections()

			ev := tp.log.waitEvents(t, 2)
			byMethod := map[string]Event{}
			for _, e := range ev {
				byMethod[e.Method] = e
			}
			c := byMethod["CONNECT"]
			if !c.Allowed || c.Host != "example.com" || c.Rule != "example.com" || c.RuleFrom != "//bottle.star:1:1" ||
				c.Status != 200 || c.BytesUp == 0 || c.BytesDown == 0 || !strings.HasPrefix(c.Addr, "127.0.0.1:") || c.Time.IsZero() {
				t.Errorf("CONNECT log line: %+v", c)
			}
			g := byMethod["GET"]
			if !g.Allowed || g.Host != "plain.example.org" || g.RuleFrom != "//bottle.star:2:1" || g.Status != 200 ||
				g.BytesDown != int64(len("hello GET /plain")) || g.Reason != ReasonAllowed {
				t.Errorf("GET log line: %+v", g)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.org": loopback, "other.example.org": loopback},
		Rules:    []plan.Rule{{Host: "example.org", Ports: []int{port}, AllowPrivate: true, From: "//p.star:1:1"}},
	})
	for _, tc := range []struct {
		name, target string
		body         string
	}{
		{"host", fmt.Sprintf("other.example.org:%d", port),
			fmt.Sprintf("bottle: egress to other.example.org:%d denied: a rule for a parent name does not cover its subdomains: example.org\n"+
				"to allow it, add to the profile: allow(\"other.example.org\", ports = [%d])\n", port, port)},
		{"unknown host", "nothing.example.net:443",
			"bottle: egress to nothing.example.net:443 denied: no rule allows this host\n" +
				"to allow it, add to the profile: allow(\"nothing.example.net\")\n"},
		{"port", "example.org:8443",
			fmt.Sprintf("bottle: egress to example.org:8443 denied: this host is allowed only on other ports: example.org allows port %d\n"+
				"to allow it, add to the profile: allow(\"example.org\", ports = [8443])\n", port)},
		{"ip literal", fmt.Sprintf("127.0.0.1:%d", port),
			fmt.Sprintf("bottle: egress to 127.0.0.1:%d denied: IP literals are never allowed; use a host name\n", port)},
		{"ipv6 literal", "[::1]:443",
			"bottle: egress to [::1]:443 denied: IP literals are never allowed; use a host name\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tp.rawRequest(t, "CONNECT "+tc.target+" HTTP/1.1\r\nHost: "+tc.target+"\r\n\r\n")
			if resp.StatusCode != 403 || body != tc.body || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("CONNECT %s: %d %q\nwant 403 %q", tc.target, resp.StatusCode, body, tc.body)
			}
			resp, body = tp.rawRequest(t, "GET http://"+tc.target+"/x HTTP/1.1\r\nHost: "+tc.target+"\r\n\r\n")
			if resp.StatusCode != 403 || body != tc.body {
				t.Errorf("GET http://%s/x: %d %q\nwant 403 %q", tc.target, resp.StatusCode, body, tc.body)
			}
		})
	}
	// The HTTP client sees the same refusal for a plain request.
	code, body := get(t, tp.client, "http://nothing.example.net/")
	if code != 403 || !strings.Contains(body, `allow("nothing.example.net", ports = [80])`) {
		t.Errorf("client GET: %d %q", code, body)
	}
	for _, e := range tp.log.waitEvents(t, 11) {
		if e.Allowed || e.Status != 403 || e.Reason == "" || e.Host == "" || e.Port == 0 {
			t.Errorf("refusal log line: %+v", e)
		}
	}
}

func TestPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	resolver := fakeResolver{
		"db.example.com":    loopback,
		"mixed.example.com": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("::ffff:169.254.169.254")},
	}
	tp := startProxy(t, "tcp", Options{
		Resolver: resolver,
		Rules: []plan.Rule{
			{Host: "db.example.com", Ports: []int{port}, From: "//p.star:1:1"},
			{Host: "mixed.example.com", Ports: []int{80}, From: "//p.star:2:1"},
		},
	})
	want := fmt.Sprintf("bottle: egress to db.example.com:%d denied: the host resolves to a non-public address: 127.0.0.1 (loopback), which is refused unless its rule sets allow_private\n"+
		"to allow it, add to the profile: allow(\"db.example.com\", ports = [%d], allow_private = True)\n", port, port)
	target := fmt.Sprintf("db.example.com:%d", port)
	resp, body := tp.rawRequest(t, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if resp.StatusCode != 403 || body != want {
		t.Errorf("CONNECT: %d %q\nwant %q", resp.StatusCode, body, want)
	}
	code, body := get(t, tp.client, "http://"+target+"/")
	if code != 403 || body != want {
		t.Errorf("GET: %d %q\nwant %q", code, body, want)
	}
	code, body = get(t, tp.client, "http://mixed.example.com/")
	if code != 403 || !strings.Contains(body, "169.254.169.254 (link-local (cloud metadata))") {
		t.Errorf("mixed answers: %d %q", code, body)
	}
	ev := tp.log.waitEvents(t, 3)
	if e := ev[0]; e.Allowed || e.Rule != "db.example.com" || e.RuleFrom != "//p.star:1:1" || !strings.Contains(e.Reason, "loopback") {
		t.Errorf("log line: %+v", e)
	}

	if err := tp.SetRules([]plan.Rule{{Host: "db.example.com", Ports: []int{port}, AllowPrivate: true, From: "//p.star:1:1"}}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, tp.client, "http://"+target+"/ok"); code != 200 || body != "hello GET /ok" {
		t.Errorf("with allow_private: %d %q", code, body)
	}
}

func TestLookupFailure(t *testing.T) {
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{},
		Rules:    []plan.Rule{{Host: "gone.example.com", Ports: []int{443}}},
	})
	resp, body := tp.rawRequest(t, "CONNECT gone.example.com:443 HTTP/1.1\r\nHost: gone.example.com:443\r\n\r\n")
	if resp.StatusCode != 502 || !strings.HasPrefix(body, "bottle: egress to gone.example.com:443 failed: cannot resolve the host") {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
	e := tp.log.waitEvents(t, 1)[0]
	if !e.Allowed || e.Status != 502 || e.Error == "" {
		t.Errorf("log line: %+v", e)
	}
}

func TestWildcard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback, "a.example.com": loopback, "a.b.example.com": loopback},
		Rules:    []plan.Rule{{Host: "*.example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	for host, want := range map[string]int{"a.example.com": 200, "A.B.Example.Com": 200, "example.com": 403, "badexample.com": 403} {
		code, body := get(t, tp.client, fmt.Sprintf("http://%s:%d/", host, port))
		if code != want {
			t.Errorf("%s: %d %q, want %d", host, code, body, want)
		}
	}
}

func TestNotAProxyRequest(t *testing.T) {
	tp := startProxy(t, "tcp", Options{Resolver: fakeResolver{}})
	resp, body := tp.rawRequest(t, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if resp.StatusCode != 400 || body != notProxyRequest {
		t.Errorf("origin-form request: %d %q", resp.StatusCode, body)
	}
	resp, body = tp.rawRequest(t, "GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "use CONNECT") {
		t.Errorf("https absolute URI: %d %q", resp.StatusCode, body)
	}
	resp, body = tp.rawRequest(t, "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "CONNECT needs host:port") {
		t.Errorf("CONNECT without port: %d %q", resp.StatusCode, body)
	}
}

func TestHopByHopHeadersAreDropped(t *testing.T) {
	seen := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	target := fmt.Sprintf("example.com:%d", port)
	resp, body := tp.rawRequest(t, "GET http://"+target+"/ HTTP/1.1\r\nHost: evil.example.net\r\n"+
		"Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\nProxy-Connection: keep-alive\r\n"+
		"Connection: X-Private, close\r\nX-Private: token\r\nX-Kept: yes\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	h := <-seen
	for _, name := range []string{"Proxy-Authorization", "Proxy-Connection", "X-Private", "X-Forwarded-For"} {
		if v := h.Get(name); v != "" {
			t.Errorf("upstream saw %s: %q", name, v)
		}
	}
	if h.Get("X-Kept") != "yes" || h.Get("Host") != target {
		t.Errorf("upstream headers: %v", h)
	}
	if resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client saw the upstream's Keep-Alive header")
	}
}

func TestKeepAliveRequestsAreDecidedSeparately(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, tc := range []struct {
		target string
		code   int
	}{
		{fmt.Sprintf("example.com:%d", port), 200},
		{"denied.example.com", 403},
		{fmt.Sprintf("example.com:%d", port), 200},
	} {
		fmt.Fprintf(c, "GET http://%s/%d HTTP/1.1\r\nHost: %s\r\n\r\n", tc.target, i, tc.target)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("request %d to %s: %d, want %d", i, tc.target, resp.StatusCode, tc.code)
		}
	}
}

// echoServer accepts TCP connections and runs handle on each.
func echoServer(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func echo(c net.Conn) { io.Copy(c, c) }

// openTunnel sends CONNECT for target and returns the tunnel.
func (tp *testProxy) openTunnel(t *testing.T, target string) net.Conn {
	t.Helper()
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	// Read the answer byte by byte so no tunnel data is buffered away.
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("CONNECT %s: %v after %q", target, err, head)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		t.Fatalf("CONNECT %s: %q", target, head)
	}
	return c
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v; want %q", got, err, msg)
	}
}

func TestRulesChangeKeepsOpenTunnels(t *testing.T) {
	port := echoServer(t, echo)
	tp := startProxy(t, "unix", Options{
		Resolver: fakeResolver{"one.example.com": loopback, "two.example.com": loopback},
		Rules:    []plan.Rule{{Host: "one.example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	one := fmt.Sprintf("one.example.com:%d", port)
	two := fmt.Sprintf("two.example.com:%d", port)
	tun := tp.openTunnel(t, one)
	defer tun.Close()
	roundTrip(t, tun, "before")

	if resp, _ := tp.rawRequest(t, "CONNECT "+two+" HTTP/1.1\r\nHost: "+two+"\r\n\r\n"); resp.StatusCode != 403 {
		t.Fatalf("two before AddRule: %d", resp.StatusCode)
	}
	if err := tp.AddRule(plan.Rule{Host: "two.example.com", Ports: []int{port}, AllowPrivate: true, From: "supervise"}); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tun, "after add")
	tun2 := tp.openTunnel(t, two)
	roundTrip(t, tun2, "new host")
	tun2.Close()

	// Replacing the rules so that the open tunnel's host is no longer
	// allowed keeps the tunnel, and refuses new ones.
	if err := tp.SetRules([]plan.Rule{{Host: "two.example.com", Ports: []int{port}, AllowPrivate: true}}); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tun, "after set")
	if resp, _ := tp.rawRequest(t, "CONNECT "+one+" HTTP/1.1\r\nHost: "+one+"\r\n\r\n"); resp.StatusCode != 403 {
		t.Errorf("one after SetRules: %d", resp.StatusCode)
	}
	if err := tp.SetRules([]plan.Rule{{Host: "Bad.example.com", Ports: []int{1}}}); err == nil {
		t.Error("SetRules accepted a non-canonical host")
	}
	if got := tp.Rules(); len(got) != 1 || got[0].Host != "two.example.com" {
		t.Errorf("rules after a failed SetRules: %+v", got)
	}
}

func TestHalfClose(t *testing.T) {
	// The server reads everything, then answers with its length.
	port := echoServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	for _, counted := range []bool{false, true} {
		t.Run(fmt.Sprintf("counted=%v", counted), func(t *testing.T) {
			setCounted(t, counted)
			tp := startProxy(t, "tcp", Options{
				Resolver: fakeResolver{"example.com": loopback},
				Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
			})
			c := tp.openTunnel(t, fmt.Sprintf("example.com:%d", port))
			defer c.Close()
			io.WriteString(c, strings.Repeat("x", 100000))
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "got 100000 bytes" {
				t.Fatalf("%q, %v", b, err)
			}
			e := tp.log.waitEvents(t, 1)[0]
			if e.BytesUp != 100000 || e.BytesDown != int64(len("got 100000 bytes")) || e.Error != "" {
				t.Errorf("log line: %+v", e)
			}
		})
	}
}

// setCounted selects the portable counted copy for the test's duration.
func setCounted(t *testing.T, counted bool) {
	old := forceCountedCopy
	forceCountedCopy = counted
	t.Cleanup(func() { forceCountedCopy = old })
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	// The server sends a byte every idle/3 for 3*idle, then falls silent.
	port := echoServer(t, func(c net.Conn) {
		for range 9 {
			if _, err := c.Write([]byte{'.'}); err != nil {
				return
			}
			time.Sleep(idle / 3)
		}
		io.Copy(io.Discard, c)
	})
	for _, counted := range []bool{false, true} {
		t.Run(fmt.Sprintf("counted=%v", counted), func(t *testing.T) {
			setCounted(t, counted)
			tp := startProxy(t, "tcp", Options{
				Resolver:    fakeResolver{"example.com": loopback},
				Rules:       []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
				IdleTimeout: idle,
			})
			c := tp.openTunnel(t, fmt.Sprintf("example.com:%d", port))
			defer c.Close()
			start := time.Now()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			// Only the server talks: one direction's traffic keeps the
			// tunnel alive for well past the idle timeout.
			b, err := io.ReadAll(c)
			lasted := time.Since(start)
			if string(b) != "........." {
				t.Errorf("got %q, %v; the tunnel was cut while the server was sending", b, err)
			}
			if lasted < 3*idle || lasted > 3*idle+idle+time.Second {
				t.Errorf("tunnel lasted %v; want about %v", lasted, 4*idle)
			}
			e := tp.log.waitEvents(t, 1)[0]
			if !strings.Contains(e.Error, "without traffic") {
				t.Errorf("log line: %+v", e)
			}
		})
	}
}

func TestCloseEndsTunnels(t *testing.T) {
	port := echoServer(t, echo)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	c := tp.openTunnel(t, fmt.Sprintf("example.com:%d", port))
	defer c.Close()
	roundTrip(t, c, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tp.Shutdown(ctx); err == nil {
		t.Error("Shutdown with an open tunnel returned nil before its deadline")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Shutdown: %v, want EOF", err)
	}
}

func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"CONNECT allowed.example.com:PORT HTTP/1.1\r\nHost: allowed.example.com:PORT\r\n\r\nhello",
		"GET http://allowed.example.com:PORT/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://denied.example.com/ HTTP/1.1\r\n\r\n",
		"POST http://allowed.example.com:PORT/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"CONNECT :0 HTTP/1.0\r\n\r\n",
		"\x00\xff garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	p, err := New(Options{
		Resolver:    fakeResolver{"allowed.example.com": loopback},
		Rules:       []plan.Rule{{Host: "allowed.example.com", Ports: []int{port}, AllowPrivate: true}},
		IdleTimeout: time.Second,
		ErrorLog:    nil,
		Log:         io.Discard,
	})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go p.Serve(ln)
	defer p.Close()
	f.Fuzz(func(t *testing.T, req []byte) {
		req = bytes.ReplaceAll(req, []byte("PORT"), []byte(u.Port()))
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		go func() {
			c.Write(req)
			c.(*net.TCPConn).CloseWrite()
		}()
		// Read until the proxy is done answering; it must neither panic
		// nor hang.
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("reading the answer to %q: %v", req, err)
		}
	})
}

// reset forgets what was logged so far.
func (s *syncBuffer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

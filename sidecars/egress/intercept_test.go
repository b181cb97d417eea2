package egress

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/bottle-dev/bottle/plan"
)

// recorded is what the test upstream received.
type recorded struct {
	Method, Host, Path string
	Header             http.Header
	Body               string
	Proto              string
}

// upstream is a TLS destination on loopback, with its own CA, that serves
// every *.test name and records what arrives.
type upstream struct {
	port  int
	roots *x509.CertPool
	mu    sync.Mutex
	got   []recorded
	// sseRelease lets the /sse handler send its second event.
	sseRelease chan struct{}
	// gitAuth is the Authorization /git/ wants; gitRoot its repositories.
	gitAuth, gitRoot string
}

func (u *upstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.got...)
}

func (u *upstream) last(t testing.TB) recorded {
	t.Helper()
	got := u.requests()
	if len(got) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return got[len(got)-1]
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	ca, err := NewCA([]string{"*.test"})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{roots: x509.NewCertPool(), sseRelease: make(chan struct{})}
	u.roots.AddCert(ca.Certificate())
	ws := websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) })
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("/ws-auth", websocket.Handler(func(c *websocket.Conn) {
		io.WriteString(c, "your key: "+c.Request().Header.Get("Authorization"))
		io.Copy(io.Discard, c)
	}))
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: first\ndata: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.sseRelease:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "event: second\ndata: 2\n\n")
	})
	mux.HandleFunc("/git/", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		want, root := u.gitAuth, u.gitRoot
		u.mu.Unlock()
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "credentials, please", http.StatusUnauthorized)
			return
		}
		git, _ := exec.LookPath("git")
		(&cgi.Handler{Path: git, Args: []string{"http-backend"}, Root: "/git",
			Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}).ServeHTTP(w, r)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 256<<10)
		for i := range buf {
			buf[i] = "abcdefghijklmnopqrstuvwxyz0123456789 \n"[i%38]
		}
		for n > 0 {
			m, err := w.Write(buf[:min(int64(len(buf)), n)])
			if err != nil {
				return
			}
			n -= int64(m)
		}
	})
	mux.HandleFunc("/sink", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/echo-trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Echo")
		io.WriteString(w, "body first\n")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
	})
	mux.HandleFunc("/echo-headers", func(w http.ResponseWriter, r *http.Request) {
		r.Header.Write(w)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s %s", r.Method, r.URL.Path)
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" || r.URL.Path == "/sink" {
			io.Copy(io.Discard, r.Body) // benchmarks: not recorded
			mux.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, recorded{Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body), Proto: r.Proto})
		u.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		mux.ServeHTTP(w, r)
	})}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: ca.GetCertificate, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	u.port = ln.Addr().(*net.TCPAddr).Port
	return u
}

// icptEnv is an intercepting proxy in front of an upstream.
type icptEnv struct {
	*testProxy
	up          *upstream
	real, ph    string // the bound secret's value and placeholder
	visible     string // a visible secret's value
	caFile      string // the bottle CA's certificate
	proxyURL    string
	clientRoots *x509.CertPool
}

// randomToken is a token-like test value made at run time.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = alpha[int(b[i])%len(alpha)]
	}
	return prefix + string(b)
}

// The test's names: the bound secret's hosts, a host intercepted for
// inspection only, a host with method and path rules, and a blind one.
const (
	boundHost   = "api.bound.test"
	echoHost    = "echo.bound.test"
	inspectHost = "other.inspect.test"
	rulesHost   = "gh.rules.test"
	blindHost   = "blind.tunnel.test"
)

func startIntercepting(t testing.TB, opts ...func(*Options)) *icptEnv {
	t.Helper()
	return startInterceptingAt(t, startUpstream(t), opts...)
}

// startInterceptingAt is startIntercepting's proxy in front of up.
func startInterceptingAt(t testing.TB, up *upstream, opts ...func(*Options)) *icptEnv {
	t.Helper()
	e := &icptEnv{up: up, real: randomToken("sk-test-", 48), visible: randomToken("vis-", 40)}
	var err error
	if e.ph, err = Placeholder(e.real); err != nil {
		t.Fatal(err)
	}
	ports := []int{up.port}
	res := fakeResolver{}
	for _, h := range []string{boundHost, echoHost, inspectHost, rulesHost, blindHost} {
		res[h] = loopback
	}
	o := Options{
		Resolver: res,
		Rules: []plan.Rule{
			{Host: "*.bound.test", Ports: ports, AllowPrivate: true, From: "//p.star:1:1"},
			{Host: inspectHost, Ports: ports, AllowPrivate: true, Inspect: true, From: "//p.star:2:1"},
			{Host: rulesHost, Ports: ports, AllowPrivate: true, Methods: []string{"GET", "HEAD"}, Paths: []string{"/repos/acme/app/**"}, From: "//p.star:3:1"},
			{Host: blindHost, Ports: ports, AllowPrivate: true, From: "//p.star:4:1"},
		},
		Secrets: []Secret{
			{Name: "API_KEY", Value: e.real, Placeholder: e.ph, Hosts: []string{boundHost, echoHost}},
			{Name: "VISIBLE", Value: e.visible},
		},
		UpstreamRoots: up.roots,
	}
	for _, f := range opts {
		f(&o)
	}
	e.testProxy = startProxy(t, "tcp", o)
	pem := e.CACertPEM()
	if pem == nil {
		t.Fatal("no CA although hosts are intercepted")
	}
	e.caFile = filepath.Join(t.TempDir(), "bottle-ca.pem")
	if err := os.WriteFile(e.caFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	e.clientRoots = x509.NewCertPool()
	e.clientRoots.AppendCertsFromPEM(pem)
	tr := e.client.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{RootCAs: e.clientRoots}
	tr.ForceAttemptHTTP2 = true
	c, err := e.dial()
	if err != nil {
		t.Fatal(err)
	}
	e.proxyURL = "http://" + c.RemoteAddr().String()
	c.Close()
	return e
}

// useH1 makes the test client speak HTTP/1.1 (h1) or HTTP/2 to the proxy.
func (e *icptEnv) useH1(h1 bool) {
	tr := e.client.Transport.(*http.Transport)
	tr.CloseIdleConnections()
	tr.ForceAttemptHTTP2 = !h1
	tr.TLSClientConfig.NextProtos = nil
	if h1 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
}

func (e *icptEnv) url(host, path string) string {
	return "https://" + host + ":" + strconv.Itoa(e.up.port) + path
}

// do sends a request through the proxy with the Go client.
func (e *icptEnv) do(t testing.TB, method, u, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestInterceptSubstitutes: on a bound host the placeholder in a header is
// replaced by the real value, over HTTP/2 and HTTP/1.1 and inside Basic
// credentials; the log names the secret, never the value.
func TestInterceptSubstitutes(t *testing.T) {
	e := startIntercepting(t)
	resp, body := e.do(t, "GET", e.url(boundHost, "/v1/models"), "", "Authorization", "Bearer "+e.ph, "X-Api-Key", e.ph)
	if resp.StatusCode != 200 || body != "ok GET /v1/models" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("the client spoke %s to the proxy; want HTTP/2 by ALPN", resp.Proto)
	}
	got := e.up.last(t)
	if got.Header.Get("Authorization") != "Bearer "+e.real || got.Header.Get("X-Api-Key") != e.real {
		t.Errorf("the upstream did not get the real value: %v", got.Header)
	}
	if got.Host != boundHost+":"+strconv.Itoa(e.up.port) {
		t.Errorf("upstream Host = %q", got.Host)
	}
	// HTTP/1.1, and Basic credentials.
	e.useH1(true)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+e.ph))
	resp, _ = e.do(t, "GET", e.url(boundHost, "/basic"), "", "Authorization", basic)
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 with Basic: %s", resp.Status)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+e.real))
	if got := e.up.last(t).Header.Get("Authorization"); got != want {
		t.Errorf("Basic credentials not substituted: %q", got)
	}
	evs := e.log.events(t)
	var seen bool
	for _, ev := range evs {
		if ev.Method == "GET" && ev.Path == "/v1/models" {
			seen = true
			if len(ev.Substituted) != 1 || ev.Substituted[0] != "API_KEY" || !ev.Intercepted || ev.Status != 200 {
				t.Errorf("log line: %+v", ev)
			}
		}
	}
	if !seen {
		t.Errorf("no log line for the intercepted request: %+v", evs)
	}
	if strings.Contains(e.log.String(), e.real) || strings.Contains(e.log.String(), e.ph) {
		t.Error("the log holds the value or the placeholder")
	}
}

// TestInterceptRefusesLeaks: the placeholder to an intercepted host it is
// not bound to, the placeholder or value in a body or URL, encoded, and
// the real value anywhere are refused before the upstream sees them, with a
// 403 that names the secret and not the value.
func TestInterceptRefusesLeaks(t *testing.T) {
	e := startIntercepting(t)
	b64 := base64.StdEncoding.EncodeToString([]byte("key=" + e.ph))
	cases := []struct {
		name, method, url, body string
		hdr                     []string
	}{
		{"placeholder to another host", "GET", e.url(inspectHost, "/"), "", []string{"Authorization", "Bearer " + e.ph}},
		{"placeholder in a body", "POST", e.url(boundHost, "/v1/messages"), `{"k":"` + e.ph + `"}`, nil},
		{"placeholder base64 in a body", "POST", e.url(boundHost, "/v1/messages"), b64, nil},
		{"placeholder in the query", "GET", e.url(boundHost, "/x?k="+url.QueryEscape(e.ph)), "", nil},
		{"placeholder hex in a header", "GET", e.url(boundHost, "/"), "", []string{"X-Data", fmt.Sprintf("%x", e.ph)}},
		{"real value in a header", "GET", e.url(boundHost, "/"), "", []string{"X-Api-Key", e.real}},
		{"visible secret in a body", "POST", e.url(inspectHost, "/"), "token " + e.visible, nil},
		{"placeholder in a body to an inspected host", "POST", e.url(inspectHost, "/"), e.ph, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.up.requests())
			resp, body := e.do(t, c.method, c.url, c.body, c.hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %d %q; want 403", resp.StatusCode, body)
			}
			if !strings.Contains(body, "API_KEY") && !strings.Contains(body, "VISIBLE") {
				t.Errorf("the refusal does not name the secret: %q", body)
			}
			if strings.Contains(body, e.real) || strings.Contains(body, e.ph) || strings.Contains(body, e.visible) {
				t.Errorf("the refusal shows a value: %q", body)
			}
			for _, r := range e.up.requests()[before:] {
				if strings.Contains(r.Body, e.ph) || strings.Contains(r.Body, e.real) || strings.Contains(r.Body, e.visible) {
					t.Errorf("the upstream got the secret: %+v", r)
				}
			}
		})
	}
	if s := e.log.String(); strings.Contains(s, e.real) || strings.Contains(s, e.ph) || strings.Contains(s, e.visible) {
		t.Errorf("the log holds a value:\n%s", s)
	}
	// A credential the gitleaks rules know, in a POST body (plain and
	// gzipped) or a header, to an intercepted host.
	pat := fakePAT(t)
	for _, c := range []struct {
		name, body string
		hdr        []string
	}{
		{"pat in a body", `{"note":"token ` + pat + `"}`, nil},
		{"pat in a gzipped body", string(gzipped(t, 6, []byte("x = "+pat+"\n"))), []string{"Content-Encoding", "gzip"}},
		{"pat in a header", "", []string{"X-Note", pat}},
	} {
		before := len(e.up.requests())
		method := "POST"
		if c.body == "" {
			method = "GET"
		}
		resp, body := e.do(t, method, e.url(inspectHost, "/"), c.body, c.hdr...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "github-pat") || strings.Contains(body, pat) {
			t.Errorf("%s: %d %q; want 403 naming the rule github-pat", c.name, resp.StatusCode, body)
		}
		if n := len(e.up.requests()) - before; n != 0 {
			// A body of one window is scanned before anything is sent.
			t.Errorf("%s: the refused request reached the upstream (%d requests)", c.name, n)
		}
	}
	if strings.Contains(e.log.String(), pat) {
		t.Error("the log holds the PAT")
	}
	// A WebSocket's random key is no credential.
	resp, body := e.do(t, "GET", e.url(inspectHost, "/"), "", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "X-Request-Id", randomToken("", 32))
	if resp.StatusCode != 200 {
		t.Errorf("random header values were refused: %d %q", resp.StatusCode, body)
	}

	// The visible secret may go in a header: the agent has it anyway.
	resp, _ = e.do(t, "GET", e.url(inspectHost, "/"), "", "Authorization", "Bearer "+e.visible)
	if resp.StatusCode != 200 {
		t.Errorf("a visible secret in a header was refused: %s", resp.Status)
	}
}

// TestInterceptScanLogOnly: with scan = "log", a gitleaks finding is
// logged, without the value, and the request goes through; the bottle's
// own placeholder is still refused.
func TestInterceptScanLogOnly(t *testing.T) {
	e := startIntercepting(t, func(o *Options) { o.ScanLogOnly = true })
	pat := fakePAT(t)
	resp, body := e.do(t, "POST", e.url(inspectHost, "/notes"), "token "+pat)
	if resp.StatusCode != 200 {
		t.Fatalf("scan = log refused a gitleaks finding: %d %q", resp.StatusCode, body)
	}
	if got := e.up.last(t); !strings.Contains(got.Body, pat) {
		t.Fatalf("the body did not arrive whole: %q", got.Body)
	}
	var logged bool
	for _, ev := range e.log.events(t) {
		if strings.Contains(ev.Reason, "logged only") && strings.Contains(ev.Reason, "github-pat") && ev.Path == "/notes" {
			logged = true
		}
	}
	if !logged || strings.Contains(e.log.String(), pat) {
		t.Errorf("the finding was not logged, or the log shows the value:\n%s", e.log.String())
	}
	if resp, _ := e.do(t, "POST", e.url(inspectHost, "/"), "x="+e.ph); resp.StatusCode != http.StatusForbidden {
		t.Errorf("scan = log let the placeholder through: %s", resp.Status)
	}
}

// TestInterceptResponseEcho: a bound host that sends the real value back
// (an echo of the request's headers) has its response cut before the
// value reaches the client.
func TestInterceptResponseEcho(t *testing.T) {
	e := startIntercepting(t)
	req, _ := http.NewRequest("GET", e.url(echoHost, "/echo-headers"), nil)
	req.Header.Set("Authorization", "Bearer "+e.ph)
	resp, err := e.client.Do(req)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), e.real) {
			t.Fatalf("the real value came back to the client: %d %q", resp.StatusCode, b)
		}
		if rerr == nil && resp.StatusCode == 200 {
			t.Fatalf("the response that echoed the value was passed on whole: %q", b)
		}
	}
	if got := e.up.last(t); got.Header.Get("Authorization") != "Bearer "+e.real {
		t.Fatalf("the upstream did not get the value, so the test shows nothing: %v", got.Header)
	}
}

// TestInterceptTrailerEcho: a bound host that sends the value back in a
// response trailer has its response cut before the trailer is passed on.
func TestInterceptTrailerEcho(t *testing.T) {
	e := startIntercepting(t)
	for _, h2 := range []bool{true, false} {
		e.useH1(!h2)
		req, _ := http.NewRequest("GET", e.url(echoHost, "/echo-trailer"), nil)
		req.Header.Set("Authorization", "Bearer "+e.ph)
		resp, err := e.client.Do(req)
		if err != nil {
			continue // cut before the headers: nothing reached the client
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), e.real) || strings.Contains(fmt.Sprint(resp.Trailer), e.real) {
			t.Errorf("h2=%v: the value came back in a trailer: %v", h2, resp.Trailer)
		}
		if got := e.up.last(t); got.Header.Get("Authorization") != "Bearer "+e.real {
			t.Fatalf("the upstream did not get the value, so the test shows nothing")
		}
	}
}

// TestInterceptMethodPath: a host with method and path rules lets GET
// under the path through and refuses another method, another path, and
// paths that a server could resolve elsewhere; the refusal names the rule
// and the allow() that would permit it.
func TestInterceptMethodPath(t *testing.T) {
	e := startIntercepting(t)
	if resp, body := e.do(t, "GET", e.url(rulesHost, "/repos/acme/app/pulls"), ""); resp.StatusCode != 200 || body != "ok GET /repos/acme/app/pulls" {
		t.Fatalf("an allowed GET: %d %q", resp.StatusCode, body)
	}
	cases := []struct{ method, path, want string }{
		{"POST", "/repos/acme/app/pulls", `methods = ["GET", "HEAD", "POST"]`},
		{"GET", "/repos/acme/other", `paths = ["/repos/acme/other"]`},
		{"GET", "/repos/acme/app/../other", "dot segment"},
		{"GET", "/repos/acme/app/%2e%2e/other", "dot segment"},
		{"GET", "/repos/acme/app%2F..%2Fother/x", "encoded slash"},
	}
	for _, c := range cases {
		before := len(e.up.requests())
		req, _ := http.NewRequest(c.method, e.url(rulesHost, ""), nil)
		req.URL.Opaque = "//" + rulesHost + ":" + strconv.Itoa(e.up.port) + c.path // sent as written
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s: %d %q; want 403 mentioning %q", c.method, c.path, resp.StatusCode, b, c.want)
		}
		if len(e.up.requests()) != before {
			t.Errorf("%s %s reached the upstream", c.method, c.path)
		}
		if c.want[0] != 'd' && c.want[0] != 'e' && !strings.Contains(string(b), "//p.star:3:1") {
			t.Errorf("the refusal does not say where the rule is: %q", b)
		}
	}
}

// TestInterceptAuthority: through a CONNECT to one host, a request for
// another name (Host header, or TLS server name) is refused.
func TestInterceptAuthority(t *testing.T) {
	e := startIntercepting(t)
	req, _ := http.NewRequest("GET", e.url(boundHost, "/"), nil)
	req.Host = "evil.bound.test"
	req.Header.Set("Authorization", "Bearer "+e.ph)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request for another Host: %s; want 421", resp.Status)
	}
	// The TLS server name.
	c := e.openTunnel(t, boundHost+":"+strconv.Itoa(e.up.port))
	tc := tls.Client(c, &tls.Config{ServerName: "evil.bound.test", RootCAs: e.clientRoots})
	if err := tc.Handshake(); err == nil {
		t.Error("the proxy shook hands for another server name")
	}
	for _, r := range e.up.requests() {
		if r.Host != boundHost+":"+strconv.Itoa(e.up.port) {
			t.Errorf("the upstream got a request for %q", r.Host)
		}
	}
}

// TestInterceptStreams: the first server-sent event reaches the client
// while the upstream still holds the stream open, over HTTP/2 and
// HTTP/1.1, and a WebSocket echoes through an intercepted host.
func TestInterceptStreams(t *testing.T) {
	e := startIntercepting(t)
	for _, h2 := range []bool{true, false} {
		e.useH1(!h2)
		req, _ := http.NewRequest("GET", e.url(boundHost, "/sse"), nil)
		req.Header.Set("Authorization", "Bearer "+e.ph)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		first := make(chan string, 1)
		go func() {
			br := bufio.NewReader(resp.Body)
			var ev strings.Builder
			for {
				line, err := br.ReadString('\n')
				ev.WriteString(line)
				if err != nil || line == "\n" {
					break
				}
			}
			first <- ev.String()
		}()
		select {
		case ev := <-first:
			if !strings.Contains(ev, "event: first") {
				t.Errorf("first event: %q", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("h2=%v: the first event did not arrive while the stream was open (buffered)", h2)
		}
		e.up.sseRelease <- struct{}{}
		rest, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(rest), "event: second") {
			t.Errorf("second event: %q", rest)
		}
	}

	// WebSocket: CONNECT, TLS with the bottle CA, then a real WebSocket
	// handshake and frames.
	c := e.openTunnel(t, boundHost+":"+strconv.Itoa(e.up.port))
	tc := tls.Client(c, &tls.Config{ServerName: boundHost, RootCAs: e.clientRoots, NextProtos: []string{"http/1.1"}})
	cfg, err := websocket.NewConfig("wss://"+boundHost+":"+strconv.Itoa(e.up.port)+"/ws", "https://"+boundHost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Header = http.Header{"Authorization": {"Bearer " + e.ph}}
	ws, err := websocket.NewClient(cfg, tc)
	if err != nil {
		t.Fatalf("websocket through the intercepting proxy: %v", err)
	}
	if _, err := ws.Write([]byte("hello frames")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ws.Read(buf)
	if err != nil || string(buf[:n]) != "hello frames" {
		t.Fatalf("websocket echo: %q, %v", buf[:n], err)
	}
	ws.Close()
	if got := e.up.last(t); got.Path != "/ws" || got.Header.Get("Authorization") != "Bearer "+e.real {
		t.Errorf("the WebSocket handshake upstream: %+v", got)
	}

	// A destination that sends the value back over the WebSocket has the
	// connection cut before the value reaches the client.
	c = e.openTunnel(t, echoHost+":"+strconv.Itoa(e.up.port))
	tc = tls.Client(c, &tls.Config{ServerName: echoHost, RootCAs: e.clientRoots, NextProtos: []string{"http/1.1"}})
	cfg, _ = websocket.NewConfig("wss://"+echoHost+":"+strconv.Itoa(e.up.port)+"/ws-auth", "https://"+echoHost)
	cfg.Header = http.Header{"Authorization": {"Bearer " + e.ph}}
	if ws, err = websocket.NewClient(cfg, tc); err == nil {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _ := io.ReadAll(ws)
		if strings.Contains(string(got), e.real) {
			t.Errorf("the value came back over the WebSocket: %q", got)
		}
		ws.Close()
	}
	if got := e.up.last(t); got.Path != "/ws-auth" || got.Header.Get("Authorization") != "Bearer "+e.real {
		t.Fatalf("the upstream did not get the value, so the test shows nothing: %+v", got)
	}
}

// TestInterceptBlindStaysBlind: a host nothing intercepts is still a
// tunnel, and the client sees the upstream's own certificate.
func TestInterceptBlindStaysBlind(t *testing.T) {
	e := startIntercepting(t)
	c := e.openTunnel(t, blindHost+":"+strconv.Itoa(e.up.port))
	tc := tls.Client(c, &tls.Config{ServerName: blindHost, RootCAs: e.up.roots})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("the blind tunnel did not carry the upstream's own TLS: %v", err)
	}
	// The handshake verified against the upstream's own roots, which do
	// not hold the bottle's CA: the proxy did not answer it.
	tc.Close()
	for _, ev := range e.log.waitEvents(t, 1) {
		if ev.Host == blindHost && ev.Intercepted {
			t.Errorf("the blind host was logged as intercepted: %+v", ev)
		}
	}
}

// TestInterceptVerifiesUpstream: an intercepted host whose certificate the
// proxy cannot verify gets a 502, and nothing is sent to it.
func TestInterceptVerifiesUpstream(t *testing.T) {
	up := startUpstream(t)
	ph, _ := Placeholder("sk-test-" + strings.Repeat("a", 40))
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{boundHost: loopback},
		Rules:    []plan.Rule{{Host: boundHost, Ports: []int{up.port}, AllowPrivate: true}},
		Secrets:  []Secret{{Name: "API_KEY", Value: "sk-test-" + strings.Repeat("a", 40), Placeholder: ph, Hosts: []string{boundHost}}},
		// No UpstreamRoots: the system's, which do not hold the test CA.
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tp.CACertPEM())
	tp.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	req, _ := http.NewRequest("GET", "https://"+boundHost+":"+strconv.Itoa(up.port)+"/", nil)
	req.Header.Set("Authorization", "Bearer "+ph)
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "certificate") {
		t.Errorf("an unverifiable upstream: %d %q; want 502 about its certificate", resp.StatusCode, b)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the unverified upstream got %d requests", n)
	}
}

// TestInterceptCurl: the real curl, trusting the bottle CA, gets the
// secret substituted over HTTP/1.1 and HTTP/2, and is refused when it sends
// the placeholder in a body.
func TestInterceptCurl(t *testing.T) {
	curl := needTool(t, "curl")
	e := startIntercepting(t)
	for _, proto := range []string{"--http1.1", "--http2"} {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", proto, "--proxy", e.proxyURL, "--cacert", e.caFile,
			"-H", "Authorization: Bearer "+e.ph, "-w", " %{http_code} %{http_version}", e.url(boundHost, "/curl")).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "ok GET /curl 200") {
			t.Fatalf("curl %s: %v %q", proto, err, out)
		}
		if got := e.up.last(t).Header.Get("Authorization"); got != "Bearer "+e.real {
			t.Errorf("curl %s: upstream Authorization %q", proto, got)
		}
	}
	out, _ := exec.Command(curl, "-sS", "--max-time", "10", "--proxy", e.proxyURL, "--cacert", e.caFile,
		"--data-binary", "x="+e.ph, "-w", " %{http_code}", e.url(boundHost, "/post")).CombinedOutput()
	if !strings.HasSuffix(string(out), " 403") || !strings.Contains(string(out), "API_KEY") {
		t.Errorf("curl with the placeholder in a body: %q", out)
	}
}

// TestInterceptNode: Node.js, trusting the CA through NODE_EXTRA_CA_CERTS,
// gets the secret substituted (https over a CONNECT it makes itself).
func TestInterceptNode(t *testing.T) {
	node := needTool(t, "node")
	e := startIntercepting(t)
	script := `
const http = require('http'), https = require('https'), tls = require('tls');
const [proxy, host, port, ph] = process.argv.slice(1);
const pu = new URL(proxy);
const req = http.request({host: pu.hostname, port: pu.port, method: 'CONNECT', path: host + ':' + port});
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.log('CONNECT ' + res.statusCode); process.exit(1); }
  const r = https.request({host, port, path: '/node', headers: {'x-api-key': ph},
    createConnection: () => tls.connect({socket, servername: host})}, (resp) => {
    let b = ''; resp.on('data', d => b += d); resp.on('end', () => { console.log(resp.statusCode + ' ' + b); process.exit(0); });
  });
  r.on('error', e => { console.log('error ' + e.message); process.exit(1); });
  r.end();
});
req.on('error', e => { console.log('proxy error ' + e.message); process.exit(1); });
req.end();
`
	cmd := exec.Command(node, "-e", script, e.proxyURL, boundHost, strconv.Itoa(e.up.port), e.ph)
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+e.caFile)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "200 ok GET /node" {
		t.Fatalf("node: %v %q", err, out)
	}
	if got := e.up.last(t).Header.Get("X-Api-Key"); got != e.real {
		t.Errorf("node: upstream x-api-key %q", got)
	}
}

// TestInterceptPython: Python's urllib, through HTTPS_PROXY and trusting
// the CA through SSL_CERT_FILE, gets the secret substituted.
func TestInterceptPython(t *testing.T) {
	py := needTool(t, "python3")
	e := startIntercepting(t)
	script := `
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=10) as r:
    print(r.status, r.read().decode())
`
	cmd := exec.Command(py, "-c", script, e.url(boundHost, "/python"), e.ph)
	cmd.Env = append(os.Environ(), "HTTPS_PROXY="+e.proxyURL, "SSL_CERT_FILE="+e.caFile, "NO_PROXY=")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "200 ok GET /python" {
		t.Fatalf("python: %v %q", err, out)
	}
	if got := e.up.last(t).Header.Get("Authorization"); got != "Bearer "+e.real {
		t.Errorf("python: upstream Authorization %q", got)
	}
}

// needTool returns the path of a client the test runs, skipping (failing
// in CI) when it is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("CI must run this: %v", err)
		}
		t.Skipf("skipping: needs %s", name)
	}
	return p
}

// TestInterceptGit: the real git clones over https from a bound host
// with the placeholder as its password; the upstream sees the real value
// in git's Basic credentials, and the clone works.
func TestInterceptGit(t *testing.T) {
	git := needTool(t, "git")
	e := startIntercepting(t)
	root := t.TempDir()
	run := func(dir string, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+root, "GIT_TERMINAL_PROMPT=0")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	src := filepath.Join(root, "src")
	run(root, nil, "init", "-q", "-b", "main", src)
	os.WriteFile(filepath.Join(src, "README"), []byte("hello through the proxy\n"), 0o644)
	run(src, nil, "add", "README")
	run(src, nil, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
	run(root, nil, "clone", "-q", "--bare", src, filepath.Join(root, "repo.git"))
	e.up.mu.Lock()
	e.up.gitAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+e.real))
	e.up.gitRoot = root
	e.up.mu.Unlock()
	u := "https://x-access-token:" + e.ph + "@" + boundHost + ":" + strconv.Itoa(e.up.port) + "/git/repo.git"
	run(root, []string{"https_proxy=" + e.proxyURL, "HTTPS_PROXY=" + e.proxyURL, "GIT_SSL_CAINFO=" + e.caFile}, "clone", "-q", u, filepath.Join(root, "clone"))
	b, err := os.ReadFile(filepath.Join(root, "clone", "README"))
	if err != nil || string(b) != "hello through the proxy\n" {
		t.Fatalf("the clone: %q, %v", b, err)
	}
}

// TestInterceptInspectAllAddedRule: with every host inspected, a rule
// added while the bottle runs (a supervise approval) names a host the CA
// was not made for: it is refused, saying so, rather than tunnelled
// unscanned.
func TestInterceptInspectAllAddedRule(t *testing.T) {
	e := startIntercepting(t, func(o *Options) { o.InspectAll = true })
	if err := e.AddRule(plan.Rule{Host: "late.added.test", Ports: []int{e.up.port}, AllowPrivate: true, From: "supervise"}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.rawRequest(t, "CONNECT late.added.test:"+strconv.Itoa(e.up.port)+" HTTP/1.1\r\nHost: late.added.test\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "restart the bottle") {
		t.Errorf("a host added after start under inspect-all: %d %q", resp.StatusCode, body)
	}
	// A host the CA covers is intercepted even without a rule asking.
	resp, _ = e.do(t, "GET", e.url(blindHost, "/"), "")
	if resp.StatusCode != 200 {
		t.Fatalf("inspect-all, a covered host: %s", resp.Status)
	}
	var intercepted bool
	for _, ev := range e.log.events(t) {
		if ev.Host == blindHost && ev.Intercepted && ev.Path == "/" {
			intercepted = true
		}
	}
	if !intercepted {
		t.Error("with inspect-all, the otherwise blind host was not intercepted")
	}
}

// TestInterceptLogsCutShortAnswer: a client that goes away in the middle
// of an intercepted answer (as Codex closes its stream after the last
// event it needs) still leaves the request's line in the log, saying the
// answer was cut short. The reverse proxy aborts such a response by
// panicking, which used to skip the line.
func TestInterceptLogsCutShortAnswer(t *testing.T) {
	e := startIntercepting(t)
	for _, h2 := range []bool{true, false} {
		e.useH1(!h2)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url(boundHost, "/sse"), nil)
		req.Header.Set("Authorization", "Bearer "+e.ph)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.Contains(line, "event: first") {
			t.Fatalf("first event: %q, %v", line, err)
		}
		cancel()
		resp.Body.Close()
		deadline := time.Now().Add(5 * time.Second)
		var cut *Event
		for cut == nil && time.Now().Before(deadline) {
			for _, ev := range e.log.events(t) {
				if ev.Path == "/sse" && strings.Contains(ev.Error, "cut short") {
					cut = &ev
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if cut == nil {
			t.Fatalf("h2=%v: no log line for the request whose answer was cut short: %+v", h2, e.log.events(t))
		}
		if !cut.Intercepted || cut.Status != http.StatusOK || len(cut.Substituted) != 1 {
			t.Errorf("h2=%v: the line: %+v", h2, *cut)
		}
		e.log.reset()
	}
}

package egress

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

// connCounter is an upstream that counts the connections it accepts.
func connCounter(t *testing.T) (*httptest.Server, func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestUpstreamKeepAlive: plain-HTTP requests of one decision reuse an
// upstream connection; a change of the rules (every decision new) or
// another decision (another host) never does.
func TestUpstreamKeepAlive(t *testing.T) {
	srv, conns := connCounter(t)
	port := serverPort(t, srv)
	rule := plan.Rule{Host: "a.example.com", Ports: []int{port}, AllowPrivate: true}
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"a.example.com": loopback, "b.example.com": loopback},
		Rules:    []plan.Rule{rule, {Host: "b.example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	url := func(h string) string { return "http://" + h + ":" + strconv.Itoa(port) + "/" }
	for range 10 {
		if code, body := get(t, tp.client, url("a.example.com")); code != 200 || body != "ok" {
			t.Fatalf("GET: %d %q", code, body)
		}
	}
	if n := conns(); n != 1 {
		t.Errorf("10 requests of one decision used %d upstream connections, want 1", n)
	}
	get(t, tp.client, url("b.example.com"))
	if n := conns(); n != 2 {
		t.Errorf("a request of another decision (another host) used %d connections in all, want a new one (2)", n)
	}
	if err := tp.AddRule(plan.Rule{Host: "c.example.com", Ports: []int{port}}); err != nil {
		t.Fatal(err)
	}
	get(t, tp.client, url("a.example.com"))
	if n := conns(); n != 3 {
		t.Errorf("after the rules changed, %d connections in all, want a new one (3)", n)
	}
	// The log still names the address of a reused connection.
	get(t, tp.client, url("a.example.com"))
	if n := conns(); n != 3 {
		t.Errorf("%d connections, want the last one reused (3)", n)
	}
	evs := tp.log.waitEvents(t, 13)
	if last := evs[len(evs)-1]; last.Addr != "127.0.0.1:"+strconv.Itoa(port) || last.Status != 200 {
		t.Errorf("the reused connection's request logged %+v", last)
	}
}

// BenchmarkPlainHTTP forwards small plain-HTTP GETs through the proxy
// from one keep-alive client, with upstream connections kept per decision
// and, as the baseline, with a new upstream connection per request.
func BenchmarkPlainHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	b.Cleanup(srv.Close)
	_, portText, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	for _, tc := range []struct {
		name        string
		noKeepAlive bool
	}{{"dial-per-request", true}, {"keep-alive", false}} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := New(Options{
				Resolver: fakeResolver{"a.example.com": loopback},
				Rules:    []plan.Rule{{Host: "a.example.com", Ports: []int{port}, AllowPrivate: true}},
				Log:      io.Discard,
			})
			if err != nil {
				b.Fatal(err)
			}
			p.plain.noKeepAlive = tc.noKeepAlive
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go p.Serve(ln)
			defer p.Close()
			proxyURL, _ := url.Parse("http://" + ln.Addr().String())
			tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			target := "http://a.example.com:" + portText + "/"
			for b.Loop() {
				resp, err := c.Get(target)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

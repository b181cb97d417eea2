package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchClients are three HTTP/1.1 clients of the same TLS upstream, each
// keeping its connection alive: one direct, one through a blind tunnel,
// and one through an intercepted host, where the proxy terminates TLS,
// substitutes a secret and scans the request.
type benchClients struct {
	e                          *icptEnv
	direct, blind, intercepted *http.Client
}

func newBenchClients(b *testing.B) *benchClients {
	b.Helper()
	e := startIntercepting(b)
	mk := func(proxied bool, roots *x509.CertPool) *http.Client {
		var tr *http.Transport
		if proxied {
			tr = e.client.Transport.(*http.Transport).Clone()
		} else {
			addr := "127.0.0.1:" + strconv.Itoa(e.up.port)
			tr = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			}}
		}
		tr.ForceAttemptHTTP2 = false
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}
		tr.MaxIdleConnsPerHost = 1
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	return &benchClients{e: e, direct: mk(false, e.up.roots), blind: mk(true, e.up.roots), intercepted: mk(true, e.clientRoots)}
}

// get sends one request and returns the time to its response's headers.
func (bc *benchClients) get(b *testing.B, c *http.Client, host, path string, body io.Reader, n int64) time.Duration {
	b.Helper()
	method := "GET"
	if body != nil {
		method = "POST"
	}
	req, err := http.NewRequest(method, bc.e.url(host, path), body)
	if err != nil {
		b.Fatal(err)
	}
	if body != nil {
		req.ContentLength = n
	}
	if c == bc.intercepted {
		req.Header.Set("Authorization", "Bearer "+bc.e.ph)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	ttfb := time.Since(start)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("%s %s: %s", method, host, resp.Status)
	}
	return ttfb
}

// BenchmarkInterceptLatency: the time to first byte of a small request on
// a kept-alive connection, directly, through a blind tunnel and through an
// intercepted host, interleaved in one run; it reports each median and the
// interception's added median over the tunnel.
func BenchmarkInterceptLatency(b *testing.B) {
	bc := newBenchClients(b)
	var direct, blind, icpt []time.Duration
	for _, c := range []*http.Client{bc.direct, bc.blind, bc.intercepted} { // warm: handshakes
		bc.get(b, c, hostFor(bc, c), "/sink", nil, 0)
	}
	for b.Loop() {
		direct = append(direct, bc.get(b, bc.direct, boundHost, "/sink", nil, 0))
		blind = append(blind, bc.get(b, bc.blind, blindHost, "/sink", nil, 0))
		icpt = append(icpt, bc.get(b, bc.intercepted, boundHost, "/sink", nil, 0))
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1e3
	}
	d, t, i := p50(direct), p50(blind), p50(icpt)
	b.ReportMetric(d, "direct-p50-µs")
	b.ReportMetric(t, "tunnel-p50-µs")
	b.ReportMetric(i, "intercepted-p50-µs")
	b.ReportMetric(i-t, "added-over-tunnel-p50-µs")
}

func hostFor(bc *benchClients, c *http.Client) string {
	if c == bc.blind {
		return blindHost
	}
	return boundHost
}

// BenchmarkInterceptThroughput: a 256 MiB download and a 4 MiB upload of
// source-like text in which no line repeats, per path, interleaved in one
// run; an upload to an intercepted host is scanned (the bottle's secrets
// and the gitleaks rules), so its rate is the scan's.
func BenchmarkInterceptThroughput(b *testing.B) {
	bc := newBenchClients(b)
	const down, up = 256 << 20, 4 << 20
	var dur [3][2]time.Duration
	clients := []*http.Client{bc.direct, bc.blind, bc.intercepted}
	for b.Loop() {
		for k, c := range clients {
			start := time.Now()
			bc.get(b, c, hostFor(bc, c), "/big?n="+strconv.Itoa(down), nil, 0)
			dur[k][0] += time.Since(start)
			start = time.Now()
			bc.get(b, c, hostFor(bc, c), "/sink", &textReader{n: up}, up)
			dur[k][1] += time.Since(start)
		}
	}
	for k, name := range []string{"direct", "tunnel", "intercepted"} {
		b.ReportMetric(float64(b.N)*down/1e6/dur[k][0].Seconds(), name+"-down-MB/s")
		b.ReportMetric(float64(b.N)*up/1e6/dur[k][1].Seconds(), name+"-up-MB/s")
	}
}

// textReader yields n bytes of source-like text with no secret in it,
// each line numbered, so that no window of it repeats (a window scanned
// before would not be scanned again).
type textReader struct {
	n, off int64
	line   int
	buf    []byte
}

func (t *textReader) Read(p []byte) (int, error) {
	if t.off >= t.n {
		return 0, io.EOF
	}
	for len(t.buf) < len(p) {
		t.line++
		t.buf = fmt.Appendf(t.buf, "func (s *Server) handle%d(w http.ResponseWriter, r *http.Request) error { return s.check(r, %d) }\n", t.line, t.line*7)
	}
	m := min(int64(len(p)), t.n-t.off)
	copy(p, t.buf[:m])
	t.buf = t.buf[m:]
	t.off += m
	return int(m), nil
}

// BenchmarkDLPConversation: a model API's next turn resends the whole
// conversation with a message more. It scans a request of about 1 MiB
// with a fresh DLP (the first turn), then the next turn's request, and
// reports each one's scan time: the next turn's windows that the first
// one already scanned clean are not scanned again.
func BenchmarkDLPConversation(b *testing.B) {
	src := goSource(b, 1<<20)
	var msgs []map[string]string
	for len(src) > 0 {
		k := min(len(src), 8<<10)
		msgs = append(msgs, map[string]string{"role": "user", "content": string(src[:k])})
		src = src[k:]
	}
	turn := func(n int) []byte {
		body, err := json.Marshal(map[string]any{"model": "some-model", "max_tokens": 4096, "messages": msgs[:n]})
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	first, next := turn(len(msgs)-1), turn(len(msgs))
	var cold, warm time.Duration
	for b.Loop() {
		d, err := NewDLP(nil)
		if err != nil {
			b.Fatal(err)
		}
		for i, body := range [][]byte{first, next} {
			start := time.Now()
			if _, err := io.Copy(io.Discard, d.Body(bytes.NewReader(body), nil)); err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				cold += time.Since(start)
			} else {
				warm += time.Since(start)
			}
		}
	}
	b.ReportMetric(float64(len(first))/1e6, "first-MB")
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "first-turn-ms")
	b.ReportMetric(float64(warm.Milliseconds())/float64(b.N), "next-turn-ms")
}

package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// The proxy's own HTTP/1.1 server (front.go) and its plain-HTTP
// forwarding (plain.go), with real clients and raw connections.

// frontProxy runs a proxy that allows example.com on srv's port.
func frontProxy(t *testing.T, srv *httptest.Server) (*testProxy, string) {
	t.Helper()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	return tp, fmt.Sprintf("example.com:%d", port)
}

// echoBody answers with the method, the path and the request body.
func echoBody(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// Pipelined requests, with bodies of known length and chunked, a HEAD and
// a 304, all on one kept-alive connection, are answered in order.
func TestFrontPipelinedRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "100")
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			echoBody(w, r)
		}
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u := "http://" + target
	reqs := "GET " + u + "/a HTTP/1.1\r\nHost: " + target + "\r\n\r\n" +
		"POST " + u + "/b HTTP/1.1\r\nHost: " + target + "\r\nContent-Length: 5\r\n\r\nhello" +
		"HEAD " + u + "/head HTTP/1.1\r\nHost: " + target + "\r\n\r\n" +
		"POST " + u + "/c HTTP/1.1\r\nHost: " + target + "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" +
		"GET " + u + "/304 HTTP/1.1\r\nHost: " + target + "\r\n\r\n" +
		"GET " + u + "/d HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []struct{ method, body string }{
		{"GET", "GET /a "}, {"POST", "POST /b hello"}, {"HEAD", ""}, {"POST", "POST /c abcde"}, {"GET", ""}, {"GET", "GET /d "},
	} {
		resp, body := readResponse(t, br, want.method)
		if body != want.body {
			t.Errorf("%s: %d %q, want %q", want.method, resp.StatusCode, body, want.body)
		}
		if want.method == "HEAD" && resp.ContentLength != 100 {
			t.Errorf("HEAD: Content-Length %d, want 100", resp.ContentLength)
		}
	}
	evs := tp.log.waitEvents(t, 6)
	for _, ev := range evs {
		if !ev.Allowed || ev.Addr == "" {
			t.Errorf("logged %+v", ev)
		}
	}
}

// A client that expects "100 Continue" gets it from the proxy before it
// sends its body; the destination never sees the Expect header.
func TestFrontExpectContinue(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := r.Header.Get("Expect"); e != "" {
			http.Error(w, "saw Expect: "+e, http.StatusBadRequest)
			return
		}
		echoBody(w, r)
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT http://%s/x HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", target, target)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q, %v; want 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100 Continue: %q", l)
	}
	io.WriteString(c, "data")
	resp, body := readResponse(t, br, "PUT")
	if resp.StatusCode != 200 || body != "PUT /x data" {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
	// A refused request gets no 100 Continue, and the connection, whose
	// body never came, ends.
	fmt.Fprintf(c, "PUT http://denied.example.com/ HTTP/1.1\r\nHost: denied.example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, _ = readResponse(t, br, "PUT")
	if resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Errorf("refused request: %d, close %v", resp.StatusCode, resp.Close)
	}
}

// A destination that answers before it has read a long upload is heard:
// the client gets its answer, the connection ends, and nothing hangs.
func TestFrontEarlyAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST http://%s/ HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", target, target, 64<<20)
	// Send part of the body and then stall, as a slow client would.
	go c.Write(make([]byte, 1<<20))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("status %d, close %v; want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the connection stayed open after an unread body")
	}
	ev := tp.log.waitEvents(t, 1)[0]
	if ev.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("logged %+v", ev)
	}
}

// An HTTP/1.0 client gets a body of unknown length unchunked, ended by
// the close of its connection.
func TestFrontHTTP10Client(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.0\r\n\r\n", target)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	if strings.Contains(strings.ToLower(head), "chunked") || body != "part one part two" {
		t.Errorf("HTTP/1.0 answer:\n%s", raw)
	}
}

// Malformed requests get net/http's answers, and the connection ends.
func TestFrontMalformedRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"garbage", "NOT A REQUEST\r\n\r\n", 400},
		{"bad header name", "GET http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\nBad Name: x\r\n\r\n", 400},
		{"control byte in a value", "GET http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\nX: a\x01b\r\n\r\n", 400},
		{"HTTP/2 on the wire", "GET http://" + target + "/ HTTP/2.0\r\nHost: " + target + "\r\n\r\n", 505},
		{"unknown transfer coding", "POST http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"unknown expectation", "GET http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\nExpect: magic\r\n\r\n", 417},
		{"headers over 1 MiB", "GET http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\nX: " + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tp.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go io.WriteString(c, tc.req)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tc.status || !resp.Close {
				t.Errorf("%d (close %v), want %d and the connection closed", resp.StatusCode, resp.Close, tc.status)
			}
		})
	}
}

// Server-sent events stream through the plain-HTTP path, and an upload in
// parts reaches the destination part by part.
func TestFrontStreams(t *testing.T) {
	next := make(chan struct{})
	gotPart := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			buf := make([]byte, 64)
			for {
				n, err := r.Body.Read(buf)
				if n > 0 {
					gotPart <- string(buf[:n])
				}
				if err != nil {
					break
				}
			}
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	resp, err := tp.client.Get("http://" + target + "/events")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(next)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest of the stream: %q", rest)
	}

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		resp, err := tp.client.Post("http://"+target+"/upload", "text/plain", pr)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	io.WriteString(pw, "first")
	select {
	case part := <-gotPart:
		if part != "first" {
			t.Errorf("first part: %q", part)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part of the upload did not reach the destination before the second was sent")
	}
	io.WriteString(pw, "second")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Interim answers (103 Early Hints) reach the client before the final
// one, and trailers follow a chunked body.
func TestFrontInterimAndTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
	}))
	defer srv.Close()
	tp, target := frontProxy(t, srv)
	var interim []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		interim = append(interim, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+target+"/", nil)
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(interim) != 1 || interim[0] != http.StatusEarlyHints {
		t.Errorf("interim answers %v, want [103]", interim)
	}
	if string(b) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %q, trailer %v", b, resp.Trailer)
	}

	// An HTTP/1.0 client gets no interim answer, which it would take for
	// the final one (RFC 9110, section 15.2).
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.0\r\n\r\n", target)
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(raw), "\r\n\r\nbody") {
		t.Errorf("HTTP/1.0 client got:\n%s", raw)
	}
}

// A kept upstream connection that the destination closed is not used
// again: requests with and without a body after it succeed.
func TestFrontKeptConnectionClosedByDestination(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			go func() {
				defer c.Close()
				// One answer that promises nothing about the
				// connection, then close it, as a server whose idle
				// timeout is short does.
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	u := fmt.Sprintf("http://example.com:%d/", port)
	for i := range 3 {
		if code, body := get(t, tp.client, u); code != 200 || body != "ok" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
		time.Sleep(20 * time.Millisecond)
		resp, err := tp.client.Post(u, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %d: %d", i, resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Shutdown closes kept-alive idle clients at once; Close ends a request
// whose destination never answers.
func TestFrontStop(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-hang
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	defer close(hang)

	tp, target := frontProxy(t, srv)
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	readResponse(t, br, "GET")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with one idle client: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %s with only an idle client", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the idle client's connection is still open")
	}

	tp2, target2 := frontProxy(t, srv)
	c2, err := tp2.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET http://%s/hang HTTP/1.1\r\nHost: %s\r\n\r\n", target2, target2)
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { tp2.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a destination that never answers")
	}
}

// A kept-alive client that sends nothing for the idle timeout, and one
// that stalls in its headers for the header timeout, are closed; one that
// keeps sending requests is not.
func TestFrontTimeouts(t *testing.T) {
	// Restored after the proxy stops (cleanups run last first), whose
	// sweep reads it.
	old := readHeaderTimeout
	t.Cleanup(func() { readHeaderTimeout = old })
	readHeaderTimeout = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver:    fakeResolver{"example.com": loopback},
		Rules:       []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
		IdleTimeout: 400 * time.Millisecond,
	})
	target := fmt.Sprintf("example.com:%d", port)
	closedWithin := func(c net.Conn, br *bufio.Reader, max time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(5 * time.Second))
		if b, err := br.ReadByte(); err == nil {
			t.Fatalf("read %q from a connection that should have been closed", b)
		}
		d := time.Since(start)
		if d > max {
			t.Errorf("closed after %s, want at most %s", d, max)
		}
		return d
	}

	idle, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(idle)
	readResponse(t, br, "GET")
	if d := closedWithin(idle, br, 2*time.Second); d < 300*time.Millisecond {
		t.Errorf("idle client closed after %s, before its idle timeout", d)
	}

	stalled, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET http://%s/ HTTP/1.1\r\nHost: ", target)
	closedWithin(stalled, bufio.NewReader(stalled), 2*time.Second)

	busy, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	br = bufio.NewReader(busy)
	for range 8 {
		fmt.Fprintf(busy, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// A body of known length that comes apart from its header, in either
// direction, arrives intact. The proxy flushes what it has buffered
// before it waits for more of a body; done inside bufio.Writer.ReadFrom,
// whose read fills the writer's own buffer, that flush once sent the
// header's first bytes again in place of the body (seen as an answer
// "HTTP/1.1 200" where "upstream-ok\n" was due, from a server that
// writes its header and its file in two calls).
func TestFrontBodyApartFromHeader(t *testing.T) {
	const pause = 50 * time.Millisecond
	up := startRawUp(t, func(_ *rawUp, _, _ int, req *http.Request, body []byte, c net.Conn, _ *bufio.Reader) bool {
		answer := "answer:" + req.URL.Path + ":" + string(body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(answer))
		time.Sleep(pause)
		io.WriteString(c, answer)
		return true
	})
	tp, base := frontReviewProxy(t, up.port)
	for _, tc := range []struct{ name, method, body string }{
		{"GET", http.MethodGet, ""},
		{"POST sent apart", http.MethodPost, "the request body"},
		{"POST of 64 KiB sent apart", http.MethodPost, strings.Repeat("0123456789abcdef", 4<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tp.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "%s %s/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", tc.method, base, tc.method, frontUpHost, len(tc.body))
			if tc.body != "" {
				time.Sleep(pause)
				io.WriteString(c, tc.body)
			}
			resp, got := readResponse(t, bufio.NewReader(c), tc.method)
			if want := "answer:/" + tc.method + ":" + tc.body; resp.StatusCode != http.StatusOK || got != want {
				t.Errorf("got %d %.80q..., want 200 %.80q...", resp.StatusCode, got, want)
			}
		})
	}
	reqs := up.requests()
	for i, want := range []string{"GET /GET ", "POST /POST the request body", "POST /POST " + strings.Repeat("0123456789abcdef", 4<<10)} {
		if i >= len(reqs) || reqs[i] != want {
			t.Errorf("the destination's request %d is not %.80q...; it got %.80q", i, want, reqs)
		}
	}
}

// Answers that come in pieces, of known length, until close and chunked,
// reach HTTP/1.1 and HTTP/1.0 clients whole: the same flush, done between
// two pieces, once sent the header's first bytes in place of the second.
func TestFrontBodyInPieces(t *testing.T) {
	const pause = 30 * time.Millisecond
	pieces := []string{"piece one, ", "piece two, ", "piece three"}
	whole := strings.Join(pieces, "")
	up := startRawUp(t, func(_ *rawUp, _, _ int, req *http.Request, _ []byte, c net.Conn, _ *bufio.Reader) bool {
		switch req.URL.Path {
		case "/length":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(whole))
		case "/close":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
		case "/chunked":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		}
		for _, p := range pieces {
			time.Sleep(pause)
			if req.URL.Path == "/chunked" {
				fmt.Fprintf(c, "%x\r\n%s\r\n", len(p), p)
			} else {
				io.WriteString(c, p)
			}
		}
		if req.URL.Path == "/chunked" {
			io.WriteString(c, "0\r\n\r\n")
		}
		return req.URL.Path != "/close"
	})
	tp, base := frontReviewProxy(t, up.port)
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		for _, path := range []string{"/length", "/close", "/chunked"} {
			t.Run(proto+path, func(t *testing.T) {
				c, err := tp.dial()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "GET %s%s %s\r\nHost: %s\r\n\r\n", base, path, proto, frontUpHost)
				resp, got := readResponse(t, bufio.NewReader(c), http.MethodGet)
				if resp.StatusCode != http.StatusOK || got != whole {
					t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, whole)
				}
			})
		}
	}
}

package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// TestUpgradeThroughForwardPath: a WebSocket-style Upgrade through the
// absolute-URI path switches protocols and relays both ways, and is logged
// with its bytes (it used to end in a 502 after the upstream had the
// request).
func TestUpgradeThroughForwardPath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw) // echo until the client closes
	}))
	defer srv.Close()
	port := serverPort(t, srv)
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"ws.example.org": loopback},
		Rules:    []plan.Rule{{Host: "ws.example.org", Ports: []int{port}, AllowPrivate: true, From: "//p.star:1:1"}},
	})
	c, err := tp.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET http://ws.example.org:%d/ HTTP/1.1\r\nHost: ws.example.org:%d\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", port, port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("the upgrade got %s: %s", resp.Status, b)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("no echo through the upgraded connection: %q, %v", line, err)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, br)
	ev := tp.log.waitEvents(t, 1)[0]
	if ev.Status != http.StatusSwitchingProtocols || !ev.Allowed || ev.BytesUp < 5 || ev.BytesDown < 5 {
		t.Errorf("the upgrade's log line: %+v", ev)
	}
}

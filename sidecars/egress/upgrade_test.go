package egress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

// upgradeServer is a destination that switches every request with
// "Upgrade: test" to that protocol and then runs handle on the connection.
// The 101 stays buffered in rw until handle flushes it, so that what handle
// writes first can reach the proxy in the same segment.
func upgradeServer(t *testing.T, handle func(c net.Conn, rw *bufio.ReadWriter)) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "test" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		handle(c, rw)
		rw.Flush()
	}))
	t.Cleanup(srv.Close)
	return serverPort(t, srv)
}

// upgradeProxy runs a proxy that lets ws.example.org:port through.
func upgradeProxy(t *testing.T, port int, idle time.Duration) *testProxy {
	t.Helper()
	return startProxy(t, "tcp", Options{
		Resolver:    fakeResolver{"ws.example.org": loopback},
		Rules:       []plan.Rule{{Host: "ws.example.org", Ports: []int{port}, AllowPrivate: true}},
		IdleTimeout: idle,
	})
}

// openUpgrade sends an upgrade request to ws.example.org:port through the
// proxy's forward path and returns the switched connection and its reader.
func openUpgrade(t *testing.T, dial func() (net.Conn, error), port int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET http://ws.example.org:%d/ HTTP/1.1\r\nHost: ws.example.org:%d\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n", port, port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("the upgrade got %s: %s", resp.Status, b)
	}
	return c, br
}

// TestUpgradeCountsBothWays: the log line of an upgraded connection counts
// what the client sent and what it got after the switch, each its own way,
// including bytes that came in one segment with the 101.
func TestUpgradeCountsBothWays(t *testing.T) {
	const up, down = 1000, 3000
	port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.WriteString("hello ") // with the 101
		rw.Flush()
		if _, err := io.CopyN(io.Discard, rw, up); err != nil {
			return
		}
		rw.WriteString(strings.Repeat("d", down-len("hello ")))
	})
	tp := upgradeProxy(t, port, 0)
	c, br := openUpgrade(t, tp.dial, port)
	if _, err := io.WriteString(c, strings.Repeat("u", up)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(br)
	if err != nil || len(b) != down {
		t.Fatalf("got %d bytes, %v; want %d", len(b), err, down)
	}
	c.Close() // the relay ends when both directions have
	ev := tp.log.waitEvents(t, 1)[0]
	if ev.Status != http.StatusSwitchingProtocols || ev.BytesUp != up || ev.BytesDown != down || ev.Error != "" {
		t.Errorf("log line: %+v; want status 101, %d bytes up, %d down", ev, up, down)
	}
}

// TestUpgradeIdleTimeout: an upgraded connection is closed once no byte
// has moved either way for the idle timeout, and traffic in either
// direction alone keeps it open.
func TestUpgradeIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	const ticks = 9 // one byte every idle/3: three idle timeouts' worth
	check := func(t *testing.T, tp *testProxy, start time.Time, closed time.Time) Event {
		t.Helper()
		if lasted := closed.Sub(start); lasted < 3*idle || lasted > 3*idle+idle+time.Second {
			t.Errorf("the connection lasted %v; want about %v", lasted, 4*idle)
		}
		ev := tp.log.waitEvents(t, 1)[0]
		if !strings.Contains(ev.Error, "without traffic") {
			t.Errorf("log line: %+v; want it closed for idleness", ev)
		}
		return ev
	}
	t.Run("destination talks", func(t *testing.T) {
		port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
			for range ticks {
				rw.WriteByte('.')
				if rw.Flush() != nil {
					return
				}
				time.Sleep(idle / 3)
			}
			io.Copy(io.Discard, rw)
		})
		tp := upgradeProxy(t, port, idle)
		_, br := openUpgrade(t, tp.dial, port)
		start := time.Now()
		b, err := io.ReadAll(br)
		closed := time.Now()
		if string(b) != strings.Repeat(".", ticks) {
			t.Errorf("got %q, %v; the connection was cut while the destination was sending", b, err)
		}
		if ev := check(t, tp, start, closed); ev.BytesDown != ticks {
			t.Errorf("log line: %+v; want %d bytes down", ev, ticks)
		}
	})
	t.Run("client talks", func(t *testing.T) {
		got := make(chan int64, 1)
		port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
			rw.Flush()
			n, _ := io.Copy(io.Discard, rw)
			got <- n
		})
		tp := upgradeProxy(t, port, idle)
		c, br := openUpgrade(t, tp.dial, port)
		start := time.Now()
		for range ticks {
			if _, err := c.Write([]byte{'.'}); err != nil {
				t.Fatalf("the connection was cut while the client was sending: %v", err)
			}
			time.Sleep(idle / 3)
		}
		_, err := br.ReadByte()
		closed := time.Now()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v; want the connection closed", err)
		}
		if n := <-got; n != ticks {
			t.Errorf("the destination got %d bytes, want %d", n, ticks)
		}
		if ev := check(t, tp, start, closed); ev.BytesUp != ticks {
			t.Errorf("log line: %+v; want %d bytes up", ev, ticks)
		}
	})
}

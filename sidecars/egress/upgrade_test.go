package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// TestUpgradeThroughForwardPath: a WebSocket-style Upgrade through the
// absolute-URI path switches protocols and relays both ways, and is logged
// with its bytes (it used to end in a 502 after the upstream had the
// request).
func TestUpgradeThroughForwardPath(t *testing.T) {
	port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		io.Copy(c, rw) // echo until the client closes
	})
	tp := upgradeProxy(t, port, 0)
	c, br := openUpgrade(t, tp.dial, port, "")
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
// proxy's forward path, with early right behind it in the same write, and
// returns the switched connection and its reader.
func openUpgrade(t *testing.T, dial func() (net.Conn, error), port int, early string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET http://ws.example.org:%d/ HTTP/1.1\r\nHost: ws.example.org:%d\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n%s", port, port, early)
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
	c, br := openUpgrade(t, tp.dial, port, "")
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
		_, br := openUpgrade(t, tp.dial, port, "")
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
		c, br := openUpgrade(t, tp.dial, port, "")
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

// TestStopClosesHijacked: Shutdown and Close close open tunnels and
// upgraded connections, also one whose client reads nothing while the
// destination sends, and each is logged with its bytes before they return.
func TestStopClosesHijacked(t *testing.T) {
	const grace = 200 * time.Millisecond
	echoPort := echoServer(t, echo)
	floodPort := echoServer(t, func(c net.Conn) {
		for {
			if _, err := c.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	})
	echoUpgrade := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		io.Copy(c, rw)
	})
	floodUpgrade := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		for {
			if _, err := c.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	})
	stops := map[string]func(*testProxy) error{
		"Shutdown": func(tp *testProxy) error {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			return tp.Shutdown(ctx)
		},
		"Close": func(tp *testProxy) error { return tp.Close() },
	}
	for stopName, stop := range stops {
		for _, tc := range []struct {
			name    string
			port    int
			upgrade bool
			flood   bool
		}{
			{"tunnel", echoPort, false, false},
			{"upgrade", echoUpgrade, true, false},
			{"tunnel, client not reading", floodPort, false, true},
			{"upgrade, client not reading", floodUpgrade, true, true},
		} {
			t.Run(stopName+"/"+tc.name, func(t *testing.T) {
				tp := startProxy(t, "tcp", Options{
					Resolver: fakeResolver{"ws.example.org": loopback},
					Rules:    []plan.Rule{{Host: "ws.example.org", Ports: []int{tc.port}, AllowPrivate: true}},
				})
				var c net.Conn
				var r io.Reader
				if tc.upgrade {
					c, r = openUpgrade(t, tp.dial, tc.port, "")
				} else {
					c = tp.openTunnel(t, fmt.Sprintf("ws.example.org:%d", tc.port))
					r = c
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.flood {
					// Let the buffers between destination and client fill.
					io.ReadFull(r, make([]byte, 1000))
					time.Sleep(100 * time.Millisecond)
				} else {
					io.WriteString(c, "ping\n")
					if b := make([]byte, 5); !readFull(r, b) || string(b) != "ping\n" {
						t.Fatalf("no echo: %q", b)
					}
				}
				start := time.Now()
				err := stop(tp)
				took := time.Since(start)
				if took > grace+2*time.Second {
					t.Errorf("%s took %v", stopName, took)
				}
				if stopName == "Shutdown" && err == nil {
					t.Errorf("Shutdown cut an open connection and returned nil")
				}
				// Logged by the time the stop returned.
				evs := tp.log.events(t)
				if len(evs) != 1 {
					t.Fatalf("log after %s: %+v; want one line", stopName, evs)
				}
				ev := evs[0]
				if ev.Error != stoppedText || ev.BytesDown < 5 || !tc.flood && ev.BytesUp != 5 {
					t.Errorf("log line: %+v", ev)
				}
				if !tc.flood {
					if _, err := r.Read(make([]byte, 1)); err != io.EOF {
						t.Errorf("read after %s: %v, want EOF", stopName, err)
					}
				} else {
					// Drain what was buffered before the close.
					if _, err := io.Copy(io.Discard, r); err != nil && !errors.Is(err, syscall.ECONNRESET) {
						t.Errorf("read after %s: %v, want the connection closed", stopName, err)
					}
				}
			})
		}
	}
}

func readFull(r io.Reader, b []byte) bool {
	_, err := io.ReadFull(r, b)
	return err == nil
}

// TestUpgradeHalfClose: a client's end of stream reaches the destination as
// a half-close, as through a tunnel, and the destination's answer after it
// still reaches the client.
func TestUpgradeHalfClose(t *testing.T) {
	port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		b, _ := io.ReadAll(rw)
		fmt.Fprintf(rw, "got %d bytes", len(b))
	})
	tp := upgradeProxy(t, port, 0)
	c, br := openUpgrade(t, tp.dial, port, "")
	io.WriteString(c, strings.Repeat("x", 100000))
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(br)
	if err != nil || string(b) != "got 100000 bytes" {
		t.Fatalf("%q, %v", b, err)
	}
	ev := tp.log.waitEvents(t, 1)[0]
	if ev.BytesUp != 100000 || ev.BytesDown != int64(len("got 100000 bytes")) || ev.Error != "" {
		t.Errorf("log line: %+v", ev)
	}
}

// TestUpgradeEarlyBytes: bytes the client sends right behind its upgrade
// request, before it has the 101, are passed on, as after a CONNECT.
func TestUpgradeEarlyBytes(t *testing.T) {
	port := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		io.Copy(c, rw)
	})
	tp := upgradeProxy(t, port, 0)
	c, br := openUpgrade(t, tp.dial, port, "early\n")
	line, err := br.ReadString('\n')
	if line != "early\n" {
		t.Fatalf("echo of the early bytes: %q, %v", line, err)
	}
	c.Close()
	if ev := tp.log.waitEvents(t, 1)[0]; ev.BytesUp != 6 || ev.BytesDown != 6 {
		t.Errorf("log line: %+v", ev)
	}
}

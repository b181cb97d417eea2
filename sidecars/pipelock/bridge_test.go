package pipelock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartBridgeStop runs the stand-in as pipelock would run in a bottle:
// started on loopback, reached through a unix-socket bridge, stopped.
func TestStartBridgeStop(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	p, err := Start(ctx, fakeBin, renderFile(t, rule("api.anthropic.com", false)), &logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	host, _, err := net.SplitHostPort(p.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q (%v), want a 127.0.0.1 address", p.Addr(), err)
	}
	resp, err := http.Get("http://" + p.Addr() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health: %s", resp.Status)
	}

	sock := filepath.Join(t.TempDir(), "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithCancel(ctx)
	bridged := make(chan error, 1)
	go func() { bridged <- Bridge(bctx, ln, p.Addr()) }()

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	conn.Close()
	if r.StatusCode != http.StatusForbidden || string(body) != "CONNECT blocked: domain not in allowlist: evil.example\n" {
		t.Errorf("CONNECT through the bridge: %s %q", r.Status, body)
	}

	cancel()
	if err := <-bridged; err != nil {
		t.Errorf("Bridge after cancel: %v", err)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("the bridge's socket still accepts after cancel")
	}

	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop: %v\n%s", err, logs.String())
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("pipelock still listens after Stop")
	}
	for _, want := range []string{`"event":"startup"`, "Pipelock v2.3.0 starting", "Pipelock stopped.", `"event":"shutdown"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("pipelock's output lacks %q:\n%s", want, logs.String())
		}
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestBridgeRelay checks bytes both ways and half-closes both ways.
func TestBridgeRelay(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	received := make(chan string, 1)
	go func() {
		c, err := tcp.Accept()
		if err != nil {
			received <- err.Error()
			return
		}
		defer c.Close()
		// Send first and half-close, then read the client's bytes to EOF:
		// the client sees our EOF while its own write half is still open.
		io.WriteString(c, "hello from pipelock")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil {
			received <- err.Error()
			return
		}
		received <- string(b)
	}()

	sock := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bridged := make(chan error, 1)
	go func() { bridged <- Bridge(ctx, ln, tcp.Addr().String()) }()
	defer func() {
		cancel()
		if err := <-bridged; err != nil {
			t.Errorf("Bridge: %v", err)
		}
	}()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello from pipelock" {
		t.Fatalf("client read %q, %v", got, err)
	}
	payload := strings.Repeat("x", 1<<20) + "end"
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-received:
		if s != payload {
			t.Errorf("server received %d bytes, want %d", len(s), len(payload))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the client's half-close")
	}
}

// TestBridgeCancelClosesConnections checks that ending ctx closes relayed
// connections that are still open.
func TestBridgeCancelClosesConnections(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open until the listener closes
		}
	}()
	sock := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bridged := make(chan error, 1)
	go func() { bridged <- Bridge(ctx, ln, tcp.Addr().String()) }()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "x") // make sure the relay is up
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-bridged:
		if err != nil {
			t.Errorf("Bridge: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Bridge did not return after cancel")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes from a connection Bridge should have closed", n)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the relayed connection stayed open after cancel")
	}
}

// startBridge runs Bridge on a fresh socket in front of upstream and
// returns the socket's path.
func startBridge(t *testing.T, upstream string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Bridge(ctx, ln, upstream) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Bridge: %v", err)
		}
	})
	return sock
}

// TestBridgeDropsAHalfClosedIdler: when pipelock ends its side of a
// connection whose client never sends or closes (a slowloris, a client
// that ignores the close), the bridge lets go of the connection after
// HalfCloseGrace instead of holding its sockets for ever.
func TestBridgeDropsAHalfClosedIdler(t *testing.T) {
	defer func(g time.Duration) { HalfCloseGrace = g }(HalfCloseGrace)
	HalfCloseGrace = 200 * time.Millisecond
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	released := make(chan time.Duration, 1)
	go func() {
		c, err := tcp.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// pipelock's side: it is done sending, and waits to see the
		// connection go.
		start := time.Now()
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		released <- time.Since(start)
	}()
	sock := startBridge(t, tcp.Addr().String())
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // the client holds on, sending nothing
	select {
	case d := <-released:
		if d < HalfCloseGrace/2 {
			t.Errorf("the bridge let go after %v, before the grace of %v", d, HalfCloseGrace)
		}
	case <-time.After(20 * HalfCloseGrace):
		t.Errorf("the bridge still holds the connection %v after pipelock's side ended", 20*HalfCloseGrace)
	}
}

// TestBridgeCapsConnections: past MaxConns, connections are closed at
// once, and the bridge keeps serving once others end.
func TestBridgeCapsConnections(t *testing.T) {
	defer func(n int) { MaxConns = n }(MaxConns)
	MaxConns = 4
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }() // echo until EOF
		}
	}()
	sock := startBridge(t, tcp.Addr().String())
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	var held []net.Conn
	for i := 0; i < 2; i++ { // two relayed connections: four sockets
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		if err := echo(c); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	extra, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(extra); err == nil {
		t.Errorf("a connection past MaxConns was relayed")
	}
	extra.Close()
	for _, c := range held {
		c.Close()
	}
	// Once the held ones are gone, a new one is served again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil && echo(c) == nil {
			c.Close()
			break
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge did not serve again after the held connections ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

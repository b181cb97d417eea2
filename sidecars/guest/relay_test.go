package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// unixServer serves handle on a fresh unix socket in a temporary directory
// and returns its path. It stops when the test ends.
func unixServer(t testing.TB, handle func(*net.UnixConn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sidecar.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				handle(conn)
			})
		}
	})
	return path
}

// startRelay serves a relay to socket on an ephemeral loopback port and
// returns its address and a buffer collecting its log. The relay stops, and
// Serve's result is checked, when the test ends.
func startRelay(t testing.TB, socket string) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := &syncBuffer{}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, socket, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), log
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func dialTCP(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

// TestRelayClientHalfClose: the client sends, shuts down its write half, and
// reads the server's reply, which the server writes only after seeing EOF.
func TestRelayClientHalfClose(t *testing.T) {
	sock := unixServer(t, func(c *net.UnixConn) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%d %x", n, h.Sum(nil))
	})
	addr, _ := startRelay(t, sock)
	c := dialTCP(t, addr)

	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.CloseWrite()
	}()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	want := fmt.Sprintf("%d %x", len(payload), sha256.Sum256(payload))
	if string(reply) != want {
		t.Errorf("reply after EOF = %q, want %q", reply, want)
	}
}

// TestRelayServerHalfClose: the server sends and shuts down its write half,
// then reads what the client sends after seeing EOF.
func TestRelayServerHalfClose(t *testing.T) {
	got := make(chan string, 1)
	sock := unixServer(t, func(c *net.UnixConn) {
		io.WriteString(c, "greeting")
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	addr, _ := startRelay(t, sock)
	c := dialTCP(t, addr)
	greeting, err := io.ReadAll(c)
	if err != nil || string(greeting) != "greeting" {
		t.Fatalf("read to EOF = %q, %v", greeting, err)
	}
	if _, err := io.WriteString(c, "answer after EOF"); err != nil {
		t.Fatalf("write after EOF: %v", err)
	}
	c.CloseWrite()
	select {
	case s := <-got:
		if s != "answer after EOF" {
			t.Errorf("server read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server never saw the client's data and EOF")
	}
	// Both directions are done, so the relay closes the connection.
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after both halves closed: read %d, %v; want EOF", n, err)
	}
}

// TestRelayManyConnections relays concurrent echo sessions and checks every
// byte comes back on the right connection.
func TestRelayManyConnections(t *testing.T) {
	sock := unixServer(t, func(c *net.UnixConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	addr, _ := startRelay(t, sock)
	const conns, size = 64, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			payload := make([]byte, size)
			rand.Read(payload)
			go func() {
				c.Write(payload)
				c.(*net.TCPConn).CloseWrite()
			}()
			echo, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			if !bytes.Equal(echo, payload) {
				errs <- fmt.Errorf("connection %d: echo of %d bytes differs (got %d bytes)", i, size, len(echo))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRelaySidecarDown: a client of a dead sidecar is disconnected at once,
// and the outage is logged once, not once per connection.
func TestRelaySidecarDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "later.sock")
	addr, log := startRelay(t, sock)
	for range 3 {
		c := dialTCP(t, addr)
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes from a relay whose sidecar is down", n)
		}
	}
	if got := strings.Count(log.String(), "\n"); got != 1 || !strings.Contains(log.String(), sock) {
		t.Fatalf("log after 3 failed dials = %q; want one line naming %s", log.String(), sock)
	}

	// The sidecar comes up: connections work and the next outage is
	// reported again.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, "up")
			c.Close()
		}
	}()
	c := dialTCP(t, addr)
	if b, err := io.ReadAll(c); err != nil || string(b) != "up" {
		t.Fatalf("through the revived sidecar: %q, %v", b, err)
	}
	ln.Close()
	c = dialTCP(t, addr)
	c.Read(make([]byte, 1))
	if got := strings.Count(log.String(), "\n"); got != 2 {
		t.Errorf("log after a second outage = %q; want two lines", log.String())
	}
}

// TestServeStops: cancelling the context closes the listener and the open
// relayed connections, and Serve returns nil.
func TestServeStops(t *testing.T) {
	sock := unixServer(t, func(c *net.UnixConn) { io.Copy(io.Discard, c) })
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, sock, nil) }()

	c := dialTCP(t, ln.Addr().String())
	if _, err := io.WriteString(c, "x"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("open connection still readable after Serve returned (%d bytes)", n)
	}
	if c2, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c2.Close()
		t.Error("listener still accepts after Serve returned")
	}
}

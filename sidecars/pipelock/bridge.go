package pipelock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// bridgeDialTimeout bounds connecting to pipelock for one relayed connection.
const bridgeDialTimeout = 10 * time.Second

// Bounds on what the sandbox can make the bridge hold (an adversarial
// review held thousands of idle connections open through it).
var (
	// HalfCloseGrace is how long a relayed connection may stay open after
	// one direction has ended: pipelock closing a connection (its own
	// timeouts, a refusal) then frees the bridge's side within it.
	HalfCloseGrace = 10 * time.Second
	// MaxConns bounds the sockets the bridge holds at once, the sandbox's
	// side and pipelock's counted alike (so about half as many relayed
	// connections); a connection past it is closed as soon as it is
	// accepted.
	MaxConns = 1024
)

// Bridge accepts connections on ln (the unix socket the sandbox reaches)
// and relays each to a new TCP connection to tcpAddr (pipelock's Addr),
// copying both directions at once. Half-closes pass through: when one
// side stops sending, the write half of the other side's connection is
// shut down (CloseWrite, which *net.TCPConn and *net.UnixConn have; a
// connection without it is only closed at the end). Both connections of a
// pair are closed when both directions are done or either fails. A
// connection whose dial fails is closed at once.
//
// Bridge returns when ctx ends (nil) or when accepting fails for a reason
// other than a momentary shortage of file descriptors or memory (that
// error). Either way it first closes ln and every relayed connection and
// waits for its goroutines.
func Bridge(ctx context.Context, ln net.Listener, tcpAddr string) error {
	b := &bridge{conns: make(map[net.Conn]struct{})}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		b.closeAll()
	})
	defer func() {
		stop()
		ln.Close()
		b.closeAll()
		b.wg.Wait()
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("pipelock bridge: accept on %s: %w", ln.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if b.count() >= MaxConns {
			conn.Close()
			continue
		}
		if !b.track(conn) {
			conn.Close()
			return nil
		}
		b.wg.Go(func() {
			defer b.untrack(conn)
			b.relay(ctx, conn, tcpAddr)
		})
	}
}

// retryableAccept reports whether an accept error is a momentary shortage
// worth waiting out.
func retryableAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// bridge is the state of one Bridge call.
type bridge struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// track records c so closeAll can close it; it reports false once closeAll
// has run.
func (b *bridge) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

// count is the number of relayed connections open now.
func (b *bridge) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

func (b *bridge) untrack(c net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
}

// closeAll closes every tracked connection and refuses new ones.
func (b *bridge) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
}

// relay connects client to tcpAddr and copies between them.
func (b *bridge) relay(ctx context.Context, client net.Conn, tcpAddr string) {
	defer client.Close()
	d := net.Dialer{Timeout: bridgeDialTimeout}
	upstream, err := d.DialContext(ctx, "tcp", tcpAddr)
	if err != nil {
		return
	}
	if !b.track(upstream) {
		upstream.Close()
		return
	}
	defer b.untrack(upstream)
	pipe(client, upstream)
}

// pipe copies a to b and b to a at the same time. When a direction reaches
// EOF it shuts down the write half of its destination, and the other
// direction gets HalfCloseGrace to finish; when a direction fails it
// closes both connections, which ends the other direction too. Both are
// closed when pipe returns.
func pipe(a, b net.Conn) {
	abort := func() {
		a.Close()
		b.Close()
	}
	linger := func() {
		t := time.Now().Add(HalfCloseGrace)
		a.SetDeadline(t)
		b.SetDeadline(t)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if finish(b, copyConn(b, a)) != nil {
			abort()
			return
		}
		linger()
	}()
	if finish(a, copyConn(a, b)) != nil {
		abort()
	} else {
		linger()
	}
	<-done
	abort()
}

// copyConn copies src to dst until EOF (nil) or an error.
func copyConn(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	return err
}

// finish ends one direction: after a clean EOF (err nil) it shuts down
// dst's write half, so the peer on dst sees the end of the stream. It
// returns err, or the error of the shutdown.
func finish(dst net.Conn, err error) error {
	if err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

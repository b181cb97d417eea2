// Package relay copies connections accepted on one listener to fresh
// connections dialled elsewhere: bottle guest's loopback-to-socket relay in
// the sandbox and the pipelock unit's socket-to-TCP bridge share it.
package relay

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

// Options says where a Serve relays to and how.
type Options struct {
	// Dial connects to the destination for one accepted connection.
	Dial func(ctx context.Context) (net.Conn, error)
	// DialFailed, when set, is told of each failed dial; Dialled of each
	// successful one.
	DialFailed func(client net.Conn, err error)
	Dialled    func()
	// AcceptRetry, when set, is told of each momentary accept failure
	// (file descriptors, memory) and the wait before the next try.
	AcceptRetry func(err error, wait time.Duration)
	// HalfCloseGrace, when positive, is how long a connection may stay
	// open once one direction has ended; 0 waits for both.
	HalfCloseGrace time.Duration
	// MaxConns, when positive, bounds the sockets held at once (both
	// sides counted); a connection past it is closed when accepted.
	MaxConns int
}

// Serve accepts connections on ln and relays each to a connection from
// o.Dial, copying both directions at once and passing half-closes through:
// when one side stops sending, the write half of the other side's
// connection is shut down; both are closed once both directions are done
// or either fails.
//
// Serve returns when ctx is done (nil) or when accepting fails for good
// (the error). Either way it first closes ln and every relayed connection
// and waits for their goroutines.
func Serve(ctx context.Context, ln net.Listener, o Options) error {
	s := &server{o: o, conns: make(map[io.Closer]struct{})}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.closeAll()
	})
	defer func() {
		stop()
		ln.Close()
		s.closeAll()
		s.wg.Wait()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if o.AcceptRetry != nil {
				o.AcceptRetry(err, backoff)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if o.MaxConns > 0 && s.count() >= o.MaxConns {
			conn.Close()
			continue
		}
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		s.wg.Go(func() {
			defer s.untrack(conn)
			s.relay(ctx, conn)
		})
	}
}

// retryableAccept reports whether an accept error is a momentary shortage
// (file descriptors, memory, an aborted handshake) worth waiting out.
func retryableAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// server is the state of one Serve call.
type server struct {
	o  Options
	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{}
}

// track records c so closeAll can close it; it reports false once closeAll
// has run.
func (s *server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *server) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// count is the number of sockets held now, both sides counted.
func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll closes every tracked connection and refuses new ones.
func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// relay dials for client and copies between the two.
func (s *server) relay(ctx context.Context, client net.Conn) {
	defer client.Close()
	upstream, err := s.o.Dial(ctx)
	if err != nil {
		if s.o.DialFailed != nil {
			s.o.DialFailed(client, err)
		}
		return
	}
	if s.o.Dialled != nil {
		s.o.Dialled()
	}
	if !s.track(upstream) {
		upstream.Close()
		return
	}
	defer s.untrack(upstream)
	pipe(client, upstream, s.o.HalfCloseGrace)
}

// copyBufSize is the buffer size for copying from the destination back.
const copyBufSize = 64 << 10

// copyBufs holds buffers of copyBufSize for reuse across connections.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// pipe copies client to upstream and upstream to client at the same time.
// When a direction reaches EOF it shuts down the write half of its
// destination (and, with a grace, gives the other direction that long);
// when a direction fails it closes both connections, which ends the other
// direction too. Both connections are closed when pipe returns.
func pipe(client, upstream net.Conn, grace time.Duration) {
	abort := func() {
		client.Close()
		upstream.Close()
	}
	linger := func() {
		if grace > 0 {
			t := time.Now().Add(grace)
			client.SetDeadline(t)
			upstream.SetDeadline(t)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A TCP client is spliced into a unix socket (TCPConn.WriteTo).
		_, err := io.Copy(upstream, client)
		if finish(upstream, err) != nil {
			abort()
			return
		}
		linger()
	}()
	// A plain copy, hiding ReadFrom: splice(2) from a unix socket into
	// TCP was about 20% slower in bottle guest's BenchmarkRelay.
	buf := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(struct{ io.Writer }{client}, struct{ io.Reader }{upstream}, *buf)
	copyBufs.Put(buf)
	if finish(client, err) != nil {
		abort()
	} else {
		linger()
	}
	<-done
	abort()
}

// finish ends one direction: after a clean EOF (err nil) it shuts down
// dst's write half, when dst has one, so the peer on dst sees the end of
// the stream. It returns err, or the error of the shutdown.
func finish(dst net.Conn, err error) error {
	if err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

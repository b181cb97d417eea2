package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// dialTimeout bounds connecting to a sidecar socket for one relayed
// connection.
const dialTimeout = 10 * time.Second

// Serve accepts connections on ln and relays each to a fresh connection to
// the unix socket at socket, copying both directions (client to sidecar with
// splice(2) on Linux) and passing half-closes through: when one side stops sending, the
// other side's write half is shut down, and both connections are closed once
// both directions are done or either fails.
//
// Serve returns when ctx is done (nil) or when accepting fails for good (the
// error). Either way it first closes ln and every relayed connection and waits
// for their goroutines. A sidecar that cannot be dialled is reported to log
// (nil discards) once, and again only after a dial has succeeded in between,
// so a dead sidecar does not flood the agent's terminal.
func Serve(ctx context.Context, ln *net.TCPListener, socket string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	s := &server{socket: socket, log: log, conns: make(map[io.Closer]struct{})}
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
		conn, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			fmt.Fprintf(log, "bottle guest: accept on %s: %v; retrying in %v\n", ln.Addr(), err, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
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
	socket  string
	log     io.Writer
	failing atomic.Bool // the last dial failed and was reported
	wg      sync.WaitGroup

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

// untrack forgets c.
func (s *server) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
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

// relay connects client to a fresh connection to the sidecar socket and
// copies between them until both directions are done.
func (s *server) relay(ctx context.Context, client *net.TCPConn) {
	defer client.Close()
	dialer := net.Dialer{Timeout: dialTimeout}
	c, err := dialer.DialContext(ctx, "unix", s.socket)
	if err != nil {
		if !s.failing.Swap(true) {
			fmt.Fprintf(s.log, "bottle guest: relay %s -> %s: %v\n", client.LocalAddr(), s.socket, err)
		}
		return
	}
	s.failing.Store(false)
	upstream := c.(*net.UnixConn)
	if !s.track(upstream) {
		upstream.Close()
		return
	}
	defer s.untrack(upstream)
	pipe(client, upstream)
}

// copyBufSize is the buffer size for copying from a sidecar to a client.
const copyBufSize = 64 << 10

// copyBufs holds buffers of copyBufSize for reuse across connections.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// pipe copies client to upstream and upstream to client at the same time.
// When a direction reaches EOF it shuts down the write half of its
// destination; when a direction fails it closes both connections, which ends
// the other direction too. Both connections are closed when pipe returns.
func pipe(client *net.TCPConn, upstream *net.UnixConn) {
	abort := func() {
		client.Close()
		upstream.Close()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// TCPConn.WriteTo splices into the unix socket.
		_, err := io.Copy(upstream, client)
		if finish(upstream, err) != nil {
			abort()
		}
	}()
	// A plain copy, hiding TCPConn.ReadFrom: splice(2) from a unix socket
	// into TCP was about 20% slower in BenchmarkRelay.
	buf := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(struct{ io.Writer }{client}, struct{ io.Reader }{upstream}, *buf)
	copyBufs.Put(buf)
	if finish(client, err) != nil {
		abort()
	}
	<-done
	abort()
}

// finish ends one direction: after a clean EOF (err nil) it shuts down dst's
// write half, so the peer on dst sees the end of the stream. It returns err,
// or the error from the shutdown.
func finish(dst interface{ CloseWrite() error }, err error) error {
	if err != nil {
		return err
	}
	return dst.CloseWrite()
}

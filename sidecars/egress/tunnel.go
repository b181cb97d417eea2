package egress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tunnel is one CONNECT tunnel between a client and its destination.
type tunnel struct {
	client, upstream net.Conn
	// up and down count bytes from the client to the destination and back.
	up, down  atomic.Int64
	closeOnce sync.Once
	// stopped is set when the proxy closed the tunnel because it stops.
	stopped atomic.Bool
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.client.Close()
		t.upstream.Close()
	})
}

func (t *tunnel) shut() {
	t.stopped.Store(true)
	t.close()
}

// genericCopyBuffer is the buffer size of the copy loop used where the
// kernel cannot splice.
const genericCopyBuffer = 64 << 10

// forceCountedCopy makes tunnels copy through memory even where the
// kernel could splice; tests set it to cover that path.
var forceCountedCopy = false

// run moves bytes both ways until both directions have ended or no byte has
// moved in either direction for idle, then closes both connections. An end
// of stream in one direction is passed on as a half-close, so the other
// direction goes on. It returns why the tunnel ended abnormally, or nil.
//
// Both directions count their bytes as they pass, and idleness is read
// from those counts. The client-bound direction runs on a goroutine of its
// own, the other on the caller's, and the idle watch on a timer: a tunnel
// costs one goroutine more than its handler. The caller has answered the
// client already; run turns on the destination's TCP keep-alive (see
// keepAlive).
func (t *tunnel) run(idle time.Duration) error {
	keepAlive(t.upstream)
	progress := func() uint64 { return uint64(t.up.Load() + t.down.Load()) }
	watch := startIdleWatch(idle, progress, t.close)
	down := make(chan error, 1)
	go func() { down <- t.pipe(t.client, t.upstream, &t.down) }()
	upErr := t.pipe(t.upstream, t.client, &t.up)
	downErr := <-down
	idled := watch.end()
	t.close()
	if idled {
		return fmt.Errorf("closed after %s without traffic", idle)
	}
	if err := errors.Join(upErr, downErr); err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	return nil
}

// pipe copies src to dst until src ends, then half-closes dst. On an error
// it closes the whole tunnel; errors caused by that close are not reported.
func (t *tunnel) pipe(dst, src net.Conn, n *atomic.Int64) error {
	handled, err := false, error(nil)
	if !forceCountedCopy {
		handled, err = spliceRelay(dst, src, n)
	}
	if !handled {
		buf := make([]byte, genericCopyBuffer)
		_, err = io.CopyBuffer(writerOnly{dst}, &countingReader{r: src, n: n}, buf)
	}
	if err != nil {
		t.close()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.close()
			return fmt.Errorf("half-close: %w", err)
		}
		return nil
	}
	// Without a half-close the other direction might wait forever.
	t.close()
	return nil
}

// watchIdle calls stop once progress has not changed for idle, unless done
// is closed first, and reports whether it did (see startIdleWatch).
func watchIdle(idle time.Duration, progress func() uint64, done <-chan struct{}, stop func()) bool {
	w := startIdleWatch(idle, progress, stop)
	<-done
	return w.end()
}

// idleWatch calls stop once progress has not changed for idle. It checks
// on a timer every idle/8, at most every minute, so a connection is
// stopped between idle and idle plus that period after its last byte; it
// needs no goroutine between checks.
type idleWatch struct {
	idle, period time.Duration
	progress     func() uint64
	stop         func()
	timer        *time.Timer

	mu      sync.Mutex
	last    uint64
	since   time.Time
	ended   bool // end was called
	stopped bool // stop was called
}

// startIdleWatch starts watching progress; the caller calls end.
func startIdleWatch(idle time.Duration, progress func() uint64, stop func()) *idleWatch {
	w := &idleWatch{
		idle:     idle,
		period:   min(max(idle/8, time.Millisecond), time.Minute),
		progress: progress,
		stop:     stop,
		last:     progress(),
		since:    time.Now(),
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(w.period, w.check)
	return w
}

func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	now := time.Now()
	if p := w.progress(); p != w.last {
		w.last, w.since = p, now
	} else if now.Sub(w.since) >= w.idle {
		w.stopped = true
		w.stop()
		return
	}
	w.timer.Reset(w.period)
}

// end stops the watch and reports whether it called stop.
func (w *idleWatch) end() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	w.timer.Stop()
	return w.stopped
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// writerOnly hides a connection's ReadFrom, so that io.CopyBuffer uses the
// counting reader and its buffer.
type writerOnly struct{ io.Writer }

// keepAlive turns on TCP keep-alive on a connection Proxy.dial made, with
// the settings a net.Dialer would have used (probes after 15 s idle). The
// dial leaves it off, so that its four system calls come after a tunnel's
// answer instead of before.
func keepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	}
}

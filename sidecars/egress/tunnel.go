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
// Both directions count their bytes as they pass (spliceRelay, or a copy
// loop through memory), and idleness is read from those counts.
func (t *tunnel) run(idle time.Duration) error {
	progress := func() uint64 { return uint64(t.up.Load() + t.down.Load()) }
	var wg sync.WaitGroup
	var upErr, downErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		upErr = t.pipe(t.upstream, t.client, &t.up)
	}()
	go func() {
		defer wg.Done()
		downErr = t.pipe(t.client, t.upstream, &t.down)
	}()
	done := make(chan struct{})
	idled := make(chan bool, 1)
	go func() { idled <- watchIdle(idle, progress, done, t.close) }()
	wg.Wait()
	close(done)
	t.close()
	if <-idled {
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
// is closed first, and reports whether it did. It checks every idle/8, at
// most every minute, so a connection is stopped between idle and idle plus
// that period after its last byte.
func watchIdle(idle time.Duration, progress func() uint64, done <-chan struct{}, stop func()) bool {
	period := min(max(idle/8, time.Millisecond), time.Minute)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	last, since := progress(), time.Now()
	for {
		select {
		case <-done:
			return false
		case now := <-ticker.C:
			if p := progress(); p != last {
				last, since = p, now
			} else if now.Sub(since) >= idle {
				stop()
				return true
			}
		}
	}
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

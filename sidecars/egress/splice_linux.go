package egress

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spliceChunk is the most a splice moves into a pipe at once, and the size
// each pipe is given, as Go's own splice pipes have.
const spliceChunk = 1 << 20

// spliceRelay copies src to dst until src ends, through a pipe in the
// kernel (splice(2)), counting the bytes written to dst in n as they go.
// It reports handled false, having moved nothing, when src and dst are not
// both stream sockets that the kernel splices, so that the caller copies
// some other way.
//
// io.Copy splices too, but takes a pipe from Go's pool for the whole copy
// (internal/poll.Splice, splice_linux.go:34-38@go1.26.8), so that an idle
// tunnel holds two 1 MiB pipes. A user without CAP_SYS_RESOURCE, as the
// sidecar runs, may hold fs.pipe-user-pages-soft (64 MiB) of pipes; past
// that the kernel gives new pipes two pages, and new transfers crawl.
// spliceRelay waits for src to become readable without a pipe, and gives
// its pipe back whenever src has nothing to read, so that only tunnels
// moving bytes hold pipes.
func spliceRelay(dst, src net.Conn, n *atomic.Int64) (handled bool, err error) {
	srcRaw, ok := spliceable(src)
	if !ok {
		return false, nil
	}
	dstRaw, ok := spliceable(dst)
	if !ok {
		return false, nil
	}
	s := &splicer{n: n}
	defer s.release()
	// Made once, not per chunk: a closure handed to the raw connection
	// escapes to the heap.
	fill := s.fill
	pump := s.pump
	for {
		if err := srcRaw.Read(fill); err != nil {
			return true, err
		}
		switch {
		case s.noPipe:
			// No pipe to be had (the pipe budget or the descriptors
			// are spent): copy what there is to read through memory
			// instead.
			s.noPipe = false
			if eof, err := copyOnce(dst, src, n); eof || err != nil {
				return true, err
			}
			s.moved = true
			continue
		case s.err == unix.EINVAL && !s.moved:
			return false, nil
		case s.err != nil:
			return true, os.NewSyscallError("splice", s.err)
		case s.inPipe == 0:
			return true, nil // src's end of stream
		}
		s.moved = true
		if err := dstRaw.Write(pump); err != nil {
			return true, err
		}
		if s.err != nil {
			return true, os.NewSyscallError("splice", s.err)
		}
	}
}

// spliceable returns c's raw connection when c is a TCP or unix stream
// connection.
func spliceable(c net.Conn) (syscall.RawConn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		return rc, err == nil
	case *net.UnixConn:
		// Not a packet socket (unixgram, unixpacket).
		if a, ok := c.LocalAddr().(*net.UnixAddr); !ok || a == nil || a.Net != "unix" {
			return nil, false
		}
		rc, err := c.SyscallConn()
		return rc, err == nil
	}
	return nil, false
}

// splicer is the state of one direction of spliceRelay.
type splicer struct {
	n *atomic.Int64
	p *splicePipe // held while src has bytes to read
	// inPipe is how many bytes the pipe holds.
	inPipe int
	// err is the last splice's error other than EAGAIN and EINTR.
	err error
	// noPipe is set when fill could not get a pipe and src has bytes to
	// read, its end or an error.
	noPipe bool
	peek   [1]byte
	// moved is set once bytes moved.
	moved bool
}

// fill splices what src has to read into the pipe, taking one when it
// holds none. When src has nothing to read it gives the pipe back and
// reports false, so that the raw connection waits for src to be readable
// without one.
func (s *splicer) fill(fd uintptr) bool {
	for {
		if s.p == nil {
			if s.p = getPipe(); s.p == nil {
				// Without a pipe, wait for bytes to read and copy
				// them through memory, so that an idle tunnel holds
				// no buffer either.
				_, _, err := unix.Recvfrom(int(fd), s.peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				switch err {
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return false
				}
				s.noPipe = true
				return true
			}
		}
		k, err := unix.Splice(int(fd), nil, s.p.w, nil, spliceChunk, unix.SPLICE_F_NONBLOCK)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The pipe is empty here: pump empties it before fill
			// runs again.
			putPipe(s.p)
			s.p = nil
			return false
		}
		s.inPipe, s.err = int(k), err
		return true
	}
}

// pump splices all the pipe holds into dst, waiting for dst to be
// writable as need be.
func (s *splicer) pump(fd uintptr) bool {
	for s.inPipe > 0 {
		k, err := unix.Splice(s.p.r, nil, int(fd), nil, s.inPipe, unix.SPLICE_F_NONBLOCK)
		if k > 0 {
			s.inPipe -= int(k)
			s.n.Add(k)
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case nil:
			err = io.ErrNoProgress
		}
		s.err = err
		return true
	}
	return true
}

// release gives the pipe back, or closes it when bytes are left in it.
func (s *splicer) release() {
	if s.p == nil {
		return
	}
	if s.inPipe > 0 {
		s.p.destroy()
	} else {
		putPipe(s.p)
	}
	s.p = nil
}

// copyOnce copies one read's worth of src to dst through a pooled buffer
// and reports whether src has ended.
func copyOnce(dst, src net.Conn, n *atomic.Int64) (eof bool, err error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	k, err := src.Read(*bp)
	if k > 0 {
		w, werr := dst.Write((*bp)[:k])
		n.Add(int64(w))
		if werr != nil {
			return false, werr
		}
	}
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, genericCopyBuffer)
	return &b
}}

// splicePipe is a pipe of spliceChunk bytes for splicing, empty whenever
// it is in the pool.
type splicePipe struct {
	r, w    int
	cleanup runtime.Cleanup
}

// pipes holds the pipes of the directions that have nothing to move. The
// garbage collector empties it; each pipe's cleanup closes it then.
var pipes sync.Pool

// pipesShortUntil is when, in Unix nanoseconds, getPipe tries again to
// make pipes after one came out short of spliceChunk: the user's pipe
// budget was spent then.
var pipesShortUntil atomic.Int64

// pipesShortFor is how long getPipe makes no pipes after one came out
// short.
const pipesShortFor = 100 * time.Millisecond

// getPipe returns a pipe of spliceChunk bytes from the pool or a new one,
// or nil when none can be had. The kernel refuses a pipe that size once
// the user's pipe budget is spent and leaves it at two pages; moving bytes
// through such a pipe costs more than copying them through memory, so
// getPipe closes it, returns nil, and makes no pipes for a while.
func getPipe() *splicePipe {
	if p, ok := pipes.Get().(*splicePipe); ok {
		return p
	}
	if time.Now().UnixNano() < pipesShortUntil.Load() {
		return nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, spliceChunk); err != nil {
		closePipe(fds)
		pipesShortUntil.Store(time.Now().Add(pipesShortFor).UnixNano())
		return nil
	}
	p := &splicePipe{r: fds[0], w: fds[1]}
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p
}

// putPipe returns an empty pipe to the pool.
func putPipe(p *splicePipe) { pipes.Put(p) }

func (p *splicePipe) destroy() {
	p.cleanup.Stop()
	closePipe([2]int{p.r, p.w})
}

func closePipe(fds [2]int) {
	unix.Close(fds[0])
	unix.Close(fds[1])
}

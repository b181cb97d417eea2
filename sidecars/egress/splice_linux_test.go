package egress

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// pipeFDs counts this process's open pipe descriptors.
func pipeFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestIdleTunnelsHoldNoPipes opens tunnels that carried bytes both ways and
// then fell idle: they hold no splice pipes, so that a user's pipe budget
// (fs.pipe-user-pages-soft) is spent only on tunnels that move bytes.
func TestIdleTunnelsHoldNoPipes(t *testing.T) {
	const tunnels = 40
	// An echo through memory: io.Copy would splice, and hold pipes of
	// its own in this process.
	port := echoServer(t, func(c net.Conn) {
		io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 1024))
	})
	tp := startProxy(t, "tcp", Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	before := pipeFDs(t)
	for i := range tunnels {
		c := tp.openTunnel(t, fmt.Sprintf("example.com:%d", port))
		defer c.Close()
		roundTrip(t, c, fmt.Sprintf("tunnel %d", i))
	}
	// Pipes of directions that went idle wait in the pool for the next
	// bytes; a few may be left there, none is held per tunnel. (The race
	// detector makes the pool drop some, which stay open until the
	// garbage collector finds them.)
	grown := pipeFDs(t) - before
	for deadline := time.Now().Add(5 * time.Second); grown > 8 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		grown = pipeFDs(t) - before
	}
	if grown > 8 {
		t.Errorf("%d idle tunnels hold %d more pipe descriptors; want none per tunnel", tunnels, grown)
	}
}

// TestTunnelWithoutPipes runs tunnels while no pipe can be had, as once the
// user's pipe budget is spent: their bytes go through memory, all of them
// and counted, and idle ones hold no pipe either.
func TestTunnelWithoutPipes(t *testing.T) {
	pipesShortUntil.Store(time.Now().Add(time.Hour).UnixNano())
	t.Cleanup(func() { pipesShortUntil.Store(0) })
	// Two collections empty the pool; the pipes' cleanups close them.
	runtime.GC()
	runtime.GC()
	bulkEcho(t, "tcp", echoServer(t, echo))
	if p := getPipe(); p != nil {
		t.Error("a pipe was had while the pipe budget was spent")
		p.destroy()
	}
}

package egress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// TestTunnelCarriesBulkBothWays sends several MiB each way at once, through
// a TCP and a unix socket listener, spliced and copied, and checks every
// byte and the logged counts.
func TestTunnelCarriesBulkBothWays(t *testing.T) {
	port := echoServer(t, echo)
	for _, network := range []string{"tcp", "unix"} {
		for _, counted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/counted=%v", network, counted), func(t *testing.T) {
				setCounted(t, counted)
				bulkEcho(t, network, port)
			})
		}
	}
}

// bulkEcho starts a proxy listening on network, sends 8 MiB through a
// tunnel to the echo server on port while reading them back, and checks
// them and the log line.
func bulkEcho(t *testing.T, network string, port int) {
	t.Helper()
	const size = 8 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	tp := startProxy(t, network, Options{
		Resolver: fakeResolver{"example.com": loopback},
		Rules:    []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}},
	})
	c := tp.openTunnel(t, fmt.Sprintf("example.com:%d", port))
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sent := make(chan error, 1)
	go func() {
		// Uneven writes, so that reads and splices see every kind of
		// boundary.
		rest := data
		for len(rest) > 0 {
			n := min(len(rest), 1+len(rest)%300000)
			if _, err := c.Write(rest[:n]); err != nil {
				sent <- err
				return
			}
			rest = rest[n:]
		}
		sent <- c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, not the %d sent", len(got), size)
	}
	c.Close()
	e := tp.log.waitEvents(t, 1)[0]
	if e.BytesUp != size || e.BytesDown != size || e.Error != "" {
		t.Errorf("log line: %+v", e)
	}
}

func TestSpliceRelayLeavesOtherConnectionsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var n atomic.Int64
	handled, err := spliceRelay(a, b, &n)
	if handled || err != nil || n.Load() != 0 {
		t.Errorf("spliceRelay over net.Pipe: handled %v, %v, %d bytes", handled, err, n.Load())
	}
}

// TestSpliceRelayLeavesPacketSocketsAlone: a unixpacket connection keeps
// its message boundaries only when copied through memory.
func TestSpliceRelayLeavesPacketSocketsAlone(t *testing.T) {
	ln, err := net.Listen("unixpacket", filepath.Join(t.TempDir(), "p.sock"))
	if err != nil {
		t.Skip("no unixpacket sockets:", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := net.Dial("unixpacket", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	if handled, err := spliceRelay(c, c, &n); handled || err != nil {
		t.Errorf("spliceRelay over unixpacket: handled %v, %v", handled, err)
	}
}

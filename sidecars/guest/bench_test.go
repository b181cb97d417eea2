package guest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// benchBytes is how much each benchmark operation moves over one connection.
const benchBytes = 1 << 30

// benchChunk is the read and write size of the benchmark's client and server.
const benchChunk = 1 << 20

// streamConn is a connection whose write half can be shut down: a TCP or
// unix stream connection.
type streamConn interface {
	net.Conn
	CloseWrite() error
}

// BenchmarkRelay compares moving 1 GiB per connection through the relay
// (TCP loopback -> relay -> unix socket) with moving it over the unix socket
// directly, in both directions. Compare the MB/s of relay/* with direct/*;
// tcp/* moves the same bytes over one plain TCP loopback connection, the leg
// the relay cannot avoid, which bounds what the relay can reach.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []struct {
		name   string
		server func(streamConn)
		client func(*testing.B, streamConn)
	}{
		{"upload", uploadServer, uploadClient},
		{"download", downloadServer, downloadClient},
	} {
		sock := unixServer(b, func(c *net.UnixConn) { mode.server(c) })
		b.Run("direct/"+mode.name, func(b *testing.B) {
			benchConns(b, "unix", sock, mode.client)
		})
		b.Run("tcp/"+mode.name, func(b *testing.B) {
			benchConns(b, "tcp", tcpServer(b, mode.server), mode.client)
		})
		b.Run("relay/"+mode.name, func(b *testing.B) {
			addr, _ := startRelay(b, sock)
			benchConns(b, "tcp", addr, mode.client)
		})
	}
}

// tcpServer serves handle on an ephemeral loopback TCP port until the
// benchmark ends and returns its address.
func tcpServer(b *testing.B, handle func(streamConn)) string {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln.Addr().String()
}

// benchConns runs client on a fresh connection to addr per operation.
func benchConns(b *testing.B, network, addr string, client func(*testing.B, streamConn)) {
	b.SetBytes(benchBytes)
	for b.Loop() {
		c, err := net.Dial(network, addr)
		if err != nil {
			b.Fatal(err)
		}
		client(b, c.(streamConn))
		c.Close()
	}
}

// uploadServer reads to EOF and acknowledges with one byte when it got
// benchBytes.
func uploadServer(c streamConn) {
	if n, err := drain(c); err == nil && n == benchBytes {
		c.Write([]byte{1})
	}
}

// uploadClient sends benchBytes, half-closes, and waits for the server's
// acknowledgement that it read them all.
func uploadClient(b *testing.B, c streamConn) {
	if err := fill(c, benchBytes); err != nil {
		b.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatalf("no acknowledgement: %v", err)
	}
}

// downloadServer sends benchBytes and half-closes.
func downloadServer(c streamConn) {
	if fill(c, benchBytes) == nil {
		c.CloseWrite()
	}
}

// downloadClient reads to EOF and checks it got benchBytes.
func downloadClient(b *testing.B, c streamConn) {
	n, err := drain(c)
	if err != nil || n != benchBytes {
		b.Fatalf("read %d bytes, %v; want %d", n, err, benchBytes)
	}
}

// fill writes n zero bytes to w in benchChunk writes.
func fill(w io.Writer, n int) error {
	buf := make([]byte, benchChunk)
	for n > 0 {
		m, err := w.Write(buf[:min(n, len(buf))])
		if err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// drain reads r to EOF in benchChunk reads and returns how much it read.
func drain(r io.Reader) (int, error) {
	buf := make([]byte, benchChunk)
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

package egress

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// benchProxy runs a proxy on loopback in front of a server that runs
// handle on each connection, and returns the proxy and the server's address.
func benchProxy(b *testing.B, handle func(net.Conn)) (*testProxy, string) {
	b.Helper()
	port := echoServer(b, handle)
	p, err := New(Options{
		Resolver: fakeResolver{"sink.example.com": loopback},
		Rules:    []plan.Rule{{Host: "sink.example.com", Ports: []int{port}, AllowPrivate: true}},
		Log:      io.Discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(pln)
	b.Cleanup(func() { p.Close() })
	tp := &testProxy{Proxy: p, dial: func() (net.Conn, error) { return net.Dial("tcp", pln.Addr().String()) }}
	return tp, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// sink reads until EOF and answers with one byte.
func sink(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Write([]byte{1})
}

// connect opens a tunnel to the sink through the proxy.
func connect(b *testing.B, tp *testProxy, sinkAddr string) net.Conn {
	b.Helper()
	_, port, _ := net.SplitHostPort(sinkAddr)
	target := "sink.example.com:" + port
	c, err := tp.dial()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	const answer = "HTTP/1.1 200 Connection established\r\n\r\n"
	buf := make([]byte, len(answer))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != answer {
		b.Fatalf("CONNECT: %q, %v", buf, err)
	}
	return c
}

// send writes n bytes to c, half-closes it and waits for the sink's byte.
func send(b *testing.B, c net.Conn, n int64) {
	b.Helper()
	buf := make([]byte, 1<<20)
	for sent := int64(0); sent < n; {
		m, err := c.Write(buf[:min(int64(len(buf)), n-sent)])
		if err != nil {
			b.Fatal(err)
		}
		sent += int64(m)
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	c.Close()
}

// BenchmarkThroughput sends 1 GiB per operation, half directly to the sink
// and half through a tunnel, interleaved in 128 MiB pieces, and reports both
// rates and their ratio.
func BenchmarkThroughput(b *testing.B) {
	tp, sinkAddr := benchProxy(b, sink)
	const piece = 128 << 20
	var direct, proxied time.Duration
	b.SetBytes(1 << 30)
	for b.Loop() {
		for range (1 << 30) / piece / 2 {
			start := time.Now()
			c, err := net.Dial("tcp", sinkAddr)
			if err != nil {
				b.Fatal(err)
			}
			send(b, c, piece)
			direct += time.Since(start)

			start = time.Now()
			send(b, connect(b, tp, sinkAddr), piece)
			proxied += time.Since(start)
		}
	}
	half := float64(b.N) * (1 << 29) / 1e6
	b.ReportMetric(half/direct.Seconds(), "direct-MB/s")
	b.ReportMetric(half/proxied.Seconds(), "proxy-MB/s")
	b.ReportMetric(direct.Seconds()/proxied.Seconds(), "proxy/direct")
}

// BenchmarkConnectLatency measures the time from dialing to a usable
// connection, directly and through a CONNECT tunnel, and reports the
// proxy's added latency at the median and the 99th percentile.
func BenchmarkConnectLatency(b *testing.B) {
	tp, sinkAddr := benchProxy(b, sink)
	var direct, proxied []time.Duration
	for b.Loop() {
		start := time.Now()
		c, err := net.Dial("tcp", sinkAddr)
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
		c.Close()

		start = time.Now()
		c = connect(b, tp, sinkAddr)
		proxied = append(proxied, time.Since(start))
		c.Close()
	}
	slices.Sort(direct)
	slices.Sort(proxied)
	q := func(d []time.Duration, f float64) float64 {
		return float64(d[min(len(d)-1, int(f*float64(len(d))))].Microseconds())
	}
	b.ReportMetric(q(proxied, 0.50), "p50-µs")
	b.ReportMetric(q(proxied, 0.99), "p99-µs")
	b.ReportMetric(q(proxied, 0.50)-q(direct, 0.50), "added-p50-µs")
	b.ReportMetric(q(proxied, 0.99)-q(direct, 0.99), "added-p99-µs")
}

// BenchmarkConcurrentTunnels opens 1000 tunnels at once, exchanges a
// message on each and closes them; any failure fails the benchmark. It
// reports the heap and stack held per idle tunnel while all are open.
func BenchmarkConcurrentTunnels(b *testing.B) {
	const n = 1000
	tp, sinkAddr := benchProxy(b, func(c net.Conn) { io.Copy(c, c) })
	var perTunnel float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]net.Conn, n)
		errs := make(chan error, n)
		for i := range conns {
			go func() {
				c, err := tp.dial()
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				errs <- nil
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		_, port, _ := net.SplitHostPort(sinkAddr)
		target := "sink.example.com:" + port
		for i, c := range conns {
			go func() {
				fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
				const answer = "HTTP/1.1 200 Connection established\r\n\r\n"
				buf := make([]byte, len(answer)+8)
				if _, err := io.ReadFull(c, buf[:len(answer)]); err != nil {
					errs <- fmt.Errorf("tunnel %d: CONNECT: %w", i, err)
					return
				}
				msg := fmt.Sprintf("%08d", i)
				io.WriteString(c, msg)
				if _, err := io.ReadFull(c, buf[len(answer):]); err != nil || string(buf[len(answer):]) != msg {
					errs <- fmt.Errorf("tunnel %d: echo %q: %v", i, buf[len(answer):], err)
					return
				}
				errs <- nil
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		// Both ends of every tunnel live in this process: the client and
		// sink sides are counted too, so this overstates the proxy's share.
		perTunnel = float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / n
		for _, c := range conns {
			c.Close()
		}
	}
	b.ReportMetric(perTunnel, "bytes/idle-tunnel")
}

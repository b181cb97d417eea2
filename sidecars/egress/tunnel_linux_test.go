package egress

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bottle-dev/bottle/plan"
)

// keepAliveOn reports whether c has TCP keep-alive on.
func keepAliveOn(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if cerr := rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v != 0
}

// TestTunnelTurnsOnKeepAlive checks that a tunnel turns on TCP keep-alive
// on its destination connection, which Proxy.dial leaves off.
func TestTunnelTurnsOnKeepAlive(t *testing.T) {
	port := echoServer(t, echo)
	dialer := net.Dialer{KeepAlive: -1}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	client, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	upstream, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	if keepAliveOn(t, upstream) {
		t.Fatal("keep-alive on before the tunnel ran")
	}
	tun := &tunnel{client: client, upstream: upstream}
	done := make(chan error, 1)
	go func() { done <- tun.run(time.Minute) }()
	on := false
	for deadline := time.Now().Add(5 * time.Second); !on && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		on = keepAliveOn(t, upstream)
	}
	if !on {
		t.Error("the tunnel left keep-alive off on its destination connection")
	}
	tun.close()
	<-done
}

// TestForwardDialTurnsOnKeepAlive checks that the plain-HTTP forwarder's
// upstream connections have TCP keep-alive on.
func TestForwardDialTurnsOnKeepAlive(t *testing.T) {
	port := echoServer(t, echo)
	rules := []plan.Rule{{Host: "example.com", Ports: []int{port}, AllowPrivate: true}}
	p, err := New(Options{Resolver: fakeResolver{"example.com": loopback}, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st := &forwardState{d: Decide(rules, "example.com", port)}
	c, err := p.dialForward(context.WithValue(context.Background(), forwardKey{}, st), "tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !keepAliveOn(t, c) {
		t.Error("a forwarded request's upstream connection has keep-alive off")
	}
}

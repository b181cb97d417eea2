package egress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// TestServiceStopLogsOpenConnections: when the egress sidecar is stopped,
// a tunnel and an upgraded connection still open are cut within its
// grace, and both are in the log file, with their bytes, by the time it
// has stopped.
func TestServiceStopLogsOpenConnections(t *testing.T) {
	old := shutdownGrace
	shutdownGrace = 200 * time.Millisecond
	t.Cleanup(func() { shutdownGrace = old })
	t.Cleanup(UseResolver(fakeResolver{"ws.example.org": loopback}))
	echoPort := echoServer(t, echo)
	upgradePort := upgradeServer(t, func(c net.Conn, rw *bufio.ReadWriter) {
		rw.Flush()
		io.Copy(c, rw)
	})
	state := t.TempDir()
	raw, err := json.Marshal(Spec{
		Listen: sidecars.Listen{Network: "tcp", Address: "127.0.0.1:0"},
		Rules:  []plan.Rule{{Host: "ws.example.org", Ports: []int{echoPort, upgradePort}, AllowPrivate: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(context.Background(), raw, &sidecars.Env{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	addr := svc.Listeners()[0].Address
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx) }()

	tp := &testProxy{dial: func() (net.Conn, error) { return net.Dial("tcp", addr) }}
	tun := tp.openTunnel(t, fmt.Sprintf("ws.example.org:%d", echoPort))
	defer tun.Close()
	roundTrip(t, tun, "ping\n")
	up, upr := openUpgrade(t, tp.dial, upgradePort, "")
	io.WriteString(up, "ping\n")
	if b := make([]byte, 5); !readFull(upr, b) || string(b) != "ping\n" {
		t.Fatalf("no echo through the upgrade: %q", b)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("the sidecar did not stop")
	}
	if took := time.Since(start); took > shutdownGrace+2*time.Second {
		t.Errorf("stopping took %v with a grace of %v", took, shutdownGrace)
	}
	for _, c := range []net.Conn{tun, up} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the stop: %v, want EOF", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(state, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		methods[ev.Method] = true
		if ev.Error != stoppedText || ev.BytesUp != 5 || ev.BytesDown != 5 {
			t.Errorf("log line: %s", line)
		}
	}
	if !methods["CONNECT"] || !methods["GET"] || len(methods) != 2 {
		t.Errorf("log:\n%s\nwant one line for the tunnel and one for the upgrade", b)
	}
}

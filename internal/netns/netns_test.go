package netns

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseProbe(t *testing.T) {
	for _, s := range []string{
		"tcp=203.0.113.10:443",
		"tcp=[::1]:80",
		"unix=@abstract",
		"unix=/run/docker.sock",
		"udp-dns=198.51.100.53:53",
		"http=http://127.0.0.1:8080/x?y=1",
		"http-proxy=http://127.0.0.1:3128 https://example.com/a=b",
	} {
		p, err := ParseProbe(s)
		if err != nil {
			t.Errorf("ParseProbe(%q): %v", s, err)
			continue
		}
		if p.String() != s {
			t.Errorf("ParseProbe(%q).String() = %q", s, p)
		}
	}
	for _, s := range []string{"", "tcp", "tcp=", "tcp=203.0.113.10", "icmp=203.0.113.10", "http-proxy=http://127.0.0.1:3128", "http=%zz"} {
		if p, err := ParseProbe(s); err == nil {
			t.Errorf("ParseProbe(%q) = %+v, want an error", s, p)
		}
	}
}

// TestProbesReach shows each probe kind can succeed, so a probe that fails
// inside a namespace fails because of the namespace.
func TestProbesReach(t *testing.T) {
	ctx := context.Background()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "web "+r.URL.Path)
	}))
	defer web.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "denied "+r.URL.String())
	}))
	defer proxy.Close()
	dns := fakeDNS(t)

	for _, tc := range []struct {
		probe  Probe
		status int
		body   string
	}{
		{probe: Probe{Kind: ProbeTCP, Target: web.Listener.Addr().String()}},
		{probe: Probe{Kind: ProbeUDPDNS, Target: dns}},
		{probe: Probe{Kind: ProbeHTTP, Target: web.URL + "/p"}, status: 200, body: "web /p"},
		{probe: Probe{Kind: ProbeHTTPProxy, Proxy: proxy.URL, Target: "http://example.com/q"}, status: 403, body: "denied http://example.com/q"},
	} {
		o := tc.probe.Run(ctx)
		if !o.Reached || o.Status != tc.status || o.Body != tc.body {
			t.Errorf("%s = %+v; want reached, status %d, body %q", tc.probe, o, tc.status, tc.body)
		}
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if o := (Probe{Kind: ProbeTCP, Target: closed.Addr().String()}).Run(ctx); o.Reached || !strings.Contains(o.Detail, "refused") {
		t.Errorf("probe of a closed port = %+v", o)
	}
}

// fakeDNS answers every UDP datagram with a header echoing its ID, and
// returns its address.
func fakeDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			reply := make([]byte, 12)
			copy(reply, buf[:2])
			binary.BigEndian.PutUint16(reply[2:], 0x8180)
			pc.WriteTo(reply, addr)
		}
	}()
	return pc.LocalAddr().String()
}

func TestProbeMainRejectsBadProbe(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := ProbeMain(context.Background(), []string{"tcp=127.0.0.1:1", "bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "bogus") {
		t.Errorf("stdout %q, stderr %q: want no probe run and the bad argument named", stdout.String(), stderr.String())
	}
}

// TestRun: the command runs with only lo, which is up, and its exit code
// comes back.
func TestRun(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, []string{"NETNS_TEST=ok"}, "sh", "-c", `ip -o link show; echo "env=$NETNS_TEST"; exit 3`)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit %d, want 3; stderr %q", res.ExitCode, res.Stderr)
	}
	links := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(links) != 2 || !strings.Contains(links[0], "lo:") || !strings.Contains(links[0], ",UP") || links[1] != "env=ok" {
		t.Errorf("inside the namespace:\n%s\nwant only lo, up, and the added environment", res.Stdout)
	}
}

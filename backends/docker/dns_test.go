package docker_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a DNS server that records every name it is asked and
// answers every A query with 192.0.2.1, so that a leak would also succeed.
type recorder struct {
	mu    sync.Mutex
	names []string
	conn  *net.UDPConn
}

func startRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(mustAddrPort(t, addr)))
	if err != nil {
		t.Skipf("cannot listen for DNS on %s: %v", addr, err)
	}
	r := &recorder{conn: c}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			name, qend := parseQuestion(buf[:n])
			r.mu.Lock()
			r.names = append(r.names, name)
			r.mu.Unlock()
			if qend < 0 {
				continue
			}
			resp := append([]byte{}, buf[:qend]...)
			resp[2], resp[3] = 0x81, 0x80              // response, recursion available, no error
			binary.BigEndian.PutUint16(resp[6:8], 1)   // one answer
			binary.BigEndian.PutUint16(resp[8:10], 0)  // no authority
			binary.BigEndian.PutUint16(resp[10:12], 0) // no additional
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1)
			c.WriteToUDP(resp, from)
		}
	}()
	t.Cleanup(func() { c.Close() })
	return r
}

func (r *recorder) seen(part string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.names {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// parseQuestion returns the first question's name and where it ends.
func parseQuestion(b []byte) (string, int) {
	if len(b) < 12 {
		return "", -1
	}
	var labels []string
	i := 12
	for i < len(b) && b[i] != 0 {
		l := int(b[i])
		if i+1+l > len(b) {
			return "", -1
		}
		labels = append(labels, string(b[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(b) {
		return strings.Join(labels, "."), -1
	}
	return strings.Join(labels, "."), i + 5
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestEmbeddedResolverDoesNotForward proves that the agent cannot tunnel
// DNS out through Docker's embedded resolver (CVE-2024-29018): with the
// host's resolver on loopback, a plain container on an internal network
// leaks outside names to it on daemons before 25.0.5. The agent has no
// network at all, so it must not, whether it asks through resolv.conf or
// sends raw queries to 127.0.0.11 or its own loopback.
//
// It points the host's /etc/resolv.conf at a recording DNS server for the
// duration of the test and restores it, so it runs only when allowed to:
// as root with BOTTLE_TEST_EDIT_RESOLV=1 (set by .ci/run).
func TestEmbeddedResolverDoesNotForward(t *testing.T) {
	e := newEnv(t)
	if os.Geteuid() != 0 || os.Getenv("BOTTLE_TEST_EDIT_RESOLV") != "1" {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatal("this test must run in CI: run as root with BOTTLE_TEST_EDIT_RESOLV=1")
		}
		t.Skip("skipping: rewrites /etc/resolv.conf; run as root with BOTTLE_TEST_EDIT_RESOLV=1")
	}
	rec := startRecorder(t, "127.0.0.1:53")
	orig, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile("/etc/resolv.conf", orig, 0o644) })
	if err := os.WriteFile("/etc/resolv.conf", []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Control: a plain container on an internal network, without bottle's
	// flags. On a vulnerable daemon its lookup reaches the recorder.
	netName := "bottle-test-dnsleak"
	exec.Command("docker", "network", "rm", netName).Run()
	dockerOut(t, "network", "create", "--internal", netName)
	defer exec.Command("docker", "network", "rm", netName).Run()
	exec.Command("docker", "run", "--rm", "--network", netName, fixture.image, "/bin/probe", "resolve", "leak-control.example").Run()
	time.Sleep(200 * time.Millisecond)
	if rec.seen("leak-control") {
		t.Log("control: this daemon forwards internal networks' lookups to the host's resolver (CVE-2024-29018); the bottle must not")
	} else {
		t.Log("control: this daemon does not forward internal networks' lookups; the bottle's check still runs")
	}

	profile := e.profile("dns.star", escapeProfile)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
		"/bin/probe resolve leak-bottle-a.example; /bin/probe udp-dns 127.0.0.11:53 leak-bottle-b.example; /bin/probe udp-dns 127.0.0.1:53 leak-bottle-c.example; true")
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	time.Sleep(200 * time.Millisecond)
	if rec.seen("leak-bottle") {
		t.Errorf("ESCAPE: the agent's lookups reached the host's resolver:\n%s", out)
	}
	if strings.Count(out, "blocked") < 3 {
		t.Errorf("a lookup from the agent did not fail:\n%s", out)
	}
}

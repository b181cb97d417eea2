package docker_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// escapeProfile is the profile every escape probe runs in: one allowed
// host, reachable only through the egress sidecar.
const escapeProfile = `
docker(image = "AGENT_IMAGE")
allow("allowed.test", ports = [8080], allow_private = True)
`

// probe runs one probe as a one-off command in a fresh bottle and reports
// whether it got through, with the probe's output.
func probe(t *testing.T, e *env, profile string, args ...string) (bool, string) {
	t.Helper()
	out, stderr, code := e.run(append([]string{"start", "--yes", profile, "--", "/bin/probe"}, args...)...)
	switch code {
	case 0:
		return true, out
	case 1:
		return false, out
	}
	t.Fatalf("bottle start exited %d (want the probe's 0 or 1):\n%s%s", code, out, stderr)
	return false, ""
}

// hostIP is an address of this host that is not loopback, for probes of
// host services.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "10.213.") {
			return ipn.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

// TestEscapeMatrix runs each way out of DESIGN.md §2.1 in its own bottle;
// every one must be stopped. Outside addresses are from the documentation
// ranges (RFC 5737, RFC 3849): the agent has no route to any address off
// the machine, and a broken bottle never sends a packet to a real service.
func TestEscapeMatrix(t *testing.T) {
	e := newEnv(t)
	profile := e.profile("escape.star", escapeProfile)

	// A host service on all interfaces, which the agent must not reach by
	// any of the host's addresses.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("host service")) }))
	port := ln.Addr().(*net.TCPAddr).Port
	hostPort := net.JoinHostPort(hostIP(t), itoa(port))
	gateway := net.JoinHostPort(dockerOut(t, "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"), itoa(port))

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"tcp public ipv4", []string{"tcp", "203.0.113.10:443"}},
		{"tcp public ipv4 port 80", []string{"tcp", "198.51.100.10:80"}},
		{"udp dns to an outside resolver", []string{"udp-dns", "198.51.100.53:53", "example.com"}},
		{"tcp dns to an outside resolver", []string{"tcp", "198.51.100.53:53"}},
		{"cloud metadata", []string{"tcp", "169.254.169.254:80"}},
		{"ipv6 public", []string{"tcp", "[2001:db8::1111]:443"}},
		{"ipv6 host loopback", []string{"tcp", "[::1]:" + itoa(port)}},
		{"host by its LAN address", []string{"tcp", hostPort}},
		{"host through docker0", []string{"tcp", gateway}},
		{"host.docker.internal", []string{"resolve", "host.docker.internal"}},
		{"outside name", []string{"resolve", "example.com"}},
		{"embedded resolver outside name", []string{"udp-dns", "127.0.0.11:53", "example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if reached, out := probe(t, e, profile, tc.args...); reached {
				t.Errorf("ESCAPE: probe %v got through:\n%s", tc.args, out)
			}
		})
	}

	// The internal network's own gateway address, which only exists
	// while the bottle runs: probe it from inside with the subnet's first
	// address and its DNS port.
	t.Run("internal gateway", func(t *testing.T) {
		out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
			`gw=$(ip route 2>/dev/null | awk '/src/ {print $1}' | sed 's#0/28#1#'); `+
				`[ -n "$gw" ] || gw=$(hostname -i | awk -F. '{print $1"."$2"."$3"."($4-($4%16)+1)}'); `+
				`echo gateway $gw; /bin/probe tcp $gw:`+itoa(port)+` && exit 10; /bin/probe udp-dns $gw:53 example.com && exit 11; exit 0`)
		if code != 0 {
			t.Errorf("ESCAPE through the internal network's gateway (exit %d):\n%s%s", code, out, stderr)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestAllowedAndDenied: through the egress sidecar the allowed host
// answers and another is refused with the documented 403 body.
func TestAllowedAndDenied(t *testing.T) {
	e := newEnv(t)
	profile := e.profile("escape.star", escapeProfile)
	slug := e.slugOf(profile)

	// Upstream servers the bundle can reach on the bottle's egress
	// network, under names only Docker's resolver there knows.
	server := "bottle-test-upstream-" + slug
	dockerOut(t, "run", "-d", "--name", server, fixture.image,
		"sh", "-c", "mkdir -p /www && echo upstream-ok > /www/index.html && httpd -f -p 8080 -h /www")
	defer exec.Command("docker", "rm", "-f", server).Run()
	go func() {
		net := "bottle-" + slug + "-egress"
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if exec.Command("docker", "network", "connect", "--alias", "allowed.test", "--alias", "denied.test", net, server).Run() == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
		`for i in $(seq 1 100); do /bin/probe http http://allowed.test:8080/ && break; sleep 0.2; done; echo ---; /bin/probe http http://denied.test:8080/; echo ---; /bin/probe http http://allowed.test:8081/; true`)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	parts := strings.Split(out, "---")
	if len(parts) != 3 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if !strings.Contains(parts[0], "status 200") || !strings.Contains(parts[0], "upstream-ok") {
		t.Errorf("the allowed host did not answer through the proxy:\n%s", parts[0])
	}
	if !strings.Contains(parts[1], "status 403") ||
		!strings.Contains(parts[1], "bottle: egress to denied.test:8080 denied: no rule allows this host") ||
		!strings.Contains(parts[1], `allow("denied.test", ports = [8080])`) {
		t.Errorf("the denied host was not refused with the documented body:\n%s", parts[1])
	}
	if !strings.Contains(parts[2], "status 403") || !strings.Contains(parts[2], "allowed only on other ports") {
		t.Errorf("the allowed host on another port was not refused:\n%s", parts[2])
	}
}

// TestAnotherBottlesBundle: one bottle's agent cannot reach another
// bottle's sidecars, by either of the other bundle's addresses.
func TestAnotherBottlesBundle(t *testing.T) {
	e := newEnv(t)
	a := e.profile("a.star", escapeProfile)
	b := e.profile("b.star", escapeProfile)
	slugA := e.slugOf(a)
	cmd := e.command("start", "--yes", a, "--", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	bundle := "bottle-" + slugA + "-sidecars"
	waitFor(t, "bottle A's sidecars", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dir, "state", "bottle", slugA, "sidecars.ready"))
		return err == nil
	})
	addrs := strings.Fields(dockerOut(t, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", bundle))
	if len(addrs) != 2 {
		t.Fatalf("bottle A's bundle has addresses %v, want two", addrs)
	}
	var targets []string
	for _, addr := range addrs {
		for _, port := range []string{"3128", "8080", "8765"} {
			targets = append(targets, net.JoinHostPort(addr, port))
		}
	}
	out, stderr, code := e.run("start", "--yes", b, "--", "sh", "-c",
		`for t in `+strings.Join(targets, " ")+`; do /bin/probe tcp $t && echo "ESCAPE $t"; done; true`)
	if code != 0 {
		t.Fatalf("bottle B exited %d:\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, "ESCAPE") || strings.Count(out, "blocked:") != len(targets) {
		t.Errorf("bottle B reached bottle A's bundle:\n%s", out)
	}
}

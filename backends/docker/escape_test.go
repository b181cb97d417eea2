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
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

// linkLocal gives this host's loopback device a link-local IPv4 address
// for the test's duration, so that a probe of the link-local range (where
// cloud metadata lives) has a real listener that cannot be off the
// machine. It needs root; elsewhere it returns "".
func linkLocal(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	const addr = "169.254.77.77"
	exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").Run()
	if out, err := exec.Command("ip", "addr", "add", addr+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Logf("cannot add %s to lo: %v: %s", addr, err, out)
		return ""
	}
	t.Cleanup(func() { exec.Command("ip", "addr", "del", addr+"/32", "dev", "lo").Run() })
	return addr
}

// TestEscapeMatrix runs each way out of DESIGN.md §2.1 in its own bottle;
// every one must be stopped. Outside addresses are from the documentation
// ranges (RFC 5737, RFC 3849) and every other target is a listener this
// test made on this machine, so a broken bottle never sends a packet to a
// real service.
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

	cases := []struct {
		name string
		args []string
	}{
		{"tcp public ipv4", []string{"tcp", "203.0.113.10:443"}},
		{"tcp public ipv4 port 80", []string{"tcp", "198.51.100.10:80"}},
		{"udp dns to an outside resolver", []string{"udp-dns", "198.51.100.53:53", "example.com"}},
		{"tcp dns to an outside resolver", []string{"tcp", "198.51.100.53:53"}},
		{"ipv6 public", []string{"tcp", "[2001:db8::1111]:443"}},
		{"ipv6 host loopback", []string{"tcp", "[::1]:" + itoa(port)}},
		{"host loopback", []string{"tcp", "127.0.0.1:" + itoa(port)}},
		{"host by its LAN address", []string{"tcp", hostPort}},
		{"host through docker0", []string{"tcp", gateway}},
		{"host.docker.internal", []string{"resolve", "host.docker.internal"}},
		{"outside name", []string{"resolve", "example.com"}},
		{"embedded resolver outside name", []string{"udp-dns", "127.0.0.11:53", "example.com"}},
		{"the proxy's name from the old design", []string{"resolve", "proxy.internal"}},
	}
	if ll := linkLocal(t); ll != "" {
		// The link-local range, where cloud metadata answers, probed at a
		// listener of this test's own.
		lln, err := net.Listen("tcp", ll+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer lln.Close()
		go http.Serve(lln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("link-local")) }))
		cases = append(cases, struct {
			name string
			args []string
		}{"link-local (metadata range)", []string{"tcp", lln.Addr().String()}})
	} else if os.Getenv("BOTTLE_CI") != "" {
		t.Error("the link-local probe needs root and the ip command, which CI has")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if reached, out := probe(t, e, profile, tc.args...); reached {
				t.Errorf("ESCAPE: probe %v got through:\n%s", tc.args, out)
			}
		})
	}

	// The agent has no network device but loopback, and no route.
	t.Run("only loopback", func(t *testing.T) {
		out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
			`ls /sys/class/net; echo ---; ip -o link 2>&1; echo ---; ip route 2>&1; ip -6 route 2>&1; true`)
		if code != 0 {
			t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
		}
		parts := strings.Split(out, "---")
		if len(parts) != 3 || strings.TrimSpace(parts[0]) != "lo" {
			t.Errorf("the agent has network devices besides lo:\n%s", out)
		}
		if len(parts) == 3 && strings.Count(strings.TrimSpace(parts[1]), "\n") != 0 {
			t.Errorf("ip link lists more than lo:\n%s", parts[1])
		}
		if len(parts) == 3 && (strings.Contains(parts[2], "default") || strings.Contains(parts[2], "via")) {
			t.Errorf("the agent has a route out:\n%s", parts[2])
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestAllowedAndDenied: through the egress sidecar the allowed host
// answers and another is refused with the documented 403 body. The
// upstream is a container of the test's own, on a network of the test's
// own that the bundle joins through BOTTLE_BUNDLE_NETWORK, under names only
// Docker's resolver there knows.
func TestAllowedAndDenied(t *testing.T) {
	e := newEnv(t)
	profile := e.profile("escape.star", escapeProfile)
	slug := e.slugOf(profile)

	netName := "bottle-test-upstream-" + slug
	exec.Command("docker", "network", "rm", netName).Run()
	dockerOut(t, "network", "create", netName)
	defer exec.Command("docker", "network", "rm", netName).Run()
	server := "bottle-test-upstream-" + slug
	exec.Command("docker", "rm", "-f", server).Run()
	dockerOut(t, "run", "-d", "--name", server, "--network", netName, "--network-alias", "allowed.test", "--network-alias", "denied.test", fixture.image,
		"sh", "-c", "mkdir -p /www && echo upstream-ok > /www/index.html && httpd -f -p 8080 -h /www")
	defer exec.Command("docker", "rm", "-f", server).Run()
	e.extra = append(e.extra, "BOTTLE_BUNDLE_NETWORK="+netName)

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

// TestAnotherBottlesSidecars: one bottle's agent cannot reach another
// bottle's sidecars: it sees only its own sockets, cannot mount or find the
// other's volume, and the other's bundle listens on no TCP port.
func TestAnotherBottlesSidecars(t *testing.T) {
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
	// Nothing in bottle A's bundle listens on TCP: its sockets are all it
	// has. Its network namespace's tables, read from the host.
	pid := strings.TrimSpace(dockerOut(t, "inspect", "--format", "{{.State.Pid}}", bundle))
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + pid + "/net/" + table)
		if err != nil {
			t.Fatalf("read the bundle's %s table: %v", table, err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 && f[3] == "0A" {
				t.Errorf("bottle A's bundle listens on TCP: %s", line)
			}
		}
	}
	addrs := strings.Fields(dockerOut(t, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", bundle))
	if len(addrs) != 1 {
		t.Fatalf("bottle A's bundle has addresses %v, want one", addrs)
	}
	var targets []string
	for _, port := range []string{"3128", "8080", "8765", "8888"} {
		targets = append(targets, net.JoinHostPort(addrs[0], port))
	}
	volA := "bottle-" + slugA + "-sockets"
	out, stderr, code := e.run("start", "--yes", b, "--", "sh", "-c",
		`for t in `+strings.Join(targets, " ")+`; do /bin/probe tcp $t && echo "ESCAPE $t"; done; `+
			`echo ---; ls -a /run/bottle; echo ---; find / -xdev -name '*.sock' 2>/dev/null; `+
			`find / -name '`+volA+`*' 2>/dev/null; true`)
	if code != 0 {
		t.Fatalf("bottle B exited %d:\n%s%s", code, out, stderr)
	}
	parts := strings.Split(out, "---")
	if strings.Contains(out, "ESCAPE") || strings.Count(parts[0], "blocked:") != len(targets) {
		t.Errorf("bottle B reached bottle A's bundle:\n%s", out)
	}
	if len(parts) != 3 || strings.Join(strings.Fields(parts[1]), " ") != ". .. egress.sock" {
		t.Errorf("bottle B sees sockets besides its own egress socket:\n%s", out)
	}
	if len(parts) == 3 && strings.Contains(parts[2], slugA) {
		t.Errorf("bottle B finds bottle A's sockets:\n%s", parts[2])
	}
}

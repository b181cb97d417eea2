package guest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/netns"
)

// hostService serves HTTP on network/address outside any namespace and
// returns the address it listens on, or "" (with the reason logged) when the
// host cannot listen there.
func hostService(t *testing.T, network, address string) string {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Logf("no host service on %s %s: %v", network, address, err)
		return ""
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host service")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// lanAddress returns a global unicast address of a non-loopback interface
// that is up, of the given family (4 or 6), or the zero IP.
func lanAddress(t *testing.T, family int) net.IP {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok || !ipnet.IP.IsGlobalUnicast() {
				continue
			}
			if (ipnet.IP.To4() != nil) == (family == 4) {
				return ipnet.IP
			}
		}
	}
	return nil
}

// TestIsolation runs bottle guest inside a network namespace that has only
// lo, the stand-in for a smolvm guest without a network device. From inside,
// a probe reaches a sidecar's unix socket through the relay, and nothing
// else: not the internet over IPv4 or IPv6, not DNS, not cloud metadata, not
// the host's loopback, LAN or abstract unix sockets. Every host service is
// first shown reachable from outside, so a probe that fails inside fails
// because of the namespace and not because the service is missing.
func TestIsolation(t *testing.T) {
	netns.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sock := httpUnixServer(t, "hello from the sidecar")
	const relayPort = 3128 // free: the namespace is new
	through := netns.Probe{Kind: netns.ProbeHTTP, Target: fmt.Sprintf("http://127.0.0.1:%d/", relayPort)}

	// Services of this host, each of which must be reachable from outside.
	var hostProbes []netns.Probe
	addHost := func(p netns.Probe) {
		if o := p.Run(ctx); !o.Reached {
			t.Fatalf("control: %s is not reachable from outside the namespace either: %s", p, o.Detail)
		}
		hostProbes = append(hostProbes, p)
	}
	if addr := hostService(t, "tcp4", "127.0.0.1:0"); addr != "" {
		addHost(netns.Probe{Kind: netns.ProbeTCP, Target: addr})
		addHost(netns.Probe{Kind: netns.ProbeHTTP, Target: "http://" + addr + "/"})
	}
	if addr := hostService(t, "tcp6", "[::1]:0"); addr != "" {
		addHost(netns.Probe{Kind: netns.ProbeTCP, Target: addr})
	}
	for _, family := range []int{4, 6} {
		ip := lanAddress(t, family)
		if ip == nil {
			t.Logf("no IPv%d LAN address on this host; skipping that probe", family)
			continue
		}
		if addr := hostService(t, "tcp", net.JoinHostPort(ip.String(), "0")); addr != "" {
			addHost(netns.Probe{Kind: netns.ProbeTCP, Target: addr})
		}
	}
	abstract := fmt.Sprintf("@bottle-guest-test-%d", time.Now().UnixNano())
	if addr := hostService(t, "unix", abstract); addr != "" {
		addHost(netns.Probe{Kind: netns.ProbeUnix, Target: abstract})
	}
	if len(hostProbes) == 0 {
		t.Fatal("no host service could be started to probe")
	}

	outside := netns.OutsideProbes()
	for _, p := range outside {
		o := p.Run(ctx)
		t.Logf("control, from outside: %-55s reached=%t", p, o.Reached)
	}

	probes := append([]netns.Probe{through}, hostProbes...)
	probes = append(probes, outside...)
	argv := helperCommand(t, "guest", "--forward", fmt.Sprintf("127.0.0.1:%d=%s", relayPort, sock), "--")
	argv = append(argv, helperCommand(t, "probe")...)
	outcomes, err := netns.RunProbes(ctx, []string{helperEnv + "=1"}, argv, probes)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		t.Logf("inside: %-55s reached=%-5t %s", o.Probe, o.Reached, o.Detail)
		if i == 0 {
			if !o.Reached || o.Status != http.StatusOK || o.Body != "hello from the sidecar" {
				t.Errorf("the sidecar is not reachable through the relay: %+v", o)
			}
			continue
		}
		if o.Reached {
			t.Errorf("ESCAPE: %s is reachable from inside the namespace (%s)", o.Probe, o.Detail)
		}
	}
}

package netns

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Probe kinds.
const (
	// ProbeTCP connects to Target, HOST:PORT.
	ProbeTCP = "tcp"
	// ProbeUnix connects to the unix socket Target, a path, or an abstract
	// socket name starting with @ (abstract sockets belong to a network
	// namespace, paths to the file system).
	ProbeUnix = "unix"
	// ProbeUDPDNS sends a DNS query for example.com over UDP to Target,
	// HOST:PORT, and waits for an answer.
	ProbeUDPDNS = "udp-dns"
	// ProbeHTTP sends GET Target, a URL, with no proxy.
	ProbeHTTP = "http"
	// ProbeHTTPProxy sends GET Target, a URL, through the HTTP proxy Proxy
	// (CONNECT for https URLs, an absolute-URI request for http ones).
	ProbeHTTPProxy = "http-proxy"
)

// ProbeTimeout bounds every probe.
const ProbeTimeout = 3 * time.Second

// maxBody is how much of an HTTP response body an Outcome keeps.
const maxBody = 512

// Probe is one attempt to reach something. Its text form, which ParseProbe
// reads and String writes, is KIND=TARGET, or http-proxy=PROXY TARGET.
type Probe struct {
	Kind   string
	Target string
	Proxy  string
}

// ParseProbe parses KIND=TARGET (or http-proxy=PROXY TARGET), such as
// "tcp=203.0.113.10:443", "unix=@abstract", "udp-dns=198.51.100.53:53", "http=http://127.0.0.1:8080/" or
// "http-proxy=http://127.0.0.1:3128 https://example.com/".
func ParseProbe(s string) (Probe, error) {
	kind, rest, ok := strings.Cut(s, "=")
	if !ok || rest == "" {
		return Probe{}, fmt.Errorf("probe %q: want KIND=TARGET", s)
	}
	p := Probe{Kind: kind, Target: rest}
	switch kind {
	case ProbeTCP, ProbeUDPDNS:
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return Probe{}, fmt.Errorf("probe %q: target: %w", s, err)
		}
	case ProbeUnix:
	case ProbeHTTP:
		if _, err := url.Parse(rest); err != nil {
			return Probe{}, fmt.Errorf("probe %q: %w", s, err)
		}
	case ProbeHTTPProxy:
		proxy, target, ok := strings.Cut(rest, " ")
		if !ok {
			return Probe{}, fmt.Errorf("probe %q: want http-proxy=PROXY TARGET", s)
		}
		for _, u := range []string{proxy, target} {
			if _, err := url.Parse(u); err != nil {
				return Probe{}, fmt.Errorf("probe %q: %w", s, err)
			}
		}
		p.Proxy, p.Target = proxy, target
	default:
		return Probe{}, fmt.Errorf("probe %q: unknown kind %q (want %s, %s, %s, %s or %s)", s, kind, ProbeTCP, ProbeUnix, ProbeUDPDNS, ProbeHTTP, ProbeHTTPProxy)
	}
	return p, nil
}

// String returns p in the form ParseProbe reads.
func (p Probe) String() string {
	if p.Kind == ProbeHTTPProxy {
		return p.Kind + "=" + p.Proxy + " " + p.Target
	}
	return p.Kind + "=" + p.Target
}

// Outcome is the result of one probe.
type Outcome struct {
	// Probe is the probe in its text form.
	Probe string `json:"probe"`
	// Reached reports whether the other end answered: a TCP connection was
	// established, a DNS reply came back, or an HTTP response (of any
	// status) arrived.
	Reached bool `json:"reached"`
	// Status is the HTTP status code, for http and http-proxy probes.
	Status int `json:"status,omitempty"`
	// Body is the start of the HTTP response body.
	Body string `json:"body,omitempty"`
	// Detail says what happened, such as the error that stopped the probe.
	Detail string `json:"detail"`
}

// Run carries out the probe, within ProbeTimeout.
func (p Probe) Run(ctx context.Context) Outcome {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	o := Outcome{Probe: p.String()}
	var err error
	switch p.Kind {
	case ProbeTCP, ProbeUnix:
		err = probeDial(ctx, p.Kind, p.Target)
	case ProbeUDPDNS:
		err = probeDNS(ctx, p.Target)
	case ProbeHTTP, ProbeHTTPProxy:
		o.Status, o.Body, err = probeHTTP(ctx, p.Proxy, p.Target)
	default:
		err = fmt.Errorf("unknown probe kind %q", p.Kind)
	}
	if err != nil {
		o.Detail = err.Error()
		return o
	}
	o.Reached = true
	o.Detail = "reached"
	return o
}

// probeDial connects to addr over network and hangs up.
func probeDial(ctx context.Context, network, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// probeDNS sends an A query for example.com and waits for a reply with the
// same ID.
func probeDNS(ctx context.Context, server string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	var id [2]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("query id: %w", err)
	}
	// Header: ID, flags (recursion desired), one question; then the name,
	// type A, class IN.
	query := append(id[:], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	query = append(query, "\x07example\x03com\x00"...)
	query = append(query, 0, 1, 0, 1)
	if _, err := conn.Write(query); err != nil {
		return fmt.Errorf("send query: %w", err)
	}
	reply := make([]byte, 512)
	for {
		n, err := conn.Read(reply)
		if err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		if n >= 12 && binary.BigEndian.Uint16(reply) == binary.BigEndian.Uint16(id[:]) {
			return nil
		}
	}
}

// probeHTTP sends GET target, through proxy unless it is empty, and returns
// the status and the start of the body.
func probeHTTP(ctx context.Context, proxy, target string) (int, string, error) {
	transport := &http.Transport{DisableKeepAlives: true}
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			return 0, "", fmt.Errorf("proxy URL: %w", err)
		}
		transport.Proxy = http.ProxyURL(u)
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, string(body), fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, string(body), nil
}

// ProbeMain is the body of a probe helper command: it parses every argument
// with ParseProbe, runs the probes in order and writes one JSON Outcome per
// line to stdout. It returns 0 when every probe ran (whatever it found) and 2
// on a malformed argument, before running any.
func ProbeMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	probes := make([]Probe, 0, len(args))
	for _, arg := range args {
		p, err := ParseProbe(arg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		probes = append(probes, p)
	}
	enc := json.NewEncoder(stdout)
	for _, p := range probes {
		if err := enc.Encode(p.Run(ctx)); err != nil {
			fmt.Fprintf(stderr, "write outcome: %v\n", err)
			return 1
		}
	}
	return 0
}

// ParseOutcomes reads the JSON lines ProbeMain writes.
func ParseOutcomes(r io.Reader) ([]Outcome, error) {
	var outcomes []Outcome
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var o Outcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			return nil, fmt.Errorf("parse probe outcome %q: %w", line, err)
		}
		outcomes = append(outcomes, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read probe outcomes: %w", err)
	}
	if len(outcomes) == 0 {
		return nil, errors.New("no probe outcomes")
	}
	return outcomes, nil
}

// OutsideProbes are probes a sandbox must never pass, whatever the host: TCP
// and DNS to outside addresses over IPv4 and IPv6, and cloud metadata. The
// outside addresses are from the documentation ranges (RFC 5737, RFC 3849):
// a sandbox has no route to any address off the machine, so any one shows
// it, and a broken sandbox never sends a packet to a real service. Tests
// add probes for services of their own host (its loopback, its LAN address).
func OutsideProbes() []Probe {
	return []Probe{
		{Kind: ProbeTCP, Target: "203.0.113.10:443"},
		{Kind: ProbeTCP, Target: "198.51.100.53:53"},
		{Kind: ProbeUDPDNS, Target: "198.51.100.53:53"},
		{Kind: ProbeUDPDNS, Target: "203.0.113.53:53"},
		{Kind: ProbeTCP, Target: "169.254.169.254:80"},
		{Kind: ProbeHTTP, Target: "http://169.254.169.254/latest/meta-data/"},
		{Kind: ProbeTCP, Target: "[2001:db8::1111]:443"},
		{Kind: ProbeUDPDNS, Target: "[2001:db8::53]:53"},
	}
}

// RunProbes runs argv followed by the probes' text forms inside a new
// network namespace, with env added to the environment, and returns the
// outcomes. argv must end up calling ProbeMain with those arguments, perhaps
// through a wrapper such as `bottle guest --forward ... --`. It fails unless
// the command exits 0 and reports one outcome per probe, in order.
func RunProbes(ctx context.Context, env []string, argv []string, probes []Probe) ([]Outcome, error) {
	args := slices.Clone(argv)
	for _, p := range probes {
		args = append(args, p.String())
	}
	res, err := Run(ctx, env, args...)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("netns: probes exited %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	outcomes, err := ParseOutcomes(strings.NewReader(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("netns: %w; stderr:\n%s", err, res.Stderr)
	}
	if len(outcomes) != len(probes) {
		return nil, fmt.Errorf("netns: %d probes gave %d outcomes; stderr:\n%s", len(probes), len(outcomes), res.Stderr)
	}
	for i, o := range outcomes {
		if o.Probe != probes[i].String() {
			return nil, fmt.Errorf("netns: outcome %d is for %q, want %q", i, o.Probe, probes[i])
		}
	}
	return outcomes, nil
}

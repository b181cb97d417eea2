package egress

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
)

// countingResolver answers from a table it can change, and counts its
// lookups.
type countingResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	lookups int
}

func (r *countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if a, ok := r.answers[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func (r *countingResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups
}

// The proxy looks a name up once for connections in quick succession,
// again once the answer is too old, never keeps a failure, and checks a
// kept answer against the rules of the moment.
func TestDNSCache(t *testing.T) {
	old := dnsCacheLife
	t.Cleanup(func() { dnsCacheLife = old })
	dnsCacheLife = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	port := serverPort(t, srv)
	res := &countingResolver{answers: map[string][]netip.Addr{"example.com.": loopback}}
	tp := startProxy(t, "tcp", Options{
		Resolver: res,
		Rules: []plan.Rule{
			{Host: "example.com", Ports: []int{port}, AllowPrivate: true},
			{Host: "missing.example.com", Ports: []int{port}},
		},
	})
	// Tunnels, each of which dials.
	connect := func(host string) int {
		t.Helper()
		c, err := tp.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host, port, host, port)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	for i := range 3 {
		if code := connect("example.com"); code != 200 {
			t.Fatalf("CONNECT %d: %d", i, code)
		}
	}
	if n := res.count(); n != 1 {
		t.Errorf("%d lookups for three requests in quick succession, want 1", n)
	}
	time.Sleep(350 * time.Millisecond)
	connect("example.com")
	if n := res.count(); n != 2 {
		t.Errorf("%d lookups after the answer's life, want 2", n)
	}

	for range 2 {
		if code := connect("missing.example.com"); code != http.StatusBadGateway {
			t.Errorf("a name that does not resolve: %d, want 502", code)
		}
	}
	if n := res.count(); n != 4 {
		t.Errorf("%d lookups, want 4: a failure is not kept", n)
	}

	// The kept answer is loopback: once the rule no longer allows
	// private addresses, the kept answer is refused as a fresh one would
	// be.
	if err := tp.SetRules([]plan.Rule{{Host: "example.com", Ports: []int{port}}}); err != nil {
		t.Fatal(err)
	}
	if code := connect("example.com"); code != http.StatusForbidden {
		t.Errorf("kept loopback answer under a rule without allow_private: %d, want 403", code)
	}
	if n := res.count(); n != 4 {
		t.Errorf("%d lookups, want the kept answer used (4)", n)
	}
}

package pipelock

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
)

// unitPlan is a configured plan whose egress sidecar is pipelock, with its
// socket in dir.
func unitPlan(t *testing.T, dir string) *plan.Plan {
	t.Helper()
	p := pipelockPlan(defaultPipelock, rule("api.example.com", false, 443))
	p.Slug = "t"
	if err := sidecars.Configure(p, dir); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitRunsPipelock takes the unit through the registry as a bottle
// does: its section, its server (the stand-in pipelock from
// BOTTLE_PIPELOCK, run on a loopback port) and a request from the sandbox's
// side of the socket, which pipelock answers through the bridge.
func TestUnitRunsPipelock(t *testing.T) {
	t.Setenv(Env, fakeBin)
	state := t.TempDir()
	p := unitPlan(t, state)
	u, ok := sidecars.Lookup(plan.SidecarPipelock)
	if !ok || u != Unit || u.Port != Port || !u.Egress {
		t.Fatalf("the registry's pipelock unit is %+v", u)
	}
	raw, err := u.Section(p, p.Sidecars[0], sidecars.Listen{Network: "unix", Address: p.Sidecars[0].Listen.Address})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := u.New(ctx, raw, &sidecars.Env{Slug: "t", StateDir: state})
	if err != nil {
		t.Fatalf("start pipelock: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	if fi, err := os.Stat(filepath.Join(state, ConfigFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the rendered config in the state directory: %v %v", fi, err)
	}

	// A host no rule allows: pipelock's own refusal comes back through
	// the socket.
	c, err := net.DialTimeout("unix", p.Sidecars[0].Listen.Address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer through the bridge: %v", err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a denied host got %s, want 403", resp.Status)
	}
	if b, _ := os.ReadFile(filepath.Join(state, LogFile)); !strings.Contains(string(b), "pipelock") {
		t.Errorf("pipelock's output is not in %s:\n%s", LogFile, b)
	}
}

// TestUnitRefusesAnotherVersion: the server and the preflight both refuse
// a pipelock of another version, naming both.
func TestUnitRefusesAnotherVersion(t *testing.T) {
	t.Setenv(Env, fakeBin)
	t.Setenv("FAKE_PIPELOCK_VERSION", "2.2.0")
	state := t.TempDir()
	p := unitPlan(t, state)
	raw, err := Unit.Section(p, p.Sidecars[0], sidecars.Listen{Network: "unix", Address: p.Sidecars[0].Listen.Address})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"server": func() error {
			_, err := Unit.New(context.Background(), raw, &sidecars.Env{StateDir: state})
			return err
		}(),
		"preflight": Unit.Preflight(context.Background(), p, p.Sidecars[0], sidecars.Host{StateDir: state}),
	} {
		if err == nil || !strings.Contains(err.Error(), "2.2.0") || !strings.Contains(err.Error(), Version) {
			t.Errorf("%s with pipelock 2.2.0: %v", name, err)
		}
	}
}

// TestUnitPreflightChecksTheConfig: the preflight passes the rendered
// config to pipelock check, and reports a missing binary with a fix.
func TestUnitPreflightChecksTheConfig(t *testing.T) {
	state := t.TempDir()
	p := unitPlan(t, state)
	t.Setenv(Env, fakeBin)
	log := filepath.Join(t.TempDir(), "log")
	t.Setenv("FAKE_PIPELOCK_LOG", log)
	if err := Unit.Preflight(context.Background(), p, p.Sidecars[0], sidecars.Host{StateDir: state}); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "pipelock check --config ") {
		t.Errorf("preflight did not run pipelock check:\n%s", b)
	}
	t.Setenv(Env, filepath.Join(t.TempDir(), "no-pipelock"))
	if err := Unit.Preflight(context.Background(), p, p.Sidecars[0], sidecars.Host{StateDir: state}); err == nil || !strings.Contains(err.Error(), Env) {
		t.Errorf("preflight without pipelock: %v", err)
	}
}

package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/sidecars"
	"github.com/bottle-dev/bottle/sidecars/egress"
)

// childEnv makes the test binary act as `bottle sidecars --config FILE
// --log FILE`.
const childEnv = "BOTTLE_RUNTIME_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		egress.UseResolver(loopbackResolver{})
		args := os.Args[1:]
		if len(args) != 5 || args[0] != "sidecars" || args[1] != "--config" || args[3] != "--log" {
			fmt.Fprintf(os.Stderr, "unexpected arguments %q\n", args)
			os.Exit(2)
		}
		if err := RunLogged(context.Background(), args[2], args[4], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "bottle sidecars:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func init() {
	// test-crash fails once the file its section names exists.
	sidecars.Register(&sidecars.Unit{Name: "test-crash", Port: 9001, Section: noSection,
		New: func(_ context.Context, raw json.RawMessage, _ *Env) (Service, error) {
			var path string
			if err := json.Unmarshal(raw, &path); err != nil {
				return nil, err
			}
			return crashService(path), nil
		}})
	// test-hang never finishes starting.
	sidecars.Register(&sidecars.Unit{Name: "test-hang", Port: 9002, Section: noSection,
		New: func(ctx context.Context, _ json.RawMessage, _ *Env) (Service, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}})
}

func init() {
	// test-chatty prints as many bytes as its section says on stderr,
	// then a line through the standard logger, as an HTTP server's errors
	// go.
	sidecars.Register(&sidecars.Unit{Name: "test-chatty", Port: 9003, Section: noSection,
		New: func(_ context.Context, raw json.RawMessage, env *Env) (Service, error) {
			var n int
			if err := json.Unmarshal(raw, &n); err != nil {
				return nil, err
			}
			return &chattyService{n: n, stderr: env.Stderr}, nil
		}})
	// test-panic panics, unrecovered, once the file its section names
	// exists.
	sidecars.Register(&sidecars.Unit{Name: "test-panic", Port: 9004, Section: noSection,
		New: func(_ context.Context, raw json.RawMessage, _ *Env) (Service, error) {
			var path string
			if err := json.Unmarshal(raw, &path); err != nil {
				return nil, err
			}
			return panicService(path), nil
		}})
}

// chattyLast is what test-chatty prints last.
const chattyLast = "test-chatty: done"

type chattyService struct {
	n      int
	stderr io.Writer
}

func (*chattyService) Listeners() []Listen { return nil }

func (c *chattyService) Serve(ctx context.Context) error {
	line := strings.Repeat("x", 1023) + "\n"
	for n := 0; n < c.n; n += len(line) {
		io.WriteString(c.stderr, line)
	}
	log.Print(chattyLast)
	<-ctx.Done()
	return nil
}

type panicService string

func (panicService) Listeners() []Listen { return nil }

func (p panicService) Serve(ctx context.Context) error {
	for {
		if _, err := os.Stat(string(p)); err == nil {
			panic("test-panic: on purpose")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func noSection(*plan.Plan, plan.Sidecar, Listen) (json.RawMessage, error) { return nil, nil }

type crashService string

func (crashService) Listeners() []Listen { return nil }

func (c crashService) Serve(ctx context.Context) error {
	for {
		if _, err := os.Stat(string(c)); err == nil {
			return errors.New("crashed on purpose")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// bottleDir makes a state directory and a config in it.
func bottleDir(t *testing.T, sidecars map[string]any) (stateDir, configPath string) {
	t.Helper()
	stateDir = filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	configPath = filepath.Join(stateDir, "sidecars.json")
	writeTestConfig(t, stateDir, configPath, sidecars)
	return stateDir, configPath
}

func writeTestConfig(t *testing.T, stateDir, configPath string, sidecars map[string]any) {
	t.Helper()
	cfg := &Config{Version: ConfigVersion, Slug: "test-1234", StateDir: stateDir, Sidecars: map[string]json.RawMessage{}}
	for name, spec := range sidecars {
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sidecars[name] = b
	}
	if err := WriteConfig(configPath, cfg); err != nil {
		t.Fatal(err)
	}
}

func launch(t *testing.T, stateDir, configPath string, timeout time.Duration) (*Handle, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Launch(context.Background(), LaunchOptions{
		Executable:   exe,
		ConfigPath:   configPath,
		StateDir:     stateDir,
		ReadyTimeout: timeout,
		Env:          append(os.Environ(), childEnv+"=1"),
	})
	if h != nil {
		t.Cleanup(func() { h.Stop(time.Second) })
	}
	return h, err
}

// upstream is an HTTP server the proxied requests go to, reached as
// host:port through names that resolve to 127.0.0.1.
func upstream(t *testing.T) int {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return port
}

// viaProxy sends GET http://target/ through the proxy at l.
func viaProxy(t *testing.T, l Listen, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout(l.Network, l.Address, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET via proxy: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// loopbackResolver resolves every name under example.test to 127.0.0.1.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if strings.HasSuffix(host, ".example.test.") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestLaunchServesReloadsAndStops(t *testing.T) {
	const name = "api.example.test"
	port := upstream(t)
	state, cfgPath := bottleDir(t, nil)
	sock := filepath.Join(state, "egress.sock")
	egressSpec := func(rules ...plan.Rule) map[string]any {
		return map[string]any{plan.SidecarEgress: egress.Spec{
			Listen:      Listen{Network: "unix", Address: sock},
			Rules:       rules,
			IdleTimeout: "1h",
		}}
	}
	writeTestConfig(t, state, cfgPath, egressSpec())
	h, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := h.Ready.Listeners[plan.SidecarEgress]
	if len(l) != 1 || l[0].Network != "unix" || l[0].Address != sock || h.Ready.PID != h.PID {
		t.Fatalf("ready: %+v", h.Ready)
	}
	for _, f := range []string{ReadyFile, PIDFile, LockFile, LogFile, EgressLogFile, "egress.sock"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil {
			t.Errorf("state file: %v", err)
		} else if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", f, fi.Mode())
		}
	}
	target := fmt.Sprintf("%s:%d", name, port)
	if code, body := viaProxy(t, l[0], target); code != 403 || !strings.Contains(body, "no rule allows this host") {
		t.Fatalf("before reload: %d %q", code, body)
	}

	// A second launcher for the same bottle is refused.
	if _, err := launch(t, state, cfgPath, time.Second); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Launch: %v, want ErrAlreadyRunning", err)
	}

	writeTestConfig(t, state, cfgPath, egressSpec(plan.Rule{Host: name, Ports: []int{port}, AllowPrivate: true, From: "//t.star:1:1"}))
	if err := syscall.Kill(h.PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, filepath.Join(state, LogFile), "reloaded")
	if code, body := viaProxy(t, l[0], target); code != 200 || body != "hello from "+target {
		t.Fatalf("after reload: %d %q", code, body)
	}

	if err := h.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, f := range []string{ReadyFile, PIDFile, "egress.sock"} {
		if _, err := os.Stat(filepath.Join(state, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after Stop: %v", f, err)
		}
	}
	// The egress log holds both decisions.
	b, err := os.ReadFile(filepath.Join(state, EgressLogFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"allowed":false`) || !strings.Contains(lines[1], `"allowed":true`) {
		t.Errorf("egress log:\n%s", b)
	}
	// The lock is free again.
	h2, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatalf("relaunch: %v", err)
	}
	h2.Stop(5 * time.Second)
}

func waitForLog(t *testing.T, path, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if l == line {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never logged %q:\n%s", path, line, b)
}

func TestSidecarDeathEndsProcessNonZero(t *testing.T) {
	state, cfgPath := bottleDir(t, nil)
	trigger := filepath.Join(t.TempDir(), "crash-now")
	writeTestConfig(t, state, cfgPath, map[string]any{
		"test-crash":       trigger,
		plan.SidecarEgress: egress.Spec{Listen: Listen{Network: "tcp", Address: "127.0.0.1:0"}},
	})
	h, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l := h.Ready.Listeners[plan.SidecarEgress]; len(l) != 1 || !strings.HasPrefix(l[0].Address, "127.0.0.1:") || strings.HasSuffix(l[0].Address, ":0") {
		t.Errorf("tcp listener: %+v", l)
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit when a sidecar died")
	}
	var ee *exec.ExitError
	if err := h.Err(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	b, _ := os.ReadFile(filepath.Join(state, LogFile))
	if !strings.Contains(string(b), `sidecar "test-crash": crashed on purpose`) {
		t.Errorf("log:\n%s", b)
	}
	if err := h.Stop(time.Second); err == nil {
		t.Error("Stop after a crash returned nil")
	}
}

// TestLaunchLogRotates: the sidecar process started by Launch writes
// LogFile through a file that rotates at sidecars.MaxLogBytes, whatever it
// prints and however much, the standard logger's lines included.
func TestLaunchLogRotates(t *testing.T) {
	state, cfgPath := bottleDir(t, map[string]any{"test-chatty": 2*sidecars.MaxLogBytes + sidecars.MaxLogBytes/2})
	h, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(state, LogFile)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(logPath); strings.HasSuffix(string(b), " "+chattyLast+"\n") {
			break // after its date and time
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q", logPath, chattyLast)
		}
	}
	if err := h.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, p := range []string{logPath, logPath + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("after writing past the cap twice: %v", err)
		}
		if st.Size() > sidecars.MaxLogBytes {
			t.Errorf("%s is %d bytes, over %d", filepath.Base(p), st.Size(), sidecars.MaxLogBytes)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
}

// TestLaunchLogsPanic: a panic in the sidecar process, whose stderr Launch
// does not keep, is in LogFile.
func TestLaunchLogsPanic(t *testing.T) {
	trigger := filepath.Join(t.TempDir(), "panic-now")
	state, cfgPath := bottleDir(t, map[string]any{"test-panic": trigger})
	h, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit on a panic")
	}
	b, _ := os.ReadFile(filepath.Join(state, LogFile))
	if !strings.Contains(string(b), "panic: test-panic: on purpose") || !strings.Contains(string(b), "goroutine ") {
		t.Errorf("log:\n%s", b)
	}
}

func TestLaunchFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		state, cfgPath := bottleDir(t, map[string]any{"test-hang": nil})
		start := time.Now()
		_, err := launch(t, state, cfgPath, 300*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "not ready after 300ms") {
			t.Fatalf("Launch: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("Launch took %v to give up", time.Since(start))
		}
		if _, err := os.Stat(filepath.Join(state, PIDFile)); !os.IsNotExist(err) {
			t.Errorf("pid file left: %v", err)
		}
	})
	t.Run("exits early", func(t *testing.T) {
		state, cfgPath := bottleDir(t, map[string]any{"no-such-sidecar": map[string]any{}})
		start := time.Now()
		_, err := launch(t, state, cfgPath, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "exited before it was ready") ||
			!strings.Contains(err.Error(), `unknown sidecar "no-such-sidecar"`) {
			t.Fatalf("Launch: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("Launch took %v to notice the exit", time.Since(start))
		}
	})
	t.Run("bad rule", func(t *testing.T) {
		state, cfgPath := bottleDir(t, map[string]any{plan.SidecarEgress: map[string]any{
			"listen": Listen{Network: "tcp", Address: "127.0.0.1:0"},
			"rules":  []plan.Rule{{Host: "Example.COM", Ports: []int{443}}},
		}})
		_, err := launch(t, state, cfgPath, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "not canonical") {
			t.Fatalf("Launch: %v", err)
		}
	})
	t.Run("open state dir", func(t *testing.T) {
		state, cfgPath := bottleDir(t, map[string]any{"test-hang": nil})
		os.Chmod(state, 0o755)
		_, err := launch(t, state, cfgPath, time.Second)
		if err == nil || !strings.Contains(err.Error(), "must be 0700") {
			t.Fatalf("Launch: %v", err)
		}
	})
}

func TestRunStopsOnSIGTERM(t *testing.T) {
	state, cfgPath := bottleDir(t, map[string]any{
		plan.SidecarEgress: egress.Spec{Listen: Listen{Network: "tcp", Address: "127.0.0.1:0"}},
	})
	h, err := launch(t, state, cfgPath, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(h.PID, syscall.SIGTERM)
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if err := h.Err(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want success", err)
	}
	if _, err := os.Stat(filepath.Join(state, ReadyFile)); !os.IsNotExist(err) {
		t.Errorf("ready file left: %v", err)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown field": `{"version":1,"slug":"s","state_dir":"/tmp/x","sidecars":{"egress":{}},"extra":1}`,
		"version":       `{"version":2,"slug":"s","state_dir":"/tmp/x","sidecars":{"egress":{}}}`,
		"relative dir":  `{"version":1,"slug":"s","state_dir":"x","sidecars":{"egress":{}}}`,
		"no sidecars":   `{"version":1,"slug":"s","state_dir":"/tmp/x","sidecars":{}}`,
		"trailing":      `{"version":1,"slug":"s","state_dir":"/tmp/x","sidecars":{"egress":{}}} {}`,
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(text), 0o600)
		if _, err := LoadConfig(p); err == nil {
			t.Errorf("%s: LoadConfig accepted %s", name, text)
		}
	}
}

// TestControllerGoneStopsSidecars: the dead man's switch. While another
// open file description holds the controller's lock the sidecars run; once
// it is released (the controller died), Run stops them and returns within
// a few polls.
func TestControllerGoneStopsSidecars(t *testing.T) {
	state := t.TempDir()
	os.Chmod(state, 0o700)
	lockPath := filepath.Join(state, "bottle.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(egress.Spec{Listen: Listen{Network: "unix", Address: filepath.Join(state, "egress.sock")}})
	cfg := &Config{Version: ConfigVersion, Slug: "t", StateDir: state, Controller: lockPath,
		Sidecars: map[string]json.RawMessage{plan.SidecarEgress: spec}}
	cfgPath := filepath.Join(state, "sidecars.json")
	if err := WriteConfig(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var stderr strings.Builder
	go func() { done <- Run(context.Background(), cfgPath, io.Discard, &stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ReadReady(state); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sidecars did not get ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the sidecars stopped while the controller lived: %v", err)
	case <-time.After(4 * ControllerPoll):
	}
	// The controller dies: its lock goes with it.
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	died := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		if d := time.Since(died); d > 2*time.Second {
			t.Errorf("the sidecars stopped %v after the controller died, want under 2 s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecars still run 5 s after the controller died")
	}
	if c, err := net.Dial("unix", filepath.Join(state, "egress.sock")); err == nil {
		c.Close()
		t.Error("the egress socket still accepts connections")
	}
	if !strings.Contains(stderr.String(), "the controlling bottle is gone") {
		t.Errorf("no word of why the sidecars stopped: %q", stderr.String())
	}
}

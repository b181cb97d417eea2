package docker_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file run the real bottle binary against a real Docker
// daemon. They skip, saying why, when no daemon answers, except under
// BOTTLE_CI=1 (set by .ci/run), where a missing daemon is a failure.

var (
	setupOnce sync.Once
	setupErr  error
	fixture   struct {
		bottle string // a static bottle binary
		image  string // the agent test image: busybox and the probe
		// pipelock is a static build of the pipelock stand-in.
		pipelock string
		// tlsupstream is a static build of the interception test's
		// HTTPS destination (testdata/tlsupstream), also in the image.
		tlsupstream string
	}
)

func requireDocker(t testing.TB) {
	t.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		if os.Getenv("BOTTLE_CI") != "" {
			t.Fatalf("docker integration tests cannot run in CI: %v", setupErr)
		}
		t.Skipf("skipping docker integration test: %v", setupErr)
	}
}

func setup() error {
	if out, err := exec.Command("docker", "version", "--format", "{{json .Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("no Docker daemon answers (%v: %s)", err, bytes.TrimSpace(out))
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("the agent test image needs a static busybox (apt-get install busybox-static): %v", err)
	}
	dir, err := os.MkdirTemp("", "bottle-docker-test-")
	if err != nil {
		return err
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	fixture.bottle = filepath.Join(dir, "bottle")
	fixture.pipelock = filepath.Join(dir, "pipelock")
	fixture.tlsupstream = filepath.Join(dir, "img", "tlsupstream")
	for _, b := range [][2]string{{fixture.bottle, "./cmd/bottle"}, {filepath.Join(dir, "img", "probe"), "./backends/docker/testdata/probe"},
		{fixture.tlsupstream, "./backends/docker/testdata/tlsupstream"},
		{filepath.Join(dir, "img", "mockapi"), "./backends/docker/testdata/mockapi"},
		{fixture.pipelock, "./internal/fakes/pipelock/cmd/pipelock"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b[1], err, out)
		}
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "img", "busybox"), bb, 0o755); err != nil {
		return err
	}
	dockerfile := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY probe /bin/probe\nCOPY tlsupstream /bin/tlsupstream\nCOPY mockapi /bin/mockapi\n"
	if err := os.WriteFile(filepath.Join(dir, "img", "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	h := sha256.New()
	for _, f := range []string{"Dockerfile", "busybox", "probe", "tlsupstream", "mockapi"} {
		b, _ := os.ReadFile(filepath.Join(dir, "img", f))
		h.Write(b)
	}
	fixture.image = "bottle-test/agent:" + hex.EncodeToString(h.Sum(nil))[:12]
	if out, err := exec.Command("docker", "build", "-q", "-t", fixture.image, filepath.Join(dir, "img")).CombinedOutput(); err != nil {
		return fmt.Errorf("build the agent test image: %v\n%s", err, out)
	}
	return nil
}

// env is one test's bottle environment: its own state, config and
// profile directories.
type env struct {
	t     testing.TB
	dir   string
	extra []string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	requireDocker(t)
	e := &env{t: t, dir: t.TempDir()}
	t.Cleanup(func() { e.cleanup() })
	return e
}

func (e *env) environ() []string {
	return append(append(os.Environ(),
		"XDG_STATE_HOME="+filepath.Join(e.dir, "state"),
		"XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"BOTTLE_SIDECAR_BINARY="+fixture.bottle,
	), e.extra...)
}

// profile writes a profile into the env's directory and returns its path.
func (e *env) profile(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	body = strings.ReplaceAll(body, "AGENT_IMAGE", fixture.image)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// command prepares `bottle ARGS...` in the env.
func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(fixture.bottle, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	return cmd
}

// run runs bottle to its end and returns its output and exit code.
func (e *env) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var o, er bytes.Buffer
	cmd := e.command(args...)
	cmd.Stdout, cmd.Stderr = &o, &er
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		e.t.Fatalf("bottle %v: %v", args, err)
	}
	return o.String(), er.String(), code
}

// slugOf asks a dry run which slug the profile would get.
func (e *env) slugOf(profile string) string {
	e.t.Helper()
	out, stderr, code := e.run("start", "--dry-run", "--format=json", profile)
	if code != 0 {
		e.t.Fatalf("dry run: %s", stderr)
	}
	var p struct{ Slug string }
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		e.t.Fatal(err)
	}
	return p.Slug
}

// cleanup removes whatever the test's bottles left, so that one failing
// test does not leak into the next.
func (e *env) cleanup() {
	e.run("cleanup")
}

// resources lists docker containers, volumes and networks labelled with slug.
func resources(t *testing.T, slug string) []string {
	t.Helper()
	var out []string
	for _, args := range [][]string{
		{"ps", "-a", "--filter", "label=dev.bottle.slug=" + slug, "--format", "{{.Names}}"},
		{"volume", "ls", "--filter", "label=dev.bottle.slug=" + slug, "--format", "{{.Name}}"},
		{"network", "ls", "--filter", "label=dev.bottle.slug=" + slug, "--format", "{{.Name}}"},
	} {
		b, err := exec.Command("docker", args...).Output()
		if err != nil {
			t.Fatalf("docker %v: %v", args, err)
		}
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dockerOut(t testing.TB, args ...string) string {
	t.Helper()
	b, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, b)
	}
	return strings.TrimSpace(string(b))
}

package docker_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReviewPersistentHomeHostLinks: links, a FIFO and a bogus file the
// previous run planted in the kept HOME, aimed at host paths, are never
// followed: not by bottle on the host (which must not touch the
// directory's contents), not by bottle guest seeding HOME; the next start
// does not hang and the host files stay as they were.
func TestReviewPersistentHomeHostLinks(t *testing.T) {
	e := newEnv(t)
	_, step := keptHomeBottle(t, e, "")
	victimDir := filepath.Join(e.dir, "host-victim")
	os.Mkdir(victimDir, 0o755)
	victim := filepath.Join(victimDir, "host.json")
	if err := os.WriteFile(victim, []byte(`{"host":"keep"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := step(`set -e
ln -s ` + victim + ` $HOME/.claude.json.tmp && mv -f $HOME/.claude.json.tmp $HOME/.claude.json
rm -rf $HOME/.claude && ln -s ` + victimDir + ` $HOME/.claude
mkfifo $HOME/fifo
ln -s / $HOME/root
echo planted
`)
	if code != 0 || !strings.Contains(out, "planted") {
		t.Fatalf("first start: exit %d\n%s\n%s", code, out, stderr)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			t.Error("the second start hangs")
		}
	}()
	out, stderr, code = step(`test -L $HOME/.claude.json && echo JSON-IS-LINK; test -L $HOME/.claude && echo DIR-IS-LINK; echo second-done
`)
	close(done)
	if code != 0 || !strings.Contains(out, "second-done") {
		t.Logf("second start: exit %d\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out, "JSON-IS-LINK") {
		t.Errorf("the planted .claude.json link survived seeding")
	}
	if b, _ := os.ReadFile(victim); string(b) != `{"host":"keep"}` {
		t.Errorf("a host file was written through a planted link: %s", b)
	}
	if _, err := os.Stat(filepath.Join(victimDir, "settings.json")); err == nil {
		t.Errorf("a file was created in a host directory through a planted link")
	}
}

// TestReviewPersistentHomeDirLinkIntoWorkspace: the previous run made
// .claude in the kept HOME a link to a directory of the workspace (a host
// directory). The next start's seeding must not write the agent's
// settings through it into the host workspace (SeedHome's doc: nothing is
// followed through a link in home).
func TestReviewPersistentHomeDirLinkIntoWorkspace(t *testing.T) {
	e := newEnv(t)
	ws, step := keptHomeBottle(t, e, "")
	if err := os.Mkdir(filepath.Join(ws, "target"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := step(`rm -rf $HOME/.claude && ln -s /workspace/target $HOME/.claude && echo planted
`)
	if code != 0 || !strings.Contains(out, "planted") {
		t.Fatalf("first start: exit %d\n%s\n%s", code, out, stderr)
	}
	os.RemoveAll(filepath.Join(ws, "target", "settings.json"))
	out, stderr, code = step(`test -L $HOME/.claude && echo DIR-IS-LINK; echo second-done
`)
	if code != 0 {
		t.Logf("second start: exit %d\n%s\n%s", code, out, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "target", "settings.json")); err == nil {
		t.Errorf("bottle guest wrote the agent's settings into the host workspace through the planted link $HOME/.claude -> /workspace/target:\n%s", b)
	}
	if strings.Contains(out, "DIR-IS-LINK") {
		t.Errorf("the planted .claude link survived seeding")
	}
}

// TestReviewNoRealKeyInState: with a key bound to the API host and a kept
// HOME, the real key (or its last 20 characters, what Claude Code
// approves) is in none of the files bottle wrote: the state directory
// while the bottle runs (the seed, the plan), the kept HOME after, nor
// bottle's output.
func TestReviewNoRealKeyInState(t *testing.T) {
	e := newEnv(t)
	const key = "sk-ant-api03-R3VIEWrealkeyrealkey9Kq2Lm8Zr3WxQ7vBn4Tc"
	e.extra = append(e.extra, "BOTTLE_TEST_KEY="+key)
	ws, step := keptHomeBottle(t, e, `
allow("api.anthropic.com")
secret("ANTHROPIC_API_KEY", from_env = "BOTTLE_TEST_KEY", hosts = ["api.anthropic.com"])
sidecar("supervise")
`)
	needles := [][]byte{[]byte(key), []byte(key[len(key)-20:]), []byte("R3VIEWrealkey")}
	scan := func(root string) {
		t.Helper()
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasPrefix(p, ws) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					t.Errorf("%s holds the real key (%q)", p, n)
				}
			}
			return nil
		})
	}
	ready, goOn := filepath.Join(ws, "ready"), filepath.Join(ws, "go")
	type result struct {
		out, stderr string
		code        int
	}
	res := make(chan result, 1)
	go func() {
		o, s, c := step(`echo KEY=$ANTHROPIC_API_KEY; cat $HOME/.claude.json; touch /workspace/ready
for i in $(seq 600); do test -e /workspace/go && break; sleep 0.1; done
echo agent-done
`)
		res <- result{o, s, c}
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			os.WriteFile(goOn, nil, 0o644)
			r := <-res
			t.Fatalf("the agent never got ready: exit %d\n%s\n%s", r.code, r.out, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	scan(filepath.Join(e.dir, "state"))
	os.WriteFile(goOn, nil, 0o644)
	r := <-res
	if r.code != 0 || !strings.Contains(r.out, "agent-done") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.stderr)
	}
	if !strings.Contains(r.out, "BOTTLEPH") {
		t.Fatalf("the agent's key is not a placeholder:\n%s", r.out)
	}
	for _, n := range needles {
		if strings.Contains(r.out, string(n)) || strings.Contains(r.stderr, string(n)) {
			t.Errorf("bottle's output holds the real key (%q)", n)
		}
	}
	scan(filepath.Join(e.dir, "state"))
}

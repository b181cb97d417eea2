package docker_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const sleepProfile = `
docker(image = "AGENT_IMAGE")
allow("allowed.test", ports = [8080], allow_private = True)
secret("CANARY", from_env = "BOTTLE_TEST_CANARY")
`

// TestExitCodeAndTeardown: the one-off command's exit code comes back and
// nothing of the bottle is left afterwards.
func TestExitCodeAndTeardown(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	profile := e.profile("exit.star", sleepProfile)
	slug := e.slugOf(profile)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", "echo in-sandbox; exit 7")
	if code != 7 || !strings.Contains(out, "in-sandbox") {
		t.Fatalf("exit %d, want 7; stdout %q stderr %q", code, out, stderr)
	}
	if left := resources(t, slug); len(left) > 0 {
		t.Errorf("left behind after exit: %v", left)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state", "bottle", slug)); !os.IsNotExist(err) {
		t.Errorf("state directory left behind: %v", err)
	}
}

// TestKillAndCleanup kills bottle with SIGKILL at several points of the
// launch; bottle cleanup then removes everything of that bottle, and a
// second cleanup finds nothing.
func TestKillAndCleanup(t *testing.T) {
	for _, point := range []struct {
		name string
		// reached reports whether the launch got to this point.
		reached func(t *testing.T, slug string) bool
	}{
		{"socket volume created", func(t *testing.T, slug string) bool {
			return strings.Contains(strings.Join(resources(t, slug), " "), "-sockets")
		}},
		{"bundle created", func(t *testing.T, slug string) bool {
			return strings.Contains(strings.Join(resources(t, slug), " "), "-sidecars")
		}},
		{"agent running", func(t *testing.T, slug string) bool { return agentRunning(slug) }},
	} {
		t.Run(point.name, func(t *testing.T) {
			e := newEnv(t)
			e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
			profile := e.profile("kill.star", sleepProfile)
			slug := e.slugOf(profile)
			// No pipes: after bottle dies, the docker CLI it ran may live on
			// until cleanup removes its container, and would hold them open.
			cmd := e.command("start", "--yes", profile, "--", "sleep", "120")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, point.name, 60*time.Second, func() bool { return point.reached(t, slug) })
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			out, errOut, code := e.run("cleanup")
			if code != 0 {
				t.Fatalf("cleanup exited %d: %s", code, errOut)
			}
			if !strings.Contains(out, "removed") {
				t.Errorf("cleanup printed nothing it removed:\n%s", out)
			}
			// The bundle may have been created by a docker CLI that was
			// still finishing when bottle died: cleanup must get it too.
			waitFor(t, "nothing left", 10*time.Second, func() bool {
				if left := resources(t, slug); len(left) > 0 {
					e.run("cleanup")
					return false
				}
				return true
			})
			if _, err := os.Stat(filepath.Join(e.dir, "state", "bottle", slug)); !os.IsNotExist(err) {
				t.Errorf("state directory left behind: %v", err)
			}
			again, _, code := e.run("cleanup")
			if code != 0 || strings.TrimSpace(again) != "" {
				t.Errorf("second cleanup was not a no-op (exit %d):\n%s", code, again)
			}
		})
	}
}

// TestConcurrentStarts: two bottles of one profile started at once get
// distinct slugs and socket volumes, both run, and both clean up.
func TestConcurrentStarts(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	profile := e.profile("twin.star", sleepProfile)
	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each reports its container's name (its slug) and the
			// sockets it sees, which must be its own.
			outs[i], _, codes[i] = e.run("start", "--yes", profile, "--", "sh", "-c", "hostname; ls /run/bottle; sleep 2")
		}()
	}
	wg.Wait()
	for i := range outs {
		if codes[i] != 0 {
			t.Fatalf("bottle %d exited %d: %s", i, codes[i], outs[i])
		}
	}
	a, b := strings.TrimSpace(outs[0]), strings.TrimSpace(outs[1])
	if a == "" || a == b {
		t.Errorf("the two bottles' agents are one: %q and %q", a, b)
	}
	if left, _, _ := e.run("ls", "--format=json"); strings.Contains(left, "slug") {
		t.Errorf("bottles left after both exited: %s", left)
	}
	if out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=dev.bottle.slug", "--format", "{{.Names}}").Output(); strings.Contains(string(out), "twin-") {
		t.Errorf("containers left: %s", out)
	}
}

// TestSecretNotLeaked: a canary secret reaches the agent's environment and
// nowhere else: not the plan, not any process's arguments, not the bundle's
// command line, not the logs.
func TestSecretNotLeaked(t *testing.T) {
	e := newEnv(t)
	canary := fmt.Sprintf("canary-%d-do-not-leak", time.Now().UnixNano())
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY="+canary)
	profile := e.profile("secret.star", sleepProfile)
	slug := e.slugOf(profile)
	// The agent proves the secret arrived by its digest, so that the
	// canary is in no command line but bottle's own would-be leaks.
	sum := sha256.Sum256([]byte(canary + "\n"))
	cmd := e.command("start", "--yes", profile, "--", "sh", "-c", `echo "$CANARY" | sha256sum; sleep 30`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, "the agent", 60*time.Second, func() bool { return strings.Contains(stdout.String(), hex.EncodeToString(sum[:])) })

	ps, err := exec.Command("ps", "-eo", "args").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ps), canary) {
		t.Errorf("the secret appears in a process's arguments")
	}
	bundle := dockerOut(t, "inspect", "--format", "{{json .Path}} {{json .Args}} {{json .Config.Env}}", "bottle-"+slug+"-sidecars")
	if strings.Contains(bundle, canary) {
		t.Errorf("the secret appears in the bundle's command line or environment")
	}
	stateDir := filepath.Join(e.dir, "state", "bottle", slug)
	filepath.Walk(stateDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("the secret appears in %s", p)
		}
		if fi.Mode().Perm()&0o077 != 0 && !strings.HasSuffix(p, "passwd") {
			t.Errorf("%s is readable by others: %v", p, fi.Mode())
		}
		return nil
	})
	if st, err := os.Stat(stateDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode: %v %v", st.Mode(), err)
	}
	logs := dockerOut(t, "logs", "bottle-"+slug+"-sidecars")
	if strings.Contains(logs, canary) || strings.Contains(stderr.String(), canary) {
		t.Errorf("the secret appears in the logs")
	}
}

// TestLsLogsStop: a running bottle is listed, its refusals are in its
// denied log, and bottle stop tears it down; the bottle exits 130.
func TestLsLogsStop(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	profile := e.profile("ops.star", sleepProfile)
	slug := e.slugOf(profile)
	cmd := e.command("start", "--yes", profile, "--", "sh", "-c", "/bin/probe http http://denied.test:9999/; sleep 60")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the probe", 60*time.Second, func() bool { return strings.Contains(stdout.String(), "status 403") })

	out, _, code := e.run("ls", "--format=json")
	if code != 0 || !strings.Contains(out, `"slug": "`+slug+`"`) || !strings.Contains(out, `"state": "running"`) || !strings.Contains(out, `"backend": "docker"`) {
		t.Errorf("bottle ls does not show the running bottle (exit %d):\n%s", code, out)
	}
	out, _, code = e.run("logs", slug, "--denied")
	if code != 0 || !strings.Contains(out, `"host":"denied.test"`) || !strings.Contains(out, `"allowed":false`) {
		t.Errorf("bottle logs --denied does not show the refusal (exit %d):\n%s", code, out)
	}
	if _, stderr, code := e.run("stop", slug); code != 0 {
		t.Fatalf("bottle stop exited %d: %s", code, stderr)
	}
	cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 130 {
		t.Errorf("a stopped bottle exited %d, want 130", got)
	}
	if left := resources(t, slug); len(left) > 0 {
		t.Errorf("left behind after stop: %v", left)
	}
	if out, _, _ := e.run("ls", "--format=json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("bottle ls after stop: %s", out)
	}
	// The record outlives the bottle: its refusals and the bundle's own
	// output are still there.
	if out, _, code := e.run("logs", slug, "--denied"); code != 0 || !strings.Contains(out, `"host":"denied.test"`) {
		t.Errorf("bottle logs --denied after the end (exit %d):\n%s", code, out)
	}
	if out, _, code := e.run("logs", slug); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("bottle logs after the end lacks the bundle's output (exit %d):\n%s", code, out)
	}
}

// TestSameSlugOtherStateHome: a second bottle of the same profile and
// workspace under another state home gets the same slug; its launch fails
// on the names in use, and its teardown must remove nothing of the first
// bottle, which runs on to its own end.
func TestSameSlugOtherStateHome(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	profile := e.profile("same.star", sleepProfile)
	slug := e.slugOf(profile)
	a := e.command("start", "--yes", profile, "--", "sh", "-c", "sleep 6; echo a-done")
	var aOut strings.Builder
	a.Stdout = &aOut
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bottle A's agent", 60*time.Second, func() bool { return agentRunning(slug) })

	other := e.otherOwner()
	_, stderr, code := other.run("start", "--yes", profile, "--", "true")
	if code == 0 {
		t.Errorf("bottle B started with bottle A's names in use:\n%s", stderr)
	}
	if err := a.Wait(); err != nil || !strings.Contains(aOut.String(), "a-done") {
		t.Errorf("bottle B's teardown hurt bottle A (%v):\n%s\nB said:\n%s", err, aOut.String(), stderr)
	}
	if left := resources(t, slug); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestFailedAgentStartLeavesNothing: when the agent container fails to
// start at once (here a file mounted over a directory of the image) while
// the bundle is still being started, the teardown still removes the
// bundle and the socket volume.
func TestFailedAgentStartLeavesNothing(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.dir, "afile"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := e.profile("badmount.star", `
docker(image = "AGENT_IMAGE")
mount("afile", "/etc")
`)
	slug := e.slugOf(profile)
	_, stderr, code := e.run("start", "--yes", profile, "--", "true")
	if code == 0 {
		t.Fatalf("the agent started with a file over /etc:\n%s", stderr)
	}
	if left := resources(t, slug); len(left) > 0 {
		t.Errorf("a failed start left %v behind:\n%s", left, stderr)
	}
}

// TestSignalsTearDown: SIGTERM, and SIGHUP (the terminal closed), tear a
// running bottle down: bottle exits 130 and nothing is left.
func TestSignalsTearDown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t)
			e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
			slug, cmd := e.startSleeping("sig.star")
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("bottle did not end within 60 s of %v", sig)
			}
			if got := cmd.ProcessState.ExitCode(); got != 130 {
				t.Errorf("bottle exited %d after %v, want 130", got, sig)
			}
			if left := resources(t, slug); len(left) > 0 {
				t.Errorf("left behind after %v: %v", sig, left)
			}
		})
	}
}

// TestAgentIdentityAndLimits: the agent runs as the invoking user's uid
// and gid, with a name, a writable HOME of its own, no new privileges, no
// capabilities and a pids limit; what it writes in the workspace belongs
// to the user on the host.
func TestAgentIdentityAndLimits(t *testing.T) {
	e := newEnv(t)
	ws := filepath.Join(e.dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := e.profile("ident.star", `
docker(image = "AGENT_IMAGE")
mount("ws", "/workspace")
`)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c",
		`echo "ids $(id -u) $(id -g) $(id -un)"; touch "$HOME/h" && echo home-writable; `+
			`grep -E "^(NoNewPrivs|CapEff|CapPrm|CapBnd):" /proc/self/status; `+
			`echo "pids $(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)"; `+
			`echo x > /workspace/made-by-agent`)
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	name := "bottle"
	if os.Getuid() == 0 {
		name = "root"
	}
	for _, want := range []string{
		fmt.Sprintf("ids %d %d %s", os.Getuid(), os.Getgid(), name),
		"home-writable",
		"NoNewPrivs:\t1",
		"CapEff:\t0000000000000000",
		"CapPrm:\t0000000000000000",
		"CapBnd:\t0000000000000000",
		"pids 4096",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the agent's identity or limits lack %q:\n%s", want, out)
		}
	}
	fi, err := os.Stat(filepath.Join(ws, "made-by-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
		t.Errorf("a file the agent wrote is owned by %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
}

// TestCleanupOtherOwner: two owners (two state homes) on one daemon.
// Another owner's ls does not list a running bottle and its cleanup does
// not touch it; when the bottle's controller is killed, its own owner's ls
// calls it orphaned and its own cleanup removes it.
func TestCleanupOtherOwner(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	slug, cmd := e.startSleeping("owned.star")

	other := e.otherOwner()
	if out, _, code := other.run("ls", "--format=json"); code != 0 || strings.Contains(out, slug) {
		t.Errorf("another owner's ls lists the bottle (exit %d):\n%s", code, out)
	}
	if out, errOut, code := other.run("cleanup"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("another owner's cleanup acted (exit %d):\n%s%s", code, out, errOut)
	}
	if left := resources(t, slug); len(left) != 3 {
		t.Fatalf("another owner's cleanup removed part of the bottle: %v", left)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if out, _, _ := e.run("ls", "--format=json"); !strings.Contains(out, `"state": "orphaned"`) {
		t.Errorf("its own ls does not call the bottle orphaned:\n%s", out)
	}
	if _, errOut, code := e.run("cleanup"); code != 0 {
		t.Fatalf("cleanup exited %d: %s", code, errOut)
	}
	waitFor(t, "nothing left", 10*time.Second, func() bool { return len(resources(t, slug)) == 0 })
}

// TestDeadMansSwitch: when bottle start dies by SIGKILL, the agent loses
// its egress within 2 s: a probe inside that keeps trying the proxy sees
// it fail. bottle guest then stops the agent, and the owner's next cleanup
// removes what is left.
func TestDeadMansSwitch(t *testing.T) {
	e := newEnv(t)
	e.extra = append(e.extra, "BOTTLE_TEST_CANARY=x")
	ws := filepath.Join(e.dir, "ws")
	if err := os.Mkdir(ws, 0o777); err != nil {
		t.Fatal(err)
	}
	profile := e.profile("dms.star", sleepProfile+"\nmount(\"ws\", \"/ws\")\n")
	slug := e.slugOf(profile)
	// Each answer from the proxy (a 403 for this host) stamps the time.
	cmd := e.command("start", "--yes", profile, "--", "sh", "-c",
		`while true; do /bin/probe http http://denied.test:9999/ | grep -q "status 403" && date +%s > /ws/ok-$(date +%s); sleep 0.1; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the proxy answering", 60*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(ws, "ok-*"))
		return len(m) > 0
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killed := time.Now().Unix()
	time.Sleep(5 * time.Second)
	m, _ := filepath.Glob(filepath.Join(ws, "ok-*"))
	last := int64(0)
	for _, f := range m {
		var s int64
		fmt.Sscan(strings.TrimPrefix(filepath.Base(f), "ok-"), &s)
		last = max(last, s)
	}
	// Seconds are whole: an answer in the second after the kill's, plus
	// one for rounding, is within the 2 s.
	if last > killed+2 {
		t.Errorf("the agent still reached the proxy %d s after bottle was killed", last-killed)
	}
	// And bottle guest, seeing the sidecars gone, stops the agent.
	waitFor(t, "the agent to stop", 15*time.Second, func() bool { return !agentRunning(slug) })
	if _, errOut, code := e.run("cleanup"); code != 0 {
		t.Fatalf("cleanup exited %d: %s", code, errOut)
	}
	waitFor(t, "nothing left", 10*time.Second, func() bool { return len(resources(t, slug)) == 0 })
}

// TestWorkspacePlants: the agent tries every way we know to leave
// something in the workspace that a host tool runs or trusts (git's config
// and hooks, renaming .git away and making a new one, redirecting git's
// config with commondir, a submodule's git directory, a hooks directory
// that core.hooksPath names inside the worktree, direnv, agent and editor
// settings, the profile and a file it loads, a path the profile protects)
// and fails at each, while ordinary work and a real git commit succeed.
// Afterwards the host's git status and commit run nothing it planted, and
// no placeholder is left behind.
func TestWorkspacePlants(t *testing.T) {
	img := debianImage(t)
	e := newEnv(t)
	ws := filepath.Join(e.dir, "ws")
	if err := os.MkdirAll(filepath.Join(ws, ".husky", "_"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, ws, "init", "-q")
	git(t, ws, "config", "core.hooksPath", ".husky/_")
	git(t, ws, "commit", "-q", "--allow-empty", "-m", "first")
	if err := os.WriteFile(filepath.Join(ws, "lib.star"), []byte("IMAGE = \""+img+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(ws, "bottle.star")
	body := "load(\"//lib.star\", \"IMAGE\")\ndocker(image = IMAGE)\nmount(\".\", \"/workspace\", protect = [\"Makefile\"])\n"
	if err := os.WriteFile(profile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ws)
	marker := filepath.Join(e.dir, "PWNED")
	tries := map[string]string{
		"CONFIG":     `printf '[core]\n\tfsmonitor = "touch ` + marker + `"\n' >> .git/config`,
		"HOOK":       `printf '#!/bin/sh\ntouch ` + marker + `\n' > .git/hooks/pre-commit && chmod 755 .git/hooks/pre-commit`,
		"HOOKSPATH":  `printf '#!/bin/sh\ntouch ` + marker + `\n' > .husky/_/pre-commit`,
		"HUSKY-MV":   `mv .husky .husky-old`,
		"GIT-MV":     `mv .git .git-old`,
		"COMMONDIR":  `mkdir -p evil && printf '[core]\n\tfsmonitor = "touch ` + marker + `"\n' > evil/config && echo ../evil > .git/commondir`,
		"MODULES":    `mkdir -p .git/modules/x`,
		"WORKTREE":   `echo '[core]' > .git/config.worktree`,
		"GITMODULES": `echo '[submodule "x"]' > .gitmodules`,
		"ENVRC":      `echo 'touch ` + marker + `' > .envrc`,
		"MCP":        `echo '{}' > .mcp.json`,
		"CLAUDE":     `mkdir -p .claude/x || echo '{}' > .claude/settings.json`,
		"VSCODE":     `echo '{}' > .vscode/tasks.json`,
		"IDEA":       `mkdir -p .idea/x`,
		"PROFILE":    `echo 'allow("evil.example.com")' >> bottle.star`,
		"PROFILE-MV": `mv bottle.star b.star && echo 'allow("evil.example.com")' > bottle.star`,
		"LOADED":     `echo 'allow("evil.example.com")' >> lib.star`,
		"PROTECT":    `echo 'all:' > Makefile`,
	}
	var script strings.Builder
	script.WriteString("cd /workspace; ")
	for name, cmd := range tries {
		fmt.Fprintf(&script, "( %s ) 2>/dev/null && echo PLANTED-%s; ", cmd, name)
	}
	script.WriteString(`echo work > work.txt && git add work.txt && git -c user.name=a -c user.email=a@example.com commit -q -m work && echo COMMITTED; true`)
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", script.String())
	if code != 0 {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	for name := range tries {
		if strings.Contains(out, "PLANTED-"+name+"\n") {
			t.Errorf("the agent could: %s (%s)", name, tries[name])
		}
	}
	if !strings.Contains(out, "COMMITTED") {
		t.Errorf("the agent could not work and commit:\n%s%s", out, stderr)
	}
	if got := git(t, ws, "log", "-1", "--format=%s"); got != "work" {
		t.Errorf("last commit on the host is %q, want the agent's", got)
	}
	after := snapshot(t, ws)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed on the host", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && p != "work.txt" && p != "evil" && p != "evil/config" && !strings.HasPrefix(p, ".git/") {
			t.Errorf("%s appeared on the host (a placeholder left behind, or a plant)", p)
		}
	}
	for _, gone := range []string{".git/commondir", ".git/config.worktree", ".git/modules", ".envrc", ".mcp.json", ".claude", ".gitmodules"} {
		if _, err := os.Lstat(filepath.Join(ws, gone)); err == nil {
			t.Errorf("%s is on the host after the bottle", gone)
		}
	}
	// The host's git runs nothing the agent planted.
	exec.Command("git", "-C", ws, "status").Run()
	exec.Command("git", "-C", ws, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x").Run()
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the host's git ran what the agent planted")
	}
}

// snapshot maps each file and directory under dir, except git's objects,
// refs, logs and index, to its content (a file) or "dir".
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch rel {
		case ".git/objects", ".git/refs", ".git/logs":
			return filepath.SkipDir
		case ".", ".git/index", ".git/COMMIT_EDITMSG", ".git/ORIG_HEAD":
			return nil
		}
		if fi.IsDir() {
			m[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startSleeping starts, in the background, a bottle of the sleeping
// profile written as name, waits until its agent runs, and returns its
// slug and the bottle process (killed at the end of the test).
func (e *env) startSleeping(name string) (string, *exec.Cmd) {
	e.t.Helper()
	profile := e.profile(name, sleepProfile)
	slug := e.slugOf(profile)
	cmd := e.command("start", "--yes", profile, "--", "sleep", "120")
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(e.t, "the agent", 60*time.Second, func() bool { return agentRunning(slug) })
	return slug, cmd
}

// otherOwner is another owner on the same daemon: e with a state home of
// its own.
func (e *env) otherOwner() *env {
	return &env{t: e.t, dir: e.dir, extra: append(slices.Clone(e.extra), "XDG_STATE_HOME="+filepath.Join(e.dir, "other-state"))}
}

// agentRunning reports whether the agent container of slug runs.
func agentRunning(slug string) bool {
	out, _ := exec.Command("docker", "ps", "--filter", "name=bottle-"+slug+"-agent", "--filter", "status=running", "--format", "{{.Names}}").Output()
	return len(bytes.TrimSpace(out)) > 0
}

// TestWorkspaceNewSubmoduleWarned: a submodule the agent adds to the index
// (its own repository with a planted core.fsmonitor) is the one plant no
// mount can prevent; bottle names it when the bottle ends, quoted.
func TestWorkspaceNewSubmoduleWarned(t *testing.T) {
	img := debianImage(t)
	e := newEnv(t)
	ws := filepath.Join(e.dir, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, ws, "init", "-q")
	git(t, ws, "commit", "-q", "--allow-empty", "-m", "first")
	profile := filepath.Join(ws, "bottle.star")
	if err := os.WriteFile(profile, []byte("docker(image = \""+img+"\")\nmount(\".\", \"/workspace\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", `cd /workspace
		git init -q "sub$(printf '\033')" && cd sub* && git -c user.name=a -c user.email=a@example.com commit -q --allow-empty -m a &&
		printf '[core]\n\tfsmonitor = "touch /tmp/x"\n' >> .git/config && h=$(git rev-parse HEAD) && cd .. &&
		git update-index --add --cacheinfo "160000,$h,$(ls -d sub*)" && echo ADDED`)
	if code != 0 {
		t.Fatalf("bottle exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, `bottle: warning: the agent added a submodule at "sub\x1b"`) {
		t.Errorf("no warning naming the submodule, quoted:\n%s", stderr)
	}
	if !strings.Contains(stderr, `bottle: warning: the agent made a repository at "sub\x1b"`) {
		t.Errorf("no warning naming the new repository, quoted:\n%s", stderr)
	}
	if strings.Contains(stderr, "sub\x1b") {
		t.Errorf("the agent's raw path reached the terminal:\n%q", stderr)
	}
}

// TestMountSpecInjection: docker reads --mount as CSV, and bottle builds
// mount specs from paths an agent can choose (a submodule it added in an
// earlier run). A comma or a quote in them must not add a field: here a
// planted submodule path tries to mount the host's secret directory into
// the next run.
func TestMountSpecInjection(t *testing.T) {
	img := debianImage(t)
	e := newEnv(t)
	ws := filepath.Join(e.dir, "ws")
	secret := filepath.Join(e.dir, "secret")
	for _, d := range []string{ws, secret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(secret, "key"), []byte("HOST-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, ws, "init", "-q")
	git(t, ws, "commit", "-q", "--allow-empty", "-m", "first")
	// What an earlier run of the agent left: a submodule whose path is a
	// mount spec's tail.
	link := `x,src=` + secret + `,dst=/stolen"q`
	sub := filepath.Join(ws, filepath.FromSlash(link))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, sub, "init", "-q")
	git(t, sub, "commit", "-q", "--allow-empty", "-m", "a")
	git(t, ws, "update-index", "--add", "--cacheinfo", "160000,"+git(t, sub, "rev-parse", "HEAD")+","+link)
	profile := filepath.Join(ws, "bottle.star")
	if err := os.WriteFile(profile, []byte("docker(image = \""+img+"\")\nmount(\".\", \"/workspace\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", `cat /stolen/key /stolen*/.git/key 2>/dev/null; ls /workspace >/dev/null && echo RAN`)
	if strings.Contains(out, "HOST-SECRET") {
		t.Fatalf("a planted path mounted a host directory into the sandbox:\n%s", out)
	}
	if code != 0 || !strings.Contains(out, "RAN") {
		t.Errorf("bottle exited %d, want the command to run:\n%s%s", code, out, stderr)
	}
}

// TestMountSourceIdentity: a mount whose source lies inside the
// workspace is checked by bottle guest against the inode bottle saw (the
// container sees the host's inodes through a bind mount), so the agent
// runs; a source that is a symbolic link is refused before anything starts.
func TestMountSourceIdentity(t *testing.T) {
	img := debianImage(t)
	e := newEnv(t)
	ws := filepath.Join(e.dir, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(e.dir, "p.star")
	body := "docker(image = \"" + img + "\")\nmount(\"ws\", \"/workspace\")\nmount(\"ws/cache\", \"/cache\", readonly = True)\n"
	if err := os.WriteFile(profile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := e.run("start", "--yes", profile, "--", "sh", "-c", "ls -d /cache && echo RAN")
	if code != 0 || !strings.Contains(out, "RAN") {
		t.Fatalf("bottle exited %d:\n%s%s", code, out, stderr)
	}
	if err := os.Remove(filepath.Join(ws, "cache")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(ws, "cache")); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = e.run("start", "--yes", profile, "--", "sh", "-c", "echo RAN")
	if code == 0 || strings.Contains(out, "RAN") || !strings.Contains(stderr, "is a symbolic link") {
		t.Errorf("a symlinked source: exit %d:\n%s%s", code, out, stderr)
	}
}

// Package netns runs commands inside a fresh Linux network namespace whose
// only interface is an up loopback device: the stand-in tests use for a
// sandbox with no network device, such as a smolvm guest with net = false.
// Its probes (probe.go) show from inside what such a command can and cannot
// reach, for the escape matrix of the design's security invariants.
//
// It needs root, unshare(1) from util-linux, ip(8) from iproute2 and sh.
// Tests call Require first; it skips with the reason when they are missing,
// or fails instead when RequireEnv is set, so CI cannot pass by skipping.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv names the environment variable that, set to 1, makes Require
// fail a test rather than skip it when namespaces are unavailable.
const RequireEnv = "BOTTLE_REQUIRE_NETNS"

// ExitSetup is the exit code of a command whose namespace could not be set
// up (lo could not be brought up); the command itself did not run.
const ExitSetup = 125

// setupScript brings lo up inside the new namespace and then becomes the
// command, so the process Command starts ends up being the command itself.
const setupScript = `ip link set lo up || { echo "netns: cannot bring lo up" >&2; exit 125; }; exec "$@"`

// Command returns a command that runs argv inside a new network namespace
// whose only interface is lo, up. unshare and sh exec in turn, so the process
// started is argv[0] itself and signals sent to it reach argv directly. The
// namespace disappears when the last process in it exits.
func Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"--net", "--", "sh", "-c", setupScript, "netns"}, argv...)
	return exec.CommandContext(ctx, "unshare", args...)
}

// Result is what a command run in a namespace printed and how it ended.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the command's exit code, -1 if a signal killed it, or
	// ExitSetup if the namespace could not be set up.
	ExitCode int
}

// Run runs argv in a new namespace (see Command) with env added to this
// process's environment, and returns its output and exit code. The error is
// non-nil only when the command could not be run at all; a non-zero exit is
// reported in Result.ExitCode.
func Run(ctx context.Context, env []string, argv ...string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("netns: no command to run")
	}
	cmd := Command(ctx, argv...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		return res, fmt.Errorf("netns: run %q: %w", argv[0], err)
	}
	return res, nil
}

// Available reports why commands cannot be run in a new network namespace
// here, or nil when they can. It tries once and remembers the answer.
func Available() error {
	return available()
}

var available = sync.OnceValue(func() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("network namespaces need Linux, not %s", runtime.GOOS)
	}
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("creating a network namespace needs root; running as uid %d", uid)
	}
	for _, tool := range []string{"unshare", "ip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (unshare: util-linux, ip: iproute2): %w", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Run(ctx, nil, "ip", "-o", "link", "show", "up")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("unshare --net failed (exit %d): %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if links := strings.Count(strings.TrimSpace(res.Stdout), "\n") + 1; links != 1 || !strings.Contains(res.Stdout, "lo:") {
		return fmt.Errorf("a new network namespace should have only lo up, but has:\n%s", res.Stdout)
	}
	return nil
})

// Require skips t with the reason when Available fails, or fails t when
// RequireEnv is set to 1.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("network namespace required (%s=1) but unavailable: %v", RequireEnv, err)
	}
	t.Skipf("skipping: network namespace unavailable: %v (set %s=1 to make this a failure)", err, RequireEnv)
}

package docker

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/bottle-dev/bottle/backends"
)

// imageBuild is one docker build that bottle runs: the sidecar bundle or
// a shipped agent image.
type imageBuild struct {
	// what names the image for people: "the agent image X (...)".
	what string
	tag  string
	dir  string
	// base is the image the Dockerfile starts FROM, which docker must
	// pull unless the daemon has it; empty for scratch.
	base string
	// fix says what to do when base cannot be pulled.
	fix  string
	args []string
}

// buildTail is how many lines of a failed build's output bottle shows.
const buildTail = 25

// maxBuildLog bounds the output a build keeps: its end is what matters.
const maxBuildLog = 256 << 10

// build runs docker build and shows it as progress: one line when it
// starts, its latest output line in place while it runs (on a terminal
// only), and one line when it is done. On failure it shows the end of
// the output and returns an error that names the cause and the fix.
func (d *Backend) build(ctx context.Context, b imageBuild, progress io.Writer) error {
	cli, err := d.cli()
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "bottle: building %s\n", b.what)
	start := time.Now()
	log := newBuildLog(progress)
	args := append(append([]string{"build", "--label", "dev.bottle.image=1", "--tag", b.tag}, b.args...), b.dir)
	code, err := d.runner().Attach(ctx, backends.Cmd{Path: cli, Args: args},
		backends.Stdio{Stdin: strings.NewReader(""), Stdout: log, Stderr: log})
	log.clearLive()
	took := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		return fmt.Errorf("build image %s: %w", b.tag, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("build image %s: %w", b.tag, ctx.Err())
	}
	if code == 0 {
		fmt.Fprintf(progress, "bottle: built %s in %s\n", b.tag, took)
		return nil
	}
	fmt.Fprintf(progress, "bottle: docker build of %s failed after %s; the end of its output:\n", b.tag, took)
	for _, l := range log.tail(buildTail) {
		fmt.Fprintf(progress, "    %s\n", l)
	}
	return buildFailure(b, code, log.String())
}

// buildFailure turns a failed build's output into one line: the cause,
// when bottle recognises it, and what to do.
func buildFailure(b imageBuild, code int, out string) error {
	if b.base != "" && basePullFailed(out) {
		return fmt.Errorf("the base image %s cannot be pulled (no image registry reachable?); %s", b.base, b.fix)
	}
	if c := npmNetworkFailure(out); c != "" {
		return fmt.Errorf("docker build of %s could not reach the npm registry (npm: %s); let docker build reach it (network, DNS, proxy), or build or tag an image yourself and name it in docker(image = ...)", b.tag, c)
	}
	return fmt.Errorf("build image %s: docker build exited with %d (the end of its output is above)", b.tag, code)
}

// pullFailures are what docker prints when it cannot fetch an image from
// its registry: BuildKit's "[internal] load metadata" step and its final
// "failed to solve: IMAGE: ..." line, and the daemon's answers.
var pullFailures = []string{
	"failed to resolve source metadata",
	"pull access denied",
	": failed to do request:",
	": failed to authorize:",
	"manifest unknown",
}

// networkFailures are Go's and the daemon's wording for a registry that
// does not answer; the legacy builder prints them bare after its
// "Step 1/N : FROM ..." line.
var networkFailures = []string{
	"dial tcp",
	"TLS handshake timeout",
	"i/o timeout",
	"no such host",
	"connection refused",
	"Client.Timeout exceeded",
}

var legacyStep = regexp.MustCompile(`(?m)^Step [0-9]+/[0-9]+ : (\S+)`)

// basePullFailed reports whether a build failed because its base image
// could not be pulled.
func basePullFailed(out string) bool {
	if containsAny(out, pullFailures) {
		return true
	}
	if m := legacyStep.FindAllStringSubmatch(out, -1); len(m) > 0 && strings.EqualFold(m[len(m)-1][1], "FROM") {
		// The legacy builder stopped at a FROM step: pulling failed.
		after := out[strings.LastIndex(out, m[len(m)-1][0]):]
		return containsAny(after, networkFailures)
	}
	return strings.Contains(out, "load metadata for") && containsAny(out, networkFailures)
}

// npmCode finds npm's error code, in the legacy builder's output and in
// BuildKit's, which starts each line with the step and a time.
var npmCode = regexp.MustCompile(`(?m)^(?:#[0-9]+ [0-9.]+ )?npm (?:ERR!|error) code (\S+)`)

// npmNetworkCodes are npm's error codes for a registry it cannot reach
// or whose certificate it does not trust.
var npmNetworkCodes = []string{
	"ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH", "EHOSTUNREACH",
	"SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
	"CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_SOCKET_TIMEOUT",
}

// npmNetworkFailure returns npm's error code when an npm install in the
// build could not reach the npm registry, else "".
func npmNetworkFailure(out string) string {
	for _, m := range npmCode.FindAllStringSubmatch(out, -1) {
		if slices.Contains(npmNetworkCodes, m[1]) {
			return m[1]
		}
	}
	return ""
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// buildLog keeps the end of a build's output and, when progress is a
// terminal, shows the latest line in place of the previous one.
type buildLog struct {
	mu    sync.Mutex
	buf   []byte
	live  io.Writer
	width int
	shown bool
}

func newBuildLog(progress io.Writer) *buildLog {
	l := &buildLog{}
	if f, ok := progress.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		l.live, l.width = f, 80
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 10 {
			l.width = w
		}
	}
	return l
}

// Write implements io.Writer.
func (l *buildLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - maxBuildLog; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	if l.live != nil {
		if lines := lastLines(string(l.buf[max(0, len(l.buf)-4096):]), 1); len(lines) == 1 {
			line := "  " + lines[0]
			if r := []rune(line); len(r) > l.width-1 {
				line = string(r[:l.width-1])
			}
			fmt.Fprintf(l.live, "\r\033[K%s", line)
			l.shown = true
		}
	}
	return len(p), nil
}

// clearLive removes the line shown in place.
func (l *buildLog) clearLive() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown {
		fmt.Fprint(l.live, "\r\033[K")
		l.shown = false
	}
}

func (l *buildLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

func (l *buildLog) tail(n int) []string { return lastLines(l.String(), n) }

// lastLines returns the last n non-blank lines of s, without control
// characters, so that a build's output cannot move the cursor.
func lastLines(s string, n int) []string {
	var out []string
	for _, line := range slices.Backward(strings.Split(s, "\n")) {
		if i := strings.LastIndexByte(line, '\r'); i >= 0 && i < len(line)-1 {
			line = line[i+1:]
		}
		line = strings.TrimRight(strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
				return -1
			}
			return r
		}, line), " \t")
		if line == "" {
			continue
		}
		if out = append(out, line); len(out) == n {
			break
		}
	}
	slices.Reverse(out)
	return out
}

package pipelock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Env names the environment variable that chooses the pipelock binary: a
// path, or a name looked up on PATH. Find falls back to "pipelock" on PATH.
const Env = "BOTTLE_PIPELOCK"

// commandTimeout bounds CheckVersion and CheckConfig when their context
// has no earlier deadline.
const commandTimeout = 30 * time.Second

// devVersion is what a pipelock built without release linker flags
// reports (internal/cliutil/version.go:9@v2.3.0).
const devVersion = "0.1.0-dev"

// Find returns the absolute path of the pipelock binary to run: the one
// named by the environment variable Env (a path, or a name looked up on
// PATH), else "pipelock" on PATH. When there is none it returns a one-line
// error that says how to fix it. Find does not check the version; see
// CheckVersion.
func Find() (string, error) {
	name := os.Getenv(Env)
	if name == "" {
		bin, err := exec.LookPath("pipelock")
		if err != nil {
			return "", fmt.Errorf("pipelock is not on PATH (%v); install pipelock %s's release build, or set %s to its path", err, Version, Env)
		}
		return filepath.Abs(bin)
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s=%q names no executable (%v); set %s to the path of pipelock %s's release build, or unset it to use pipelock from PATH", Env, name, err, Env, Version)
	}
	return filepath.Abs(bin)
}

// CheckVersion runs `bin --version` and returns nil if it reports pipelock
// Version. pipelock's root command is a cobra command whose Version is
// pipelock's (internal/cli/root.go:60@v2.3.0), so --version prints
// "pipelock version <Version>\n" on stdout (cobra command.go:939-953,
// 2064-2072@v1.10.2); release builds set <Version> from the tag without
// its "v" (.goreleaser.yaml:26@v2.3.0), so pipelock 2.3.0 prints
// "pipelock version 2.3.0". A leading "v" is tolerated.
//
// Any other version is refused with an error naming both versions; so is
// output that is not that line, and a failure to run bin. The command is
// bounded by ctx and by a 30-second timeout.
func CheckVersion(ctx context.Context, bin string) error {
	stdout, stderr, err := runCommand(ctx, bin, "--version")
	if err != nil {
		return fmt.Errorf("run %s --version: %v%s", bin, err, firstLine(stderr))
	}
	line := strings.TrimSpace(stdout)
	got, ok := strings.CutPrefix(line, "pipelock version ")
	if !ok || strings.ContainsAny(got, " \n") {
		return fmt.Errorf("%s --version printed %q, not pipelock's \"pipelock version %s\"; is %s pipelock?", bin, line, Version, bin)
	}
	if strings.TrimPrefix(got, "v") != Version {
		hint := ""
		if got == devVersion {
			hint = " (" + devVersion + " is what a pipelock built without release flags reports, e.g. by go build or go install)"
		}
		return fmt.Errorf("%s is pipelock %s%s, but bottle renders its configuration for pipelock %s only; install pipelock %s's release build, or point %s at it",
			bin, got, hint, Version, Version, Env)
	}
	return nil
}

// CheckConfig runs `bin check --config configPath` (flags:
// internal/cli/diag/check.go:83-84@v2.3.0) and returns nil if pipelock
// accepts the file. Otherwise it returns pipelock's complaint: check
// prints "Config validation FAILED: <error>" and main prints <error> again
// (check.go:38-42, cmd/pipelock/main.go:29-32@v2.3.0), so the error is
// given once, with every occurrence of configPath replaced by "the
// rendered pipelock.yaml" so that the message names no temporary file.
// The command is bounded by ctx and by a 30-second timeout.
func CheckConfig(ctx context.Context, bin, configPath string) error {
	_, stderr, err := runCommand(ctx, bin, "check", "--config", configPath)
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(stderr, "Config validation FAILED: ")
	if half := msg[:len(msg)/2]; len(msg)%2 == 0 && strings.HasSuffix(half, "\n") && half+half == msg {
		msg = half
	}
	msg = strings.TrimSpace(strings.ReplaceAll(msg, configPath, "the rendered pipelock.yaml"))
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("pipelock %s rejects the rendered pipelock.yaml: %s", Version, msg)
}

// runCommand runs bin with args and returns its stdout and stderr.
func runCommand(ctx context.Context, bin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return stdout.String(), stderr.String(), err
}

// firstLine returns ": " and the first non-empty line of s, or "".
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return ": " + line
		}
	}
	return ""
}

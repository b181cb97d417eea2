package pipelock

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartFails(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "pipelock.yaml")
	if err := os.WriteFile(bad, []byte("mode: strict\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), fakeBin, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "pipelock exited before it answered /health") ||
		!strings.Contains(err.Error(), "loading config: invalid config: strict mode requires at least one domain in api_allowlist") {
		t.Errorf("Start with a bad config: %v", err)
	}

	// A program that never answers /health is killed at the deadline.
	silent := filepath.Join(t.TempDir(), "silent")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\necho \"$$\" > \"$0.pid\"\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Start(ctx, silent, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "/health in time") {
		t.Errorf("Start of a program that never answers: %v", err)
	}
	b, _ := os.ReadFile(silent + ".pid")
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid <= 0 {
		t.Errorf("the silent program never ran (pid file %q)", b)
	} else if alive(pid) {
		t.Errorf("the silent program %d still runs after Start gave up", pid)
	}
}

// TestStopKills checks that Stop escalates to SIGKILL for a process group
// that ignores SIGTERM, and that it kills the whole group.
func TestStopKills(t *testing.T) {
	p, err := spawn("/bin/sh", []string{"-c", "trap '' TERM; sleep 60 & wait"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let sh set its trap and start sleep
	start := time.Now()
	err = p.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not exit within 200ms of SIGTERM and was killed") {
		t.Errorf("Stop = %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	pgid := p.cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); groupAlive(pgid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the process group survived SIGKILL")
		}
	}
}

// TestPdeathsig starts pipelock from a child "bottle" and kills that
// child: the kernel must kill pipelock too.
func TestPdeathsig(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PR_SET_PDEATHSIG is Linux only")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), parentEnv+"="+renderFile(t, rule("api.anthropic.com", false)), Env+"="+fakeBin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the parent printed no pid: %v\n%s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("pipelock %d not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("pipelock outlived the process that started it")
		}
	}
}

// procState returns the state letter of /proc/PID/stat ("" if gone) and
// the process group, on Linux.
func procState(pid string) (state string, pgrp int) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 3 {
		return "", 0
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0], pgrp
}

// alive reports whether pid runs; a zombie, killed but not yet reaped by
// whoever inherited it, does not count.
func alive(pid int) bool {
	if runtime.GOOS == "linux" {
		state, _ := procState(strconv.Itoa(pid))
		return state != "" && state != "Z"
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// groupAlive reports whether any process of group pgid runs (zombies aside).
func groupAlive(pgid int) bool {
	if runtime.GOOS != "linux" {
		return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if state, pgrp := procState(e.Name()); pgrp == pgid && state != "Z" && state != "" {
			return true
		}
	}
	return false
}

package pipelock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartTimeout bounds how long Start waits for pipelock to answer its
// health endpoint when ctx has no earlier deadline.
const StartTimeout = 30 * time.Second

// startAttempts is how many loopback ports Start tries: it picks a free
// port and hands it to pipelock, and another process may take it between
// the two.
const startAttempts = 3

// Process is a running `pipelock run`, started by Start. Its methods are
// safe for concurrent use.
type Process struct {
	cmd  *exec.Cmd
	addr string
	tail *tailWriter

	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // cmd.Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs `bin run --config configPath --listen 127.0.0.1:PORT` with a
// free loopback port, and returns once pipelock answers its health
// endpoint. The flags are pipelock's own (internal/cli/runtime/run.go:183-185
// @v2.3.0); --listen overrides the file's fetch_proxy.listen
// (internal/cli/runtime/server.go:339-341@v2.3.0), and pipelock serves
// /health, the forward proxy and the rest on that one listener
// (internal/proxy/proxy.go:1811-1844, 1880-1882@v2.3.0). Start polls
// GET http://ADDR/health until it answers 200 with "status":"healthy"
// (internal/proxy/proxy.go:3276-3305@v2.3.0; pipelock's own healthcheck
// command also takes 200 as healthy: internal/cli/runtime/healthcheck.go:29-47).
// pipelock watches configPath and reloads it when it changes or on SIGHUP
// (internal/cli/runtime/server.go:615-633@v2.3.0), so the file should stay
// in place, unchanged, until Stop.
//
// pipelock's stdout (JSON log lines) and stderr (its banner and errors) go
// to logTo, which may be nil. The child runs in its own process group,
// and on Linux it is killed if bottle dies (PR_SET_PDEATHSIG); bottle's
// environment is passed on, which pipelock's dlp.scan_env scans.
//
// ctx bounds only the start, and StartTimeout applies when ctx has no
// earlier deadline; once Start returns, the process runs until Stop. If
// pipelock exits first, or does not become healthy in time, Start kills
// it and returns an error that quotes the end of its stderr. If the port
// it picked was taken meanwhile, it tries another, three times in all.
func Start(ctx context.Context, bin, configPath string, logTo io.Writer) (*Process, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	var err error
	for range startAttempts {
		var addr string
		if addr, err = freeLoopbackAddr(); err != nil {
			return nil, fmt.Errorf("start pipelock: %w", err)
		}
		var p *Process
		p, err = spawn(bin, []string{"run", "--config", configPath, "--listen", addr}, addr, logTo)
		if err != nil {
			return nil, fmt.Errorf("start pipelock: %w", err)
		}
		if err = p.waitHealthy(ctx); err == nil {
			return p, nil
		}
		p.Stop(0)
		if !strings.Contains(p.tail.String(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start pipelock: %w", err)
}

// Addr returns the loopback TCP address pipelock listens on,
// "127.0.0.1:PORT". Its forward proxy (HTTPS_PROXY) and /health are both
// there.
func (p *Process) Addr() string { return p.addr }

// Done returns a channel that is closed when the pipelock process has
// exited, whether through Stop or on its own.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop ends pipelock: SIGTERM to its process group, on which pipelock shuts
// down and exits 0 (internal/cli/runtime/run.go:172-176,
// server.go:1142-1144@v2.3.0); if it has not exited after grace, SIGKILL
// to the group. It waits until the process has been reaped.
//
// It returns nil when pipelock exited cleanly after SIGTERM; an error when
// it had to be killed, exited with a failure, or had already exited before
// Stop was called (quoting the end of its stderr). Later calls return the
// first call's result.
func (p *Process) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			p.stopErr = fmt.Errorf("pipelock had already exited: %v%s", p.waitErr, p.tail.suffix())
			return
		default:
		}
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
			if p.waitErr != nil {
				p.stopErr = fmt.Errorf("pipelock exited with %v after SIGTERM%s", p.waitErr, p.tail.suffix())
			}
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
			p.stopErr = fmt.Errorf("pipelock did not exit within %v of SIGTERM and was killed", grace)
		}
	})
	return p.stopErr
}

// spawn starts bin with args in its own process group and returns at
// once. addr is recorded for Addr.
func spawn(bin string, args []string, addr string, logTo io.Writer) (*Process, error) {
	if logTo == nil {
		logTo = io.Discard
	}
	out := &lockedWriter{w: logTo}
	p := &Process{addr: addr, tail: &tailWriter{max: 4096}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = out
	p.cmd.Stderr = io.MultiWriter(out, p.tail)
	p.cmd.SysProcAttr = sysProcAttr()
	started := make(chan error, 1)
	go func() {
		// PR_SET_PDEATHSIG fires when the thread that forked the child
		// exits, not the process: keep this goroutine on its thread until
		// the child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// waitHealthy polls /health until pipelock answers healthy, exits, or ctx
// ends.
func (p *Process) waitHealthy(ctx context.Context) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = p.healthy(ctx, client); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("pipelock exited before it answered /health (%v)%s", p.waitErr, p.tail.suffix())
		case <-ctx.Done():
			return fmt.Errorf("pipelock did not answer http://%s/health in time (%v; last: %v)%s", p.addr, ctx.Err(), last, p.tail.suffix())
		case <-tick.C:
		}
	}
}

// healthy asks /health once.
func (p *Process) healthy(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Status string `json:"status"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h); err != nil || h.Status != "healthy" {
		return fmt.Errorf("/health answered %q, not pipelock's healthy status (%v)", h.Status, err)
	}
	return nil
}

// freeLoopbackAddr returns "127.0.0.1:PORT" for a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// lockedWriter serialises writes from the child's stdout and stderr copiers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// suffix returns the last lines of stderr as a suffix for an error
// message, or "" when there were none.
func (t *tailWriter) suffix() string {
	s := strings.TrimSpace(t.String())
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; pipelock said:\n" + strings.Join(lines, "\n")
}

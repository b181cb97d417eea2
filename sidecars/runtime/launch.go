package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/sidecars"
)

// DefaultReadyTimeout is how long Launch waits for readiness by default.
const DefaultReadyTimeout = 15 * time.Second

// LaunchOptions says what Launch starts.
type LaunchOptions struct {
	// Executable is the bottle binary; empty means the running one.
	Executable string
	// ConfigPath is the rendered sidecar configuration.
	ConfigPath string
	// StateDir is the bottle's state directory (created 0700 if missing).
	// It must be the configuration's state_dir: the ready file is read
	// from there.
	StateDir string
	// ReadyTimeout bounds the wait for readiness; 0 means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Env is the sidecars' environment; nil means this process's.
	Env []string
}

// Handle is a running sidecar process started by Launch.
type Handle struct {
	// PID is the sidecar process's pid, which is also its process group.
	PID int
	// Ready is what the process reported once all sidecars listened.
	Ready Ready

	cmd      *exec.Cmd
	stateDir string
	lock     *os.File
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// ErrAlreadyRunning is returned by Launch when another process holds the
// state directory's sidecar lock.
var ErrAlreadyRunning = errors.New("sidecars already running")

// Launch starts `<Executable> sidecars --config <ConfigPath> --log <LogFile>`
// in its own process group, so that the process appends what it prints, and
// how it fails, to LogFile in the state directory, rotating it at
// sidecars.MaxLogBytes (RunLogged), and waits until it reports readiness. It holds LockFile
// (flock) for as long as the process lives, passing it on to the process so
// that the lock outlives this one if it dies, and writes PIDFile. It fails
// when the process exits or the timeout passes first, with the end of the
// process's log in the error; it then leaves nothing running.
func Launch(ctx context.Context, opts LaunchOptions) (*Handle, error) {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("launch sidecars: find bottle executable: %w", err)
		}
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	if err := checkStateDir(opts.StateDir); err != nil {
		return nil, fmt.Errorf("launch sidecars: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.StateDir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("launch sidecars: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		pid, _ := os.ReadFile(filepath.Join(opts.StateDir, PIDFile))
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("launch sidecars in %s: %w (pid %s); stop that bottle first", opts.StateDir, ErrAlreadyRunning, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("launch sidecars: lock %s: %w", LockFile, err)
	}
	h := &Handle{stateDir: opts.StateDir, lock: lock, done: make(chan struct{})}
	os.Remove(filepath.Join(opts.StateDir, ReadyFile))
	logPath := filepath.Join(opts.StateDir, LogFile)
	var logStart int64
	if st, err := os.Stat(logPath); err == nil {
		logStart = st.Size()
	}
	// The process writes the log itself, through a file that rotates: a
	// descriptor of the log as its stdout and stderr would let it grow
	// without bound. What it prints goes there too; stdout and stderr
	// themselves are discarded.
	cmd := exec.Command(exe, "sidecars", "--config", opts.ConfigPath, "--log", logPath)
	cmd.Env = opts.Env
	cmd.ExtraFiles = []*os.File{lock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	if err != nil {
		h.release()
		return nil, fmt.Errorf("launch sidecars: %w", err)
	}
	h.cmd, h.PID = cmd, cmd.Process.Pid
	go func() {
		h.waitErr = cmd.Wait()
		close(h.done)
	}()
	if err := sidecars.WriteFileAtomic(filepath.Join(opts.StateDir, PIDFile), []byte(strconv.Itoa(h.PID)+"\n"), 0o600); err != nil {
		h.Stop(0)
		return nil, fmt.Errorf("launch sidecars: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if r, err := ReadReady(opts.StateDir); err == nil && r.PID == h.PID {
			h.Ready = *r
			return h, nil
		}
		select {
		case <-h.done:
			h.Stop(0)
			return nil, fmt.Errorf("launch sidecars: %s exited before it was ready (%v)%s", exe, h.waitErr, logTail(logPath, logStart))
		case <-ctx.Done():
			h.Stop(0)
			return nil, fmt.Errorf("launch sidecars: not ready after %s: %w%s", timeout, ctx.Err(), logTail(logPath, logStart))
		case <-tick.C:
		}
	}
}

// logTail returns the last lines the process logged since offset, as a
// suffix for an error message. A log shorter than offset has rotated since;
// all of it is the process's.
func logTail(path string, offset int64) string {
	const maxTail = 2048
	b, err := os.ReadFile(path)
	if int64(len(b)) < offset {
		offset = 0
	}
	if err != nil || int64(len(b)) == offset {
		return "; it logged nothing"
	}
	b = b[offset:]
	if len(b) > maxTail {
		b = b[len(b)-maxTail:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "; the end of " + path + ":\n" + strings.TrimRight(string(b), "\n")
}

// Done is closed when the sidecar process has exited.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Err returns how the sidecar process exited, once Done is closed.
func (h *Handle) Err() error {
	select {
	case <-h.done:
		return h.waitErr
	default:
		return nil
	}
}

// Stop asks the sidecar process group to stop with SIGTERM, kills it with
// SIGKILL if it has not exited after grace, then removes the pid and ready
// files and releases the lock. It returns an error when the process had to
// be killed or exited with a failure. Calling Stop again returns the first
// call's result.
func (h *Handle) Stop(grace time.Duration) error {
	h.stopOnce.Do(func() { h.stopErr = h.stop(grace) })
	return h.stopErr
}

func (h *Handle) stop(grace time.Duration) error {
	defer h.release()
	select {
	case <-h.done:
		if h.waitErr != nil {
			return fmt.Errorf("sidecars (pid %d) had exited: %w", h.PID, h.waitErr)
		}
		return nil
	default:
	}
	var killed bool
	if grace > 0 {
		syscall.Kill(-h.PID, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-h.done:
		case <-t.C:
			killed = true
		}
		t.Stop()
	} else {
		killed = true
	}
	if killed {
		// The whole group: children of the sidecars must not outlive them.
		syscall.Kill(-h.PID, syscall.SIGKILL)
		<-h.done
	}
	if killed && grace > 0 {
		return fmt.Errorf("sidecars (pid %d) did not stop within %s and were killed", h.PID, grace)
	}
	if !killed && h.waitErr != nil {
		return fmt.Errorf("sidecars (pid %d): %w", h.PID, h.waitErr)
	}
	return nil
}

// release removes the pid and ready files and unlocks the state directory.
func (h *Handle) release() {
	if h.cmd != nil {
		os.Remove(filepath.Join(h.stateDir, PIDFile))
		os.Remove(filepath.Join(h.stateDir, ReadyFile))
	}
	h.lock.Close()
}

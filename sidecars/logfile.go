package sidecars

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
)

// MaxLogBytes is the size at which a log file opened by OpenLog rotates:
// it is renamed with a ".1" suffix (replacing the previous one) and a new
// file begun, so a log keeps at most twice this. Every log a sandbox can
// make grow (egress, git gate, pipelock, the sidecars' output) is one.
const MaxLogBytes = 16 << 20

// RotatingFile is an append-only log file that rotates at MaxLogBytes.
type RotatingFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
	// crash is set once the file receives the process's crash output.
	crash bool
}

// OpenLog opens path for appending, creating it with mode 0600. The
// caller closes it.
func OpenLog(path string) (*RotatingFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &RotatingFile{path: path, f: f, size: st.Size()}, nil
}

// Write appends p, first rotating the file when p would take it past
// MaxLogBytes.
func (lf *RotatingFile) Write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.size > 0 && lf.size+int64(len(p)) > MaxLogBytes {
		if err := lf.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := lf.f.Write(p)
	lf.size += int64(n)
	return n, err
}

func (lf *RotatingFile) rotate() error {
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	lf.f.Close()
	lf.f, lf.size = f, 0
	if lf.crash {
		debug.SetCrashOutput(f, debug.CrashOptions{})
	}
	return nil
}

// CrashOutput makes the Go runtime also write this process's fatal error or
// unhandled panic to the file (runtime/debug.SetCrashOutput), also once it
// has rotated, until Close: for a process whose standard error is not kept.
func (lf *RotatingFile) CrashOutput() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if err := debug.SetCrashOutput(lf.f, debug.CrashOptions{}); err != nil {
		return fmt.Errorf("log crashes to %s: %w", lf.path, err)
	}
	lf.crash = true
	return nil
}

// Close closes the file.
func (lf *RotatingFile) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.crash {
		debug.SetCrashOutput(nil, debug.CrashOptions{})
		lf.crash = false
	}
	return lf.f.Close()
}

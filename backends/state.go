package backends

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Files in a bottle's state directory.
const (
	// InfoFile describes the bottle (Info, JSON).
	InfoFile = "bottle.json"
	// PlanFile is the plan the bottle was launched from.
	PlanFile = "plan.json"
	// LockFile is locked (flock) by the bottle process for as long as it runs.
	LockFile = "bottle.lock"
)

// ErrTaken is returned by Claim when the state directory already exists:
// another bottle has the slug.
var ErrTaken = errors.New("state directory already in use")

// claimGrace is how long a freshly created state directory without an
// info file counts as being set up rather than abandoned.
const claimGrace = time.Minute

// Info describes a bottle; it is written to its state directory at launch.
type Info struct {
	Slug    string    `json:"slug"`
	Backend string    `json:"backend"`
	Profile string    `json:"profile"`
	Digest  string    `json:"digest"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// State is a claimed bottle state directory, locked while the bottle runs.
type State struct {
	Dir  string
	Slug string
	lock *os.File
}

// Claim creates the state directory dir (mode 0700, its parents too) and
// locks it. It returns ErrTaken when dir exists, so that two bottles of
// one profile started at once never share a slug.
func Claim(dir string) (*State, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, ErrTaken
		}
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lock the state directory: %w", err)
	}
	return &State{Dir: dir, Slug: filepath.Base(dir), lock: f}, nil
}

// WriteFile writes a file of the state directory atomically, mode 0600.
func (s *State) WriteFile(name string, data []byte) error {
	return writeFileAtomic(filepath.Join(s.Dir, name), data)
}

// WriteInfo records the bottle's description.
func (s *State) WriteInfo(info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return s.WriteFile(InfoFile, append(b, '\n'))
}

// Release removes the state directory and drops the lock. It returns nil
// when the directory is already gone.
func (s *State) Release() error {
	RemovePlaceholders(s.Dir)
	keepRecord(s.Dir)
	err := os.RemoveAll(s.Dir)
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// HistoryDir is the directory under the state root (home) that keeps the
// record of ended bottles: HistoryDir/<slug>/ holds the last run's plan,
// info and logs.
const HistoryDir = ".history"

// History returns where the record of slug's last run is kept, under the
// state root home.
func History(home, slug string) string { return filepath.Join(home, HistoryDir, slug) }

// keepRecord moves the record of a bottle (its plan, its info, and every
// log: *.log, *.jsonl and their rotated *.1 files) from its state
// directory to the history, replacing the record of the slug's previous
// run, so that bottle logs works after the bottle ended, until bottle
// cleanup --history prunes it. Failures are ignored: the record is best
// kept, never a reason to keep a bottle's state.
func keepRecord(dir string) {
	home, slug := filepath.Dir(dir), filepath.Base(dir)
	dst := History(home, slug)
	tmp := dst + ".new"
	os.RemoveAll(tmp)
	if os.MkdirAll(tmp, 0o700) != nil {
		return
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		n := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		if n == PlanFile || n == InfoFile || strings.HasSuffix(n, ".log") || strings.HasSuffix(n, ".jsonl") ||
			strings.HasSuffix(n, ".log.1") || strings.HasSuffix(n, ".jsonl.1") {
			os.Rename(filepath.Join(dir, n), filepath.Join(tmp, n))
		}
	}
	os.RemoveAll(dst)
	os.Rename(tmp, dst)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		if _, err = tmp.Write(data); err == nil {
			err = tmp.Close()
		}
		if err == nil {
			return os.Rename(tmp.Name(), path)
		}
	}
	tmp.Close()
	return fmt.Errorf("write %s: %w", filepath.Base(path), err)
}

// Entry is a state directory found under the state home.
type Entry struct {
	Dir  string
	Slug string
	// Info is nil when the info file is missing or unreadable.
	Info *Info
	// Running reports whether a bottle process holds the directory's lock,
	// or the directory is too new to judge.
	Running bool
}

// Scan lists the state directories under home, sorted by slug. A missing
// home is no error: there are no bottles.
func Scan(home string) ([]Entry, error) {
	des, err := os.ReadDir(home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list bottles: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue // .history holds ended bottles' records
		}
		e := Entry{Dir: filepath.Join(home, de.Name()), Slug: de.Name()}
		if b, err := os.ReadFile(filepath.Join(e.Dir, InfoFile)); err == nil {
			var info Info
			if json.Unmarshal(b, &info) == nil {
				e.Info = &info
			}
		}
		e.Running = Locked(e.Dir)
		if !e.Running && e.Info == nil {
			if st, err := os.Stat(e.Dir); err == nil && time.Since(st.ModTime()) < claimGrace {
				e.Running = true
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out, nil
}

// Locked reports whether a live bottle process holds dir's lock.
func Locked(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

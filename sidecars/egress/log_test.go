package egress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogCapsFields: a 1 MB method token (a review's log amplification)
// costs a bounded line.
func TestLogCapsFields(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(&buf)
	huge := strings.Repeat("A", 1<<20)
	l.Write(Event{Time: time.Now(), Method: huge, Host: huge, Reason: huge, Error: huge, Allowed: false})
	if buf.Len() > 8*MaxField+1024 {
		t.Fatalf("one event with 1 MB fields wrote %d bytes", buf.Len())
	}
	var e Event
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Method, strings.Repeat("A", MaxField)) || !strings.Contains(e.Method, "bytes cut") {
		t.Errorf("the cut method does not say so: %.80q", e.Method)
	}
}

// TestLogRateLimitsDenials: a flood of refusals is written up to the burst
// and then counted in one summary line; every allowed request is still
// written.
func TestLogRateLimitsDenials(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(&buf)
	const flood = 100000
	for i := 0; i < flood; i++ {
		l.Write(Event{Time: time.Now(), Method: "CONNECT", Host: "denied.example", Port: 443, Reason: "no rule allows this host"})
	}
	l.Write(Event{Time: time.Now(), Method: "CONNECT", Host: "allowed.example", Port: 443, Allowed: true})
	l.Flush()
	var denied, allowed, suppressed int64
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Suppressed > 0:
			suppressed += e.Suppressed
		case e.Allowed:
			allowed++
		default:
			denied++
		}
	}
	if allowed != 1 {
		t.Errorf("the allowed request was logged %d times", allowed)
	}
	if denied > DenialBurst+DenialRate*5 {
		t.Errorf("%d refusals logged one by one from a burst of %d", denied, flood)
	}
	if denied+suppressed != flood {
		t.Errorf("%d logged and %d counted, want %d in all", denied, suppressed, flood)
	}
	if buf.Len() > 64<<10 {
		t.Errorf("a flood of %d refusals wrote %d bytes", flood, buf.Len())
	}
}

// TestLogFileRotates: the log file never grows past MaxLogBytes; the
// older lines move to a .1 file.
func TestLogFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "egress.jsonl")
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := []byte(strings.Repeat("x", 4095) + "\n")
	for written := 0; written < 3*MaxLogBytes; written += len(line) {
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > MaxLogBytes {
			t.Errorf("%s is %d bytes, over %d", filepath.Base(p), st.Size(), MaxLogBytes)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", filepath.Base(p), st.Mode().Perm())
		}
	}
}

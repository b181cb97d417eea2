package egress

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one line of the egress log: one decision on one request, written
// when the request ends (a refusal at once, a tunnel when it closes).
type Event struct {
	// Time is when the request arrived, RFC 3339 with nanoseconds, UTC.
	Time time.Time `json:"time"`
	// Method is "CONNECT" for a tunnel, else the HTTP method of an
	// absolute-URI request.
	Method string `json:"method"`
	// Host and Port are the destination; Host as Decision.Host gives it.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Allowed reports whether the proxy let the request through.
	Allowed bool `json:"allowed"`
	// Reason is Decision.Reason, or the refusal of a resolved address.
	Reason string `json:"reason"`
	// Rule and RuleFrom name the deciding rule (when allowed) or the
	// nearest rule (when refused), and where the profile declared it.
	Rule     string `json:"rule,omitempty"`
	RuleFrom string `json:"rule_from,omitempty"`
	// Addr is the address the proxy dialed.
	Addr string `json:"addr,omitempty"`
	// Status is the HTTP status the proxy answered the client with (200
	// for an established tunnel) or, for a forwarded request, the
	// upstream's status.
	Status int `json:"status"`
	// Error is why an allowed request failed (lookup, dial, upstream).
	Error string `json:"error,omitempty"`
	// BytesUp and BytesDown count payload bytes from the client to the
	// destination and back (bodies for absolute-URI requests).
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
	// DurationMS is how long the request or tunnel lasted, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
}

// Log appends events as JSON lines to a writer. Each line is written with a
// single Write under a mutex, so lines never interleave. Its methods are
// safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// NewLog returns a log that writes to w.
func NewLog(w io.Writer) *Log {
	return &Log{w: w}
}

// OpenLogFile opens path for appending, creating it with mode 0600, for use
// as the writer of a Log. The caller closes it.
func OpenLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open egress log: %w", err)
	}
	return f, nil
}

// Write appends e as one line. The first write error is kept (see Err);
// logging never stops the proxy.
func (l *Log) Write(e Event) {
	if l == nil || l.w == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil && l.err == nil {
		l.err = fmt.Errorf("write egress log: %w", err)
	}
}

// Err returns the first error writing the log, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

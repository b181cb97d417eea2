package egress

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bottle-dev/bottle/sidecars"
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
	// Path is the URL path of a request the proxy decrypted (an
	// intercepted host's), without the query; "[withheld]" when the
	// request was refused for what its URL carries.
	Path string `json:"path,omitempty"`
	// Intercepted is set on a CONNECT whose TLS the proxy terminated and
	// on each request it read decrypted.
	Intercepted bool `json:"intercepted,omitempty"`
	// Substituted names the bound secrets whose placeholders the proxy
	// replaced with their values in the request's headers.
	Substituted []string `json:"substituted,omitempty"`
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
	// Suppressed, on a summary line only, counts the refusals not logged
	// one by one since the last line because they came faster than
	// DenialRate.
	Suppressed int64 `json:"suppressed,omitempty"`
}

// Bounds on what the sandbox can make the log grow by (a review wrote
// 100 MB in 1.6 s with 1 MB method tokens, and 22,000 refusals a second).
const (
	// MaxField is the most bytes of any one string field that is logged;
	// a longer value is cut and marked.
	MaxField = 256
	// DenialRate and DenialBurst bound the refusals logged one by one: a
	// token bucket of DenialBurst refilled at DenialRate a second. The
	// rest are counted in a summary line. Allowed requests are always
	// logged.
	DenialRate  = 20
	DenialBurst = 100
	// MaxLogBytes is the size at which the log file rotates
	// (sidecars.MaxLogBytes).
	MaxLogBytes = sidecars.MaxLogBytes
)

// capField cuts s to MaxField bytes.
func capField(s string) string {
	if len(s) <= MaxField {
		return s
	}
	return s[:MaxField] + fmt.Sprintf("...(%d bytes cut)", len(s)-MaxField)
}

// Log appends events as JSON lines to a writer. Each line is written with a
// single Write under a mutex, so lines never interleave. Its methods are
// safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	err error

	// The refusal rate limit: tokens left, when last refilled, and how
	// many refusals went unlogged since the last line.
	tokens     float64
	refilled   time.Time
	suppressed int64
}

// NewLog returns a log that writes to w.
func NewLog(w io.Writer) *Log {
	return &Log{w: w, tokens: DenialBurst}
}

// RotatingFile is the egress log file (sidecars.RotatingFile).
type RotatingFile = sidecars.RotatingFile

// OpenLogFile opens the egress log at path (sidecars.OpenLog).
func OpenLogFile(path string) (*RotatingFile, error) { return sidecars.OpenLog(path) }

// Write appends e as one line, each string field cut to MaxField. A refusal
// beyond the DenialRate is counted instead of written; the count goes out
// as a summary line before the next line that is written. The first write
// error is kept (see Err); logging never stops the proxy.
func (l *Log) Write(e Event) {
	if l == nil || l.w == nil {
		return
	}
	for _, f := range []*string{&e.Method, &e.Host, &e.Path, &e.Reason, &e.Rule, &e.RuleFrom, &e.Addr, &e.Error} {
		*f = capField(*f)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !e.Allowed {
		if !l.refilled.IsZero() {
			l.tokens = min(DenialBurst, l.tokens+now.Sub(l.refilled).Seconds()*DenialRate)
		}
		l.refilled = now
		if l.tokens < 1 {
			l.suppressed++
			return
		}
		l.tokens--
	}
	if l.suppressed > 0 {
		l.writeLine(Event{Time: now.UTC(), Reason: "refusals over the rate limit, not logged one by one", Suppressed: l.suppressed})
		l.suppressed = 0
	}
	l.writeLine(e)
}

// writeLine writes one event; l.mu is held.
func (l *Log) writeLine(e Event) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	if _, err := l.w.Write(b); err != nil && l.err == nil {
		l.err = fmt.Errorf("write egress log: %w", err)
	}
}

// Flush writes the summary line of refusals not yet logged, if any; the
// proxy calls it when it stops.
func (l *Log) Flush() {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed > 0 {
		l.writeLine(Event{Time: time.Now().UTC(), Reason: "refusals over the rate limit, not logged one by one", Suppressed: l.suppressed})
		l.suppressed = 0
	}
}

// Err returns the first error writing the log, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

package sidecars

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// StopGrace is how long a sidecar may take to stop gracefully once asked.
const StopGrace = 5 * time.Second

// Bind opens a sidecar's listener: a TCP address, or a unix socket with
// mode l.Mode (0600 when 0) replacing one a dead process left behind. A
// live socket at the path is an error.
//
// Accepted TCP connections have no TCP keep-alive: a sidecar's clients
// are on this machine, each sidecar ends idle connections itself, and the
// probes' settings cost four system calls before every connection is
// served.
func Bind(l Listen) (net.Listener, error) {
	switch l.Network {
	case "tcp":
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	case "unix":
		if !filepath.IsAbs(l.Address) {
			return nil, fmt.Errorf("listen: unix socket path %q is not absolute", l.Address)
		}
		if fi, err := os.Lstat(l.Address); err == nil && fi.Mode().Type() == fs.ModeSocket {
			if c, err := net.Dial("unix", l.Address); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen: %s is in use by another process", l.Address)
			}
			os.Remove(l.Address)
		}
		ln, err := net.Listen("unix", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		mode := os.FileMode(l.Mode) & os.ModePerm
		if mode == 0 {
			mode = 0o600
		}
		if err := os.Chmod(l.Address, mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("listen: network %q is neither \"tcp\" nor \"unix\"", l.Network)
}

// Decode decodes one JSON value into v, refusing unknown fields and
// trailing data, so that a misspelt key never silently loosens a policy.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Bound is the address ln listens on, as a Listen.
func Bound(ln net.Listener) Listen {
	return Listen{Network: ln.Addr().Network(), Address: ln.Addr().String()}
}

// ServiceFunc is a Service made of the one listener it serves on and the
// function that serves it, for sidecars with nothing more to offer.
type ServiceFunc struct {
	Listen Listen
	Run    func(ctx context.Context) error
}

// Listeners returns the one listener.
func (s *ServiceFunc) Listeners() []Listen { return []Listen{s.Listen} }

// Serve calls Run.
func (s *ServiceFunc) Serve(ctx context.Context) error { return s.Run(ctx) }

// Package guest is what bottle's static binary does first inside a NIC-less
// sandbox (a smolvm microVM with net = false): `bottle guest`.
//
// Each sidecar is a host process listening on a unix socket that smolvm's
// --mount-socket bridges into the guest. The guest has no network device, so
// tools that expect TCP (an HTTPS_PROXY, a git remote URL) cannot reach those
// sockets directly. `bottle guest` listens on a loopback TCP address for every
// mounted socket, relays each accepted connection to a fresh connection to the
// socket, and runs the agent command as its child, exiting with its code.
//
// A forward is written LISTEN=SOCKET, for example
//
//	127.0.0.1:3128=/run/bottle/egress.sock
//
// LISTEN must be a loopback IP literal with an explicit, non-zero port, so the
// relay can never be reached from outside the guest; SOCKET must be absolute.
package guest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxSocketPath is the longest unix socket path the kernel accepts: the size
// of sockaddr_un.sun_path (108 on Linux) minus its terminating NUL.
const maxSocketPath = 107

// probeTimeout bounds the trial connection CheckSocket makes.
const probeTimeout = 5 * time.Second

// Forward relays connections accepted on a loopback TCP address to a unix
// socket. It implements encoding.TextUnmarshaler, so a CLI flag can hold it.
type Forward struct {
	// Listen is the loopback address and port to listen on.
	Listen netip.AddrPort
	// Socket is the absolute path of the unix socket to relay to.
	Socket string
}

// ParseForward parses and validates a forward written LISTEN=SOCKET, such as
// "127.0.0.1:3128=/run/bottle/egress.sock" or "[::1]:3128=/run/bottle/egress.sock".
func ParseForward(spec string) (Forward, error) {
	listen, socket, ok := strings.Cut(spec, "=")
	if !ok {
		return Forward{}, fmt.Errorf("forward %q: want LISTEN=SOCKET, such as 127.0.0.1:3128=/run/bottle/egress.sock", spec)
	}
	addr, err := netip.ParseAddrPort(listen)
	if err != nil {
		return Forward{}, fmt.Errorf("forward %q: listen address %q is not IP:PORT (use a loopback IP literal such as 127.0.0.1:3128): %w", spec, listen, err)
	}
	f := Forward{Listen: addr, Socket: socket}
	if err := f.Validate(); err != nil {
		return Forward{}, fmt.Errorf("forward %q: %w", spec, err)
	}
	return f, nil
}

// Validate reports whether f can be served: a loopback listen address without
// a zone and with a non-zero port, and an absolute socket path short enough
// for the kernel.
func (f Forward) Validate() error {
	ip := f.Listen.Addr()
	switch {
	case !ip.IsValid():
		return errors.New("listen address is missing")
	case ip.Is4In6():
		return fmt.Errorf("listen address %s is IPv4-mapped IPv6; write %s", ip, ip.Unmap())
	case !ip.IsLoopback():
		return fmt.Errorf("listen address %s is not loopback; use 127.0.0.1 or ::1 so only the guest can reach the relay", ip)
	case ip.Zone() != "":
		return fmt.Errorf("listen address %s has a zone; drop %q", ip, "%"+ip.Zone())
	case f.Listen.Port() == 0:
		return fmt.Errorf("listen address %s needs an explicit, non-zero port", f.Listen)
	case f.Socket == "":
		return errors.New("socket path is empty")
	case !filepath.IsAbs(f.Socket):
		return fmt.Errorf("socket path %q is not absolute", f.Socket)
	case len(f.Socket) > maxSocketPath:
		return fmt.Errorf("socket path %q is %d bytes; unix sockets allow at most %d", f.Socket, len(f.Socket), maxSocketPath)
	}
	return nil
}

// String returns f as LISTEN=SOCKET, the form ParseForward reads.
func (f Forward) String() string {
	return f.Listen.String() + "=" + f.Socket
}

// MarshalText returns f as LISTEN=SOCKET.
func (f Forward) MarshalText() ([]byte, error) {
	return []byte(f.String()), nil
}

// UnmarshalText parses LISTEN=SOCKET with ParseForward.
func (f *Forward) UnmarshalText(text []byte) error {
	parsed, err := ParseForward(string(text))
	if err != nil {
		return err
	}
	*f = parsed
	return nil
}

// CheckSocket reports whether path is a unix socket that accepts a connection.
// It stats the path (it must exist and be a socket), then connects once and
// closes the connection at once, so a stale socket file with nobody behind it
// is caught before the agent starts. Behind smolvm's --mount-socket the trial
// connection reaches the guest end of the bridge; whether the host sidecar is
// alive shows only when a relayed connection is made.
func CheckSocket(path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sidecar socket missing: %w", err)
	}
	if err != nil {
		return fmt.Errorf("sidecar socket: %w", err)
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("sidecar socket %s: is a %s, not a unix socket", path, describeMode(info.Mode()))
	}
	conn, err := net.DialTimeout("unix", path, probeTimeout)
	if err != nil {
		return fmt.Errorf("sidecar socket %s: nothing accepts connections: %w", path, err)
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("sidecar socket %s: close trial connection: %w", path, err)
	}
	return nil
}

// describeMode names a file type for an error message.
func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	default:
		return "file of mode " + m.Type().String()
	}
}

// validateForwards checks every forward and that no two share a listen
// address.
func validateForwards(forwards []Forward) error {
	seen := make(map[netip.AddrPort]bool, len(forwards))
	for _, f := range forwards {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("forward %q: %w", f, err)
		}
		if seen[f.Listen] {
			return fmt.Errorf("forward %q: listen address %s is used by another forward", f, f.Listen)
		}
		seen[f.Listen] = true
	}
	return nil
}

// WaitSockets waits until every forward's socket accepts a connection
// (CheckSocket), polling every 10 ms, for at most timeout; then it returns
// the first socket's error that is still failing. The docker backend
// starts the sidecars and the sandbox at once, so the sockets may appear
// only after bottle guest starts.
func WaitSockets(ctx context.Context, forwards []Forward, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		for _, f := range forwards {
			if err = CheckSocket(f.Socket); err != nil {
				err = fmt.Errorf("forward %s: %w", f, err)
				break
			}
		}
		if err == nil || !time.Now().Before(deadline) {
			if err != nil {
				err = fmt.Errorf("after waiting %s: %w", timeout, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

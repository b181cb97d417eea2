package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control channel is bottle's own line to `bottle guest` in a sandbox
// whose runtime forwards no signals and puts secrets in process arguments
// (smolvm's `machine exec`). The host side (ControlServer) listens on a
// unix socket that the runtime mounts into the guest, as it mounts the
// sidecars' sockets; `bottle guest --control PATH` dials it before it runs
// anything (DialControl). Over it:
//
//   - the host sends the secrets first, as KEY=VALUE lines for the
//     command's environment, so no secret is in any process's arguments,
//     in the guest or on the host;
//   - the host sends signals (Ctrl-C, SIGTERM, `bottle stop`), which bottle
//     guest passes to the command's process group;
//   - bottle guest sends the command's exit code back (128+N for signal N)
//     before it exits;
//   - when the connection ends because the host side is gone (bottle was
//     killed), bottle guest stops the command: a dead man's switch.
//
// The host accepts one connection only, the first, which bottle guest
// makes before the command exists; any later one (the command's own) is
// closed unanswered and counted. Messages are JSON objects, one per line,
// at most maxControlLine bytes.

// controlMessage is one line on the control channel. Exactly one field is
// set.
type controlMessage struct {
	// Env (host to guest, first line) holds KEY=VALUE entries added to the
	// command's environment.
	Env *[]string `json:"env,omitempty"`
	// Signal (host to guest) is a signal number for the command.
	Signal int `json:"signal,omitempty"`
	// Exit (guest to host) is the command's exit code.
	Exit *int `json:"exit,omitempty"`
}

// maxControlLine bounds one control message, in bytes: the secrets are
// the largest.
const maxControlLine = 4 << 20

// ControlHelloTimeout bounds how long DialControl waits for the host's
// first message.
var ControlHelloTimeout = 30 * time.Second

// ControlServer is the host's end of the control channel.
type ControlServer struct {
	ln  *net.UnixListener
	env []string

	mu      sync.Mutex
	conn    net.Conn
	pending []syscall.Signal // sent before the guest connected
	refused int

	connected chan struct{}
	exit      chan int // buffered: the guest's exit code, once
	done      chan struct{}
	wg        sync.WaitGroup
}

// ListenControl listens on a unix socket at path (mode 0600) and serves
// the control channel: the first connection gets env (KEY=VALUE entries)
// and the signals of Signal; later ones are closed at once.
func ListenControl(path string, env []string) (*ControlServer, error) {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("control channel: environment entry %q is not KEY=VALUE", strings.SplitN(kv, "=", 2)[0])
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control channel: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control channel: %w", err)
	}
	s := &ControlServer{ln: ln, env: env, connected: make(chan struct{}), exit: make(chan int, 1), done: make(chan struct{})}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *ControlServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		first := s.conn == nil
		if first {
			s.conn = c
		} else {
			s.refused++
		}
		s.mu.Unlock()
		if !first {
			c.Close()
			continue
		}
		s.wg.Go(func() { s.serve(c) })
	}
}

// serve sends the environment and pending signals, then reads the exit
// code.
func (s *ControlServer) serve(c net.Conn) {
	env := s.env
	if env == nil {
		env = []string{}
	}
	s.mu.Lock()
	err := writeControl(c, controlMessage{Env: &env})
	for _, sig := range s.pending {
		if err == nil {
			err = writeControl(c, controlMessage{Signal: int(sig)})
		}
	}
	s.pending = nil
	s.mu.Unlock()
	close(s.connected)
	if err != nil {
		c.Close()
		return
	}
	r := bufio.NewReaderSize(c, 4096)
	for {
		m, err := readControl(r)
		if err != nil {
			return
		}
		if m.Exit != nil {
			select {
			case s.exit <- *m.Exit:
			default:
			}
		}
	}
}

// Signal sends sig to the guest's command, or queues it until bottle
// guest connects.
func (s *ControlServer) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		s.pending = append(s.pending, sig)
		return nil
	}
	return writeControl(s.conn, controlMessage{Signal: int(sig)})
}

// Connected is closed once bottle guest has connected and received the
// environment.
func (s *ControlServer) Connected() <-chan struct{} { return s.connected }

// ExitCode returns the exit code bottle guest reported, waiting for it
// until ctx ends; ok is false when none came by then.
func (s *ControlServer) ExitCode(ctx context.Context) (code int, ok bool) {
	select {
	case code := <-s.exit:
		s.exit <- code // keep it for a later call
		return code, true
	case <-ctx.Done():
		return 0, false
	}
}

// Refused is how many connections after the first were closed unanswered.
func (s *ControlServer) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Close stops listening, closes the connection (which stops the guest's
// command, if it still runs) and removes the socket.
func (s *ControlServer) Close() error {
	err := s.ln.Close() // also removes the socket file
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Control is bottle guest's end of the control channel.
type Control struct {
	conn net.Conn
	// Env is what the host sent for the command's environment.
	Env []string
	// signals carries the host's signals; it is closed when the host side
	// is gone.
	signals chan syscall.Signal
	wmu     sync.Mutex
}

// DialControl connects to the host's control socket at path and reads the
// command's environment, waiting up to ControlHelloTimeout. Signals then
// arrive on Signals.
func DialControl(ctx context.Context, path string) (*Control, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, ControlHelloTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control channel: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	r := bufio.NewReaderSize(conn, 4096)
	m, err := readControl(r)
	if err == nil && m.Env == nil {
		err = errors.New("the host's first message holds no environment")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("control channel %s: %w", path, err)
	}
	conn.SetReadDeadline(time.Time{})
	c := &Control{conn: conn, Env: *m.Env, signals: make(chan syscall.Signal, 16)}
	go c.read(r)
	return c, nil
}

func (c *Control) read(r *bufio.Reader) {
	defer close(c.signals)
	for {
		m, err := readControl(r)
		if err != nil {
			return
		}
		if m.Signal > 0 && m.Signal < 65 {
			c.signals <- syscall.Signal(m.Signal)
		}
	}
}

// Signals delivers the host's signals; it is closed when the connection
// ends, that is when bottle on the host is gone.
func (c *Control) Signals() <-chan syscall.Signal { return c.signals }

// SendExit reports the command's exit code to the host.
func (c *Control) SendExit(code int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return writeControl(c.conn, controlMessage{Exit: &code})
}

// Close closes the connection.
func (c *Control) Close() error { return c.conn.Close() }

func writeControl(w io.Writer, m controlMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readControl(r *bufio.Reader) (controlMessage, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxControlLine {
			return controlMessage{}, fmt.Errorf("a control message is over %d bytes", maxControlLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return controlMessage{}, err
		}
		break
	}
	var m controlMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return controlMessage{}, fmt.Errorf("read a control message: %w", err)
	}
	return m, nil
}

package docker

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"
)

// guestSetupFailed is bottle guest's exit status when it fails itself, a
// missing sidecar socket among others (guest.ExitSetupFailed).
const guestSetupFailed = 125

// guest is the command line of bottle guest run as a container's
// entrypoint, which the docker backend's agent container is:
//
//	/.bottle/bottle guest --wait 30s --forward 127.0.0.1:3128=/run/bottle/egress.sock -- CMD...
type guest struct {
	wait     time.Duration
	forwards []string // LISTEN=SOCKET
	err      error    // a command line bottle guest refuses
}

// guestOf returns c's bottle guest, or nil if its command is another: its
// entrypoint is a file named bottle and its first argument is guest.
func guestOf(c *container) *guest {
	if len(c.Entrypoint) != 1 || path.Base(c.Entrypoint[0]) != "bottle" || len(c.Cmd) == 0 || c.Cmd[0] != "guest" {
		return nil
	}
	g := &guest{}
	args := c.Cmd[1:]
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if name != "--wait" && name != "--forward" {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				g.err = fmt.Errorf("%s: expected a value", name)
				return g
			}
			i++
			value = args[i]
		}
		if name == "--forward" {
			g.forwards = append(g.forwards, value)
			continue
		}
		d, err := time.ParseDuration(value)
		if err != nil {
			g.err = fmt.Errorf("--wait: %v", err)
			return g
		}
		g.wait = d
	}
	return g
}

// runGuest emulates bottle guest in the container id until its command
// would start: it waits up to g.wait for every forward's socket to accept
// connections, polling the state as the real one polls the sockets, and
// returns code once they do. Otherwise it prints guest's error and
// returns 125, as on SIGINT or SIGTERM, which docker start --attach passes
// on to the container. An error is the stand-in's own, already printed.
func (d *daemon) runGuest(id string, g *guest, code int) (int, error) {
	if g.err != nil {
		fmt.Fprintf(d.stderr, "bottle: %v\n", g.err)
		return 2, nil
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	deadline := time.Now().Add(g.wait)
	for {
		var missing error
		if err := withWorld(d.dir, func(w *world) error {
			missing = w.guestSockets(id, g.forwards)
			return nil
		}); err != nil {
			fmt.Fprintf(d.stderr, "fake docker: %v\n", err)
			return 0, err
		}
		if missing == nil {
			return code, nil
		}
		if !time.Now().Before(deadline) {
			if g.wait > 0 {
				missing = fmt.Errorf("after waiting %s: %w", g.wait, missing)
			}
			fmt.Fprintf(d.stderr, "bottle: %v\n", missing)
			return guestSetupFailed, nil
		}
		select {
		case <-sig:
			fmt.Fprintln(d.stderr, "bottle: context canceled")
			return guestSetupFailed, nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// guestSockets says why a forward of the container id cannot reach its
// socket yet, as bottle guest's check does: the socket must be in a volume
// the container mounts, made there by a container that still runs.
func (w *world) guestSockets(id string, forwards []string) error {
	c := w.container(id)
	if c == nil {
		return errors.New("the container is gone")
	}
	for _, f := range forwards {
		_, sock, _ := strings.Cut(f, "=")
		m, rel := mountOf(c, sock)
		var v *volume
		if m != nil && m.Type == "volume" {
			v = w.volume(m.Source)
		}
		owner, ok := "", false
		if v != nil {
			owner, ok = v.Sockets[rel]
		}
		if !ok {
			return fmt.Errorf("forward %s: sidecar socket missing: stat %s: no such file or directory", f, sock)
		}
		if o := w.container(owner); o == nil || o.Status != "running" {
			return fmt.Errorf("forward %s: sidecar socket %s: nothing accepts connections: dial unix %s: connect: connection refused", f, sock, sock)
		}
	}
	return nil
}

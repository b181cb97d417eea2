package guest

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/bottle-dev/bottle/internal/relay"
)

// dialTimeout bounds connecting to a sidecar socket for one relayed
// connection.
const dialTimeout = 10 * time.Second

// Serve accepts connections on ln and relays each to a fresh connection to
// the unix socket at socket, copying both directions (client to sidecar with
// splice(2) on Linux) and passing half-closes through: when one side stops sending, the
// other side's write half is shut down, and both connections are closed once
// both directions are done or either fails.
//
// Serve returns when ctx is done (nil) or when accepting fails for good (the
// error). Either way it first closes ln and every relayed connection and waits
// for their goroutines. A sidecar that cannot be dialled is reported to log
// (nil discards) once, and again only after a dial has succeeded in between,
// so a dead sidecar does not flood the agent's terminal.
func Serve(ctx context.Context, ln *net.TCPListener, socket string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	var failing atomic.Bool // the last dial failed and was reported
	dialer := net.Dialer{Timeout: dialTimeout}
	return relay.Serve(ctx, ln, relay.Options{
		Dial: func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, "unix", socket) },
		DialFailed: func(client net.Conn, err error) {
			if !failing.Swap(true) {
				fmt.Fprintf(log, "bottle guest: relay %s -> %s: %v\n", client.LocalAddr(), socket, err)
			}
		},
		Dialled: func() { failing.Store(false) },
		AcceptRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(log, "bottle guest: accept on %s: %v; retrying in %v\n", ln.Addr(), err, wait)
		},
	})
}

package pipelock

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/bottle-dev/bottle/internal/relay"
)

// bridgeDialTimeout bounds connecting to pipelock for one relayed connection.
const bridgeDialTimeout = 10 * time.Second

// Bounds on what the sandbox can make the bridge hold (an adversarial
// review held thousands of idle connections open through it).
var (
	// HalfCloseGrace is how long a relayed connection may stay open after
	// one direction has ended: pipelock closing a connection (its own
	// timeouts, a refusal) then frees the bridge's side within it.
	HalfCloseGrace = 10 * time.Second
	// MaxConns bounds the sockets the bridge holds at once, the sandbox's
	// side and pipelock's counted alike (so about half as many relayed
	// connections); a connection past it is closed as soon as it is
	// accepted.
	MaxConns = 1024
)

// Bridge accepts connections on ln (the unix socket the sandbox reaches)
// and relays each to a new TCP connection to tcpAddr (pipelock's Addr),
// copying both directions at once. Half-closes pass through: when one
// side stops sending, the write half of the other side's connection is
// shut down (CloseWrite, which *net.TCPConn and *net.UnixConn have; a
// connection without it is only closed at the end). Both connections of a
// pair are closed when both directions are done or either fails. A
// connection whose dial fails is closed at once.
//
// Bridge returns when ctx ends (nil) or when accepting fails for a reason
// other than a momentary shortage of file descriptors or memory (that
// error). Either way it first closes ln and every relayed connection and
// waits for its goroutines.
func Bridge(ctx context.Context, ln net.Listener, tcpAddr string) error {
	d := net.Dialer{Timeout: bridgeDialTimeout}
	err := relay.Serve(ctx, ln, relay.Options{
		Dial:           func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", tcpAddr) },
		HalfCloseGrace: HalfCloseGrace,
		MaxConns:       MaxConns,
	})
	if err != nil {
		return fmt.Errorf("pipelock bridge: %w", err)
	}
	return nil
}

//go:build unix

package egress

import "golang.org/x/sys/unix"

// peekOpen reports whether the socket fd is open and has nothing to
// read: a peek that would block. A kept upstream connection with bytes to
// read sent them unasked, and one at its end of stream was closed.
func peekOpen(fd uintptr) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == unix.EAGAIN || err == unix.EWOULDBLOCK
}

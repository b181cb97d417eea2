//go:build !unix

package egress

// peekOpen cannot look without blocking here; a request on a connection
// the destination closed fails, and one without a body is sent again.
func peekOpen(uintptr) bool { return true }

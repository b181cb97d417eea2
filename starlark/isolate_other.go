//go:build !linux

package starlark

// limitAddressSpace does nothing outside Linux: macOS does not enforce
// RLIMIT_AS, and the Go runtime's reservations differ too much between
// systems to set it blind. There only the watchdog bounds an evaluation.
func limitAddressSpace(uint64) error { return nil }

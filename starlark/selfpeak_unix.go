//go:build unix

package starlark

import (
	"runtime"
	"syscall"
)

// selfPeak is this process's peak resident memory in bytes, if the system
// says; macOS counts it in bytes, Linux and the BSDs in KiB.
func selfPeak() (int64, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss), true
	}
	return int64(ru.Maxrss) << 10, true
}

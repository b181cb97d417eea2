//go:build unix && !linux

package starlark

import (
	"os"
	"runtime"
	"syscall"
)

// PeakMemory is the peak resident memory of an exited process, in bytes,
// if the system says; macOS counts it in bytes, the BSDs in KiB.
func PeakMemory(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return ru.Maxrss, true
	}
	return ru.Maxrss << 10, true
}

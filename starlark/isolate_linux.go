package starlark

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// limitAddressSpace lets the process's address space grow by at most n
// bytes past its present size (RLIMIT_AS): a mapping that would pass it,
// however large, is refused by the kernel before any memory is touched,
// and the Go runtime dies with "out of memory". The limit is relative
// because the Go runtime reserves address space it does not use at
// start (about 1 GiB, more with cgo), differently on every build.
//
// RLIMIT_DATA would look like the closer fit, but it is not reliable for
// Go: the runtime reserves its heap arenas PROT_NONE and maps them
// read-write over the reservation later, and the kernel checks such a
// mapping against the limit net of the pages it replaces, so a heap can
// grow past RLIMIT_DATA.
func limitAddressSpace(n uint64) error {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return err
	}
	f := bytes.Fields(statm)
	if len(f) == 0 {
		return fmt.Errorf("/proc/self/statm: unexpected %q", statm)
	}
	pages, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return fmt.Errorf("/proc/self/statm: %w", err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err != nil {
		return err
	}
	n = min(pages*uint64(os.Getpagesize())+n, lim.Cur, lim.Max)
	return unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: n, Max: n})
}

// PeakMemory is the peak resident memory of an exited process, in bytes,
// if the system says; Linux counts it in KiB.
func PeakMemory(ps *os.ProcessState) (int64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss << 10, true
}

//go:build !unix

package starlark

import "os"

// PeakMemory is unknown here.
func PeakMemory(*os.ProcessState) (int64, bool) { return 0, false }

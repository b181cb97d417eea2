//go:build !unix

package backends

import "syscall"

// ownGroup is a no-op where there are no process groups.
func ownGroup() *syscall.SysProcAttr { return nil }

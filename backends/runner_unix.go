//go:build unix

package backends

import "syscall"

// ownGroup puts a child in a new process group.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

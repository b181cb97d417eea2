//go:build !linux

package pipelock

import "syscall"

// sysProcAttr puts the child in its own process group, so that Stop can
// signal pipelock and anything it starts. Only Linux can also have the
// kernel kill the child when bottle dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

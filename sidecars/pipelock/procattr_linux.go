package pipelock

import "syscall"

// sysProcAttr puts the child in its own process group, so that Stop can
// signal pipelock and anything it starts, and has the kernel kill it if
// the thread that started it exits (PR_SET_PDEATHSIG), so that pipelock
// does not outlive a bottle that dies without calling Stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

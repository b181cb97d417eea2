package guest

import (
	"os"
	"time"
)

// Exit codes Run returns when the command did not run, following env(1),
// nohup(1) and docker run.
const (
	// ExitSetupFailed means bottle guest itself failed: a bad forward, a
	// missing sidecar socket, a listener that could not be opened.
	ExitSetupFailed = 125
	// ExitCannotInvoke means the command was found but could not be started.
	ExitCannotInvoke = 126
	// ExitNotFound means the command was not found.
	ExitNotFound = 127
)

// Stdio holds the standard streams the command inherits. They are passed as
// file descriptors, never through pipes, so a terminal stays the command's
// terminal. A nil field gives the command the null device.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// KillDelay is how long Run waits, after sending SIGTERM because its context
// ended, before it sends SIGKILL.
const KillDelay = 10 * time.Second

//go:build !linux

package guest

import (
	"context"
	"errors"
)

// Run is `bottle guest`. It runs only inside a Linux guest; elsewhere it
// returns an error and ExitSetupFailed.
func Run(ctx context.Context, forwards []Forward, argv []string, stdio Stdio, lock Lockdown, ctl *Control) (int, error) {
	return ExitSetupFailed, errors.New("bottle guest runs only inside a Linux sandbox")
}

// ExecLocked runs only inside a Linux guest.
func ExecLocked(l Lockdown, argv []string) (int, error) {
	return ExitSetupFailed, errors.New("bottle guest runs only inside a Linux sandbox")
}

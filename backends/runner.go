package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Runner runs external programs (docker, smolvm). Backends take one so
// that their command sequences can be unit tested; the real one is Exec.
type Runner interface {
	// Output runs the program and returns its stdout. A non-zero exit is
	// an error that carries the program's stderr.
	Output(ctx context.Context, cmd Cmd) ([]byte, error)
	// Attach runs the program with the given stdio and returns its exit
	// code; an error means it could not be run at all.
	Attach(ctx context.Context, cmd Cmd, stdio Stdio) (int, error)
}

// Cmd is one program invocation.
type Cmd struct {
	Path string
	Args []string
	// Env is added to the inherited environment; secrets travel here,
	// never in Args.
	Env []string
	// Stdin, when set, feeds the program.
	Stdin io.Reader
	// OwnGroup runs the program in a process group of its own (Attach
	// only), so a terminal's Ctrl-C reaches bottle and not the program.
	OwnGroup bool
	// StopSignal is what Attach sends the program when ctx ends; nil
	// means SIGINT.
	StopSignal os.Signal
}

func (c Cmd) String() string { return c.Path + " " + strings.Join(c.Args, " ") }

// Exec is the Runner that runs real programs.
type Exec struct{}

// Output implements Runner.
func (Exec) Output(ctx context.Context, c Cmd) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = c.Stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 && len(msg) > 500 {
			msg = msg[i+1:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return out, fmt.Errorf("%s %s: %s", c.Path, firstArgs(c.Args), msg)
		}
		return out, fmt.Errorf("%s %s: %w", c.Path, firstArgs(c.Args), err)
	}
	return out, nil
}

// Attach implements Runner.
func (Exec) Attach(ctx context.Context, c Cmd, stdio Stdio) (int, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	if c.OwnGroup {
		cmd.SysProcAttr = ownGroup()
	}
	stop := c.StopSignal
	if stop == nil {
		stop = os.Interrupt
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("run %s: %w", c.Path, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(stop)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", c.Path, err)
	}
	return 0, nil
}

// firstArgs names the subcommand in error messages without echoing every
// argument.
func firstArgs(args []string) string {
	n := 0
	for n < len(args) && n < 2 && !strings.HasPrefix(args[n], "-") {
		n++
	}
	return strings.Join(args[:n], " ")
}

// Package fakes holds what bottle's stand-in programs for tests share.
//
// The stand-ins live in the subpackages smolvm, pipelock and docker. Each
// exports Main() int, which reads os.Args and the environment like the real
// tool would, so the testscript suite can register it under the tool's name
// (testscript.Main(m, map[string]func(){"smolvm": func() { os.Exit(smolvm.Main()) }})).
// They exist only for tests, on machines where the real tools cannot run;
// none of them is ever built into bottle.
//
// Every stand-in appends each command line it receives to the file named by
// its *_LOG environment variable, one line per invocation, in the form
// LogLine produces, so a script can cmp the exact sequence of commands.
package fakes

import (
	"fmt"
	"os"
	"strings"
)

// LogLine renders a command line as one line of text: the program name
// and its arguments separated by spaces, each argument that holds anything
// but letters, digits and "%+,-./:=@_" single-quoted as a POSIX shell
// would read it, so an argument with spaces or newlines stays one word.
func LogLine(name string, args []string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("%+,-./:=@_", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// AppendLog appends LogLine(name, args) and a newline to the file at path
// with a single write, creating it (mode 0644) if needed. An empty path
// means no log.
func AppendLog(path, name string, args []string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open argv log: %w", err)
	}
	if _, err := f.WriteString(LogLine(name, args) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write argv log %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close argv log %s: %w", path, err)
	}
	return nil
}

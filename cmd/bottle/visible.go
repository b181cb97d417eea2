package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// visible returns s with every rune a terminal would not show as itself
// escaped: control characters (ESC, CR, backspace, ...), invalid UTF-8,
// and format characters such as bidirectional overrides, which could hide
// or reorder what follows them. Newlines are kept when keepNewlines is set.
// A profile's strings reach the approval summary, errors and print(), and
// must never drive the terminal.
func visible(s string, keepNewlines bool) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !shown(r, keepNewlines) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case shown(r, keepNewlines):
			b.WriteString(s[i : i+n])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// shown reports whether a terminal shows r as itself.
func shown(r rune, keepNewlines bool) bool {
	if r == '\n' {
		return keepNewlines
	}
	return unicode.IsPrint(r) || r == ' '
}

// visibleWriter escapes what it writes with visible, keeping newlines: for
// print() output of profiles.
type visibleWriter struct{ w io.Writer }

func (v visibleWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(v.w, visible(string(p), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

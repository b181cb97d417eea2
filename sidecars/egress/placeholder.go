package egress

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// PlaceholderMarker is in every placeholder, so a person (or a log
// reader) sees at once that a value is bottle's stand-in and not a key.
const PlaceholderMarker = "BOTTLEPH"

// placeholderAlphabet is what a placeholder's random part is drawn from:
// letters and digits, which every header and client takes.
const placeholderAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// minPlaceholderRandom is the least number of random characters in a
// placeholder: 22 base-62 characters, about 131 bits, so that one bottle's
// placeholder is never another's.
const minPlaceholderRandom = 22

// Placeholder returns the value the agent gets instead of a secret bound
// to hosts: the real value's scheme prefix (what precedes its last '-' or
// '_' within the first 16 bytes, such as "sk-ant-api03-" or "ghp_", when
// it names the kind of value and is not part of it; see isScheme), so
// that clients which check the prefix accept it, then PlaceholderMarker,
// then random letters and digits to the real value's length, or longer
// when that is too short for minPlaceholderRandom. It never contains the
// real value.
func Placeholder(real string) (string, error) {
	prefix := ""
	head := real
	if len(head) > 16 {
		head = head[:16]
	}
	if i := strings.LastIndexAny(head, "-_"); i >= 0 && i < len(real)-1 && isScheme(real[:i]) {
		prefix = real[:i+1]
	}
	n := len(real) - len(prefix) - len(PlaceholderMarker)
	if n < minPlaceholderRandom {
		n = minPlaceholderRandom
	}
	// Random bytes below 248 (4×62) map evenly onto the alphabet; the
	// rest are drawn again.
	out := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("placeholder: %w", err)
		}
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, placeholderAlphabet[int(c)%len(placeholderAlphabet)])
			}
		}
	}
	return prefix + PlaceholderMarker + string(out), nil
}

// isScheme reports whether s, what precedes a value's last '-' or '_' in
// its first 16 bytes, names the value's kind ("sk-ant-api03", "ghp",
// "xoxb") rather than being part of it: each of its parts holds a letter
// that is no hex digit. A UUID's or a hex token's start ("7c9e6679-7425")
// is key material, which the placeholder must not carry into the sandbox.
func isScheme(s string) bool {
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '-' || r == '_' }) {
		if !strings.ContainsFunc(part, func(r rune) bool {
			return r >= 'g' && r <= 'z' || r >= 'G' && r <= 'Z'
		}) {
			return false
		}
	}
	return s != ""
}

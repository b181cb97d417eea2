package egress

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// MinScannedSecret is the shortest value SecretScanner looks for, in
// bytes: shorter ones would match ordinary text.
const MinScannedSecret = 8

// SecretScanner finds a bottle's own secret values (and their
// placeholders) in outbound bytes, in the forms a client may send them:
// raw; base64 in the standard and URL alphabets, with or without padding,
// at any of the three byte alignments a value can have inside a longer
// encoded text; percent-encoded (query and path escaping); and hex in
// either case. It is safe for concurrent use; Stream scans a stream in
// chunks with memory bounded by the longest form.
type SecretScanner struct {
	forms  []secretForm
	maxLen int
}

// secretForm is one encoding of one secret.
type secretForm struct {
	name, encoding string
	text           []byte
}

// NewSecretScanner builds a scanner for secrets, a map from each secret's
// name (what a match reports; never the value) to its value. Values
// shorter than MinScannedSecret are an error.
func NewSecretScanner(secrets map[string]string) (*SecretScanner, error) {
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	s := &SecretScanner{}
	for _, name := range names {
		v := secrets[name]
		if len(v) < MinScannedSecret {
			return nil, fmt.Errorf("secret %s is %d bytes; values shorter than %d cannot be told from ordinary text", name, len(v), MinScannedSecret)
		}
		add := func(encoding, text string) {
			for _, f := range s.forms {
				if f.name == name && string(f.text) == text {
					return
				}
			}
			s.forms = append(s.forms, secretForm{name: name, encoding: encoding, text: []byte(text)})
			if len(text) > s.maxLen {
				s.maxLen = len(text)
			}
		}
		add("raw", v)
		add("url-encoded", url.QueryEscape(v))
		add("url-encoded", url.PathEscape(v))
		// Every byte escaped, as an encoder that trusts no character
		// writes it, in either hex case.
		var every strings.Builder
		for i := range len(v) {
			fmt.Fprintf(&every, "%%%02X", v[i])
		}
		add("url-encoded", every.String())
		add("url-encoded", strings.ToLower(every.String()))
		add("hex", hex.EncodeToString([]byte(v)))
		add("hex", strings.ToUpper(hex.EncodeToString([]byte(v))))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for _, t := range base64Cores(enc, []byte(v)) {
				add("base64", t)
			}
		}
	}
	return s, nil
}

// base64Cores returns, for each of the three alignments v can have in a
// longer byte string, the part of its base64 encoding that depends on v's
// bytes only: the characters touched by the bytes around it are dropped.
func base64Cores(enc *base64.Encoding, v []byte) []string {
	var cores []string
	for pad := range 3 {
		buf := append(make([]byte, pad), v...)
		full := enc.WithPadding(base64.NoPadding).EncodeToString(buf)
		// Characters before the first full 3-byte group that is all v's,
		// and after the last, mix in other bytes.
		start := (pad + 2) / 3 * 4
		end := (pad + len(v)) / 3 * 4
		if end-start >= MinScannedSecret {
			cores = append(cores, full[start:end])
		}
	}
	return cores
}

// SecretMatch names a secret found and the form it was in.
type SecretMatch struct {
	Secret   string
	Encoding string
}

// Scan reports the first secret found in b, if any.
func (s *SecretScanner) Scan(b []byte) (SecretMatch, bool) {
	for _, f := range s.forms {
		if bytes.Contains(b, f.text) {
			return SecretMatch{Secret: f.name, Encoding: f.encoding}, true
		}
	}
	return SecretMatch{}, false
}

// Stream returns a scanner of one stream, which finds a secret split
// across the chunks written to it.
func (s *SecretScanner) Stream() *SecretStream { return &SecretStream{s: s} }

// SecretStream scans one stream (see SecretScanner.Stream). It keeps the
// last maxLen-1 bytes of what it was given, no more.
type SecretStream struct {
	s    *SecretScanner
	tail []byte
	buf  []byte
}

// Write scans p, with the end of what came before it; it returns the
// first secret found.
func (st *SecretStream) Write(p []byte) (SecretMatch, bool) {
	if st.s.maxLen == 0 {
		return SecretMatch{}, false
	}
	st.buf = append(append(st.buf[:0], st.tail...), p...)
	m, found := st.s.Scan(st.buf)
	keep := st.s.maxLen - 1
	if keep > len(st.buf) {
		keep = len(st.buf)
	}
	st.tail = append(st.tail[:0], st.buf[len(st.buf)-keep:]...)
	return m, found
}

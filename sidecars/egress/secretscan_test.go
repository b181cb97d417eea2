package egress

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecretScannerForms finds a secret in every form a client may send
// it in, embedded at every alignment in other bytes, and names the secret
// and the form, never the value.
func TestSecretScannerForms(t *testing.T) {
	secret := "sk-ant-api03-" + hex.EncodeToString(randomBytes(t, 20)) + "/+=&?"
	s, err := NewSecretScanner(map[string]string{"ANTHROPIC_API_KEY": secret, "OTHER": "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	for pre := range 6 {
		embedded := append(append(randomBytes(t, pre), secret...), randomBytes(t, 4)...)
		cases := map[string]string{
			"raw":        "x" + secret + "y",
			"base64":     base64.StdEncoding.EncodeToString(embedded),
			"base64 url": base64.RawURLEncoding.EncodeToString(embedded),
			"query":      "q=" + url.QueryEscape(secret) + "&x=1",
			"path":       "/a/" + url.PathEscape(secret) + "/b",
			"hex":        hex.EncodeToString(embedded),
			"hex upper":  strings.ToUpper(hex.EncodeToString(embedded)),
		}
		for form, text := range cases {
			m, ok := s.Scan([]byte(text))
			if !ok || m.Secret != "ANTHROPIC_API_KEY" {
				t.Errorf("prefix %d, %s: found %v %+v", pre, form, ok, m)
			}
			if strings.Contains(m.Secret+m.Encoding, secret) {
				t.Errorf("the match holds the value")
			}
		}
	}
	if _, ok := s.Scan(randomBytes(t, 1<<16)); ok {
		t.Errorf("random bytes matched")
	}
	if _, err := NewSecretScanner(map[string]string{"SHORT": "abc"}); err == nil {
		t.Errorf("a 3-byte secret was accepted")
	}
}

// TestSecretStreamSplits finds a secret split across chunks at every
// position, keeping no more than the longest form's length.
func TestSecretStreamSplits(t *testing.T) {
	secret := "ghp_" + hex.EncodeToString(randomBytes(t, 18))
	s, err := NewSecretScanner(map[string]string{"TOKEN": secret})
	if err != nil {
		t.Fatal(err)
	}
	body := append(append(randomBytes(t, 100), secret...), randomBytes(t, 100)...)
	for cut := 1; cut < len(body); cut += 7 {
		st := s.Stream()
		found := false
		for i := 0; i < len(body); i += cut {
			end := min(i+cut, len(body))
			if _, ok := st.Write(body[i:end]); ok {
				found = true
			}
			if len(st.tail) >= s.maxLen {
				t.Fatalf("the stream kept %d bytes, more than %d", len(st.tail), s.maxLen-1)
			}
		}
		if !found {
			t.Errorf("chunks of %d: the split secret was not found", cut)
		}
	}
}

// BenchmarkSecretStream scans 64 KiB chunks of random bytes for three
// secrets in every form, beside copying the same chunks (the baseline a
// blind tunnel pays); b.SetBytes makes the figure MB/s.
func BenchmarkSecretStream(b *testing.B) {
	s, err := NewSecretScanner(map[string]string{
		"A": "sk-ant-api03-0123456789abcdef0123456789abcdef",
		"B": "ghp_0123456789abcdef0123456789abcdef0123",
		"C": "bottle-placeholder-0123456789abcdef",
	})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	b.Run("copy", func(b *testing.B) {
		dst := make([]byte, len(chunk))
		b.SetBytes(int64(len(chunk)))
		for b.Loop() {
			copy(dst, chunk)
		}
	})
	b.Run("scan", func(b *testing.B) {
		st := s.Stream()
		b.SetBytes(int64(len(chunk)))
		for b.Loop() {
			if _, ok := st.Write(chunk); ok {
				b.Fatal("random bytes matched")
			}
		}
	})
}

package gitgate

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestAttack2XWithholdUnit(t *testing.T) {
	sc, err := newScanner()
	if err != nil {
		t.Fatal(err)
	}
	for _, pre := range []string{"\n", "\t", "\r", "\x01", "x\n", "\"", "\\", "\x7f", "\xff", "\u00a0", "\b", "\f"} {
		var b bytes.Buffer
		log := slog.New(slog.NewJSONHandler(withholdWriter{w: &b, sc: sc}, nil))
		key := fakeAWSKey(t)
		log.Warn("push refused", "unpack_error", "fatal: bad thing"+pre+key+"\nmore")
		if strings.Contains(b.String(), key) {
			t.Errorf("%q: leaked: %s", pre, b.String())
		}
	}
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(withholdWriter{w: &b, sc: sc}, nil))
	pk := fakePrivateKey(t)
	log.Warn("x", "upstream", "remote: "+pk)
	t.Log(b.String())
}

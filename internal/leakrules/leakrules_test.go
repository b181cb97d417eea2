package leakrules

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	"github.com/zricethezav/gitleaks/v8/sources"
)

// fakeGitHubPAT is assembled at run time so that this repository's own
// files hold nothing a scanner would flag.
func fakeGitHubPAT(t testing.TB) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 36)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "gh" + "p_" + string(b)
}

func ruleIDs(det *detect.Detector, text, path string) []string {
	var ids []string
	//lint:ignore SA1019 Detect takes the deprecated alias until gitleaks v9.
	for _, f := range det.Detect(detect.Fragment(sources.Fragment{Raw: text, FilePath: path})) {
		ids = append(ids, f.RuleID)
	}
	return ids
}

// TestDetectorIsSharedAndGateOwned checks what Detector promises: one
// detector per process, built the gate's way.
func TestDetectorIsSharedAndGateOwned(t *testing.T) {
	a, err := Detector()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Detector()
	if a != b {
		t.Error("two calls built two detectors")
	}
	if !a.IgnoreGitleaksAllow || a.MaxDecodeDepth != 5 || a.Config.Path != "" {
		t.Errorf("IgnoreGitleaksAllow %v, MaxDecodeDepth %d, Path %q", a.IgnoreGitleaksAllow, a.MaxDecodeDepth, a.Config.Path)
	}
	if logging.Logger.GetLevel() != zerolog.Disabled {
		t.Error("gitleaks' logger is on: at trace level it logs secret values")
	}
	secret := fakeGitHubPAT(t)
	for _, tc := range []struct{ text, path string }{
		{"t = " + secret + " # gitleaks:allow\n", ""},
		{"t = " + secret + "\n", "go.sum"},
		{"t = " + secret + "\n", "node_modules/x/index.js"},
		{"t = " + secret + "\n", "logo.png"},
	} {
		if ids := ruleIDs(a, tc.text, tc.path); len(ids) != 1 || ids[0] != "github-pat" {
			t.Errorf("path %q: found %v, want github-pat", tc.path, ids)
		}
	}
}

// TestTagsHaveNoSpareCapacity backs Detector's claim that the one append
// onto shared data in Detect copies.
func TestTagsHaveNoSpareCapacity(t *testing.T) {
	det, err := Detector()
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range det.Config.Rules {
		if cap(r.Tags) != len(r.Tags) {
			t.Errorf("rule %s: tags have %d spare slots", id, cap(r.Tags)-len(r.Tags))
		}
	}
}

// TestDetectConcurrently runs Detect from many goroutines on text that
// takes the decoding passes, for the race detector.
func TestDetectConcurrently(t *testing.T) {
	det, err := Detector()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		secret := fakeGitHubPAT(t)
		text := "a = " + secret + "\nb = " + base64.StdEncoding.EncodeToString([]byte("token="+secret)) + "\n"
		wg.Go(func() {
			for range 20 {
				if ids := ruleIDs(det, text, ""); len(ids) != 2 {
					t.Errorf("found %v, want the plain and the base64 github-pat", ids)
					return
				}
			}
		})
	}
	wg.Wait()
}

package egress

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

const reviewUUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

// The UUID exception of the catch-all rule lets through only a UUID under
// the catch-all rule: credentials with rules of their own that are UUIDs
// (Heroku, Snyk) are still refused, as is anything else in the same body.
func TestReviewUUIDExceptionKnownFormats(t *testing.T) {
	d := newDLP(t, nil)
	for _, body := range []string{
		`HEROKU_API_KEY="` + reviewUUID + `"`,
		`{"heroku_api_key":"` + reviewUUID + `"}`,
		`SNYK_TOKEN=` + reviewUUID + "\n",
		`{"prompt_cache_key":"` + reviewUUID + `","note":"` + fakePAT(t) + `"}`,
		`{"prompt_cache_key":"` + reviewUUID + `","api_key":"q8Zr3LmX9vKp2TnW7yBc4HdF6gJs1Qe5"}`,
		// A UUID glued to more of a secret is not a UUID.
		`{"prompt_cache_key":"` + reviewUUID + `q8Zr3LmX9vKp"}`,
		`{"prompt_cache_key":"` + reviewUUID + `"}` + "\n" + `{"x_key":"q8Zr3LmX9vKp2TnW7yBc4HdF6gJs1Qe5"}`,
	} {
		if l := d.ScanText("body", body, nil); l == nil {
			t.Errorf("not refused:\n%s", body)
		}
	}
	// Codex's own request still passes (the reason for the exception).
	if l := d.ScanText("body", `{"prompt_cache_key":"`+reviewUUID+`","input":[]}`, nil); l != nil {
		t.Errorf("Codex's prompt_cache_key refused: %v", l)
	}
}

// A bottle's own secret whose value is a UUID is refused in every form
// under a name the exception covers: the exception is for the catch-all
// rule only, never for the bottle's own values.
func TestReviewUUIDExceptionOwnSecret(t *testing.T) {
	d := newDLP(t, map[string]string{"HEROKU_KEY": reviewUUID})
	for _, v := range []string{
		reviewUUID,
		strings.ToUpper(reviewUUID),
		base64.StdEncoding.EncodeToString([]byte(reviewUUID)),
		url.QueryEscape(reviewUUID),
		hex.EncodeToString([]byte(reviewUUID)),
	} {
		body := `{"prompt_cache_key":"` + v + `","input":[]}`
		l := d.ScanText("body", body, nil)
		if l == nil || l.Secret != "HEROKU_KEY" {
			// Upper case is not one of the forms the scanner promises.
			if v == strings.ToUpper(reviewUUID) {
				continue
			}
			t.Errorf("the bottle's own UUID secret went out as %q: %v", v, l)
		}
	}
	// Through the body reader too (windows, masks).
	body := `{"prompt_cache_key":"` + reviewUUID + `"}`
	if _, err := readUntilError(d.Body(strings.NewReader(body), []string{"unrelated-mask-value"})); err == nil {
		t.Error("the bottle's own UUID secret went out in a body")
	}
}

// The placeholder masks hide the placeholder from gitleaks; a mask must
// not hide a real credential that differs from it: a mask equal to a
// UUID does not make every UUID-shaped credential of a known rule pass.
func TestReviewUUIDMaskDoesNotHideOthers(t *testing.T) {
	d := newDLP(t, nil)
	body := `HEROKU_API_KEY="` + reviewUUID + `"`
	if l := d.ScanText("body", body, []string{"01a23273-8da8-7161-9071-58d3c66758a8"}); l == nil {
		t.Error("a mask of another UUID hid a Heroku key")
	}
}

// A secret bound to hosts that is a UUID (a Heroku API key) gets a
// placeholder; the agent must not learn part of the real value from it.
// Placeholder keeps "what precedes its last '-' or '_' within the first
// 16 bytes" as a scheme prefix, which for a UUID is its first 13
// characters: 48 bits of the key.
func TestReviewUUIDPlaceholderRevealsNoKey(t *testing.T) {
	ph, err := Placeholder(reviewUUID)
	if err != nil {
		t.Fatal(err)
	}
	for n := len(reviewUUID); n >= 8; n-- {
		for i := 0; i+n <= len(reviewUUID); i++ {
			if part := reviewUUID[i : i+n]; strings.Contains(ph, part) {
				t.Fatalf("the placeholder %q handed to the agent holds %q, %d characters of the real UUID key", ph, part, n)
			}
		}
	}
}

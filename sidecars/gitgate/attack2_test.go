package gitgate

import (
	"strings"
	"testing"
)

func TestAttack2LogJSONEscape(t *testing.T) {
	up, tg, work := attackGate(t)
	main := gitOK(t, work, "rev-parse", "HEAD")
	zero := strings.Repeat("0", 40)
	url := tg.url + "/origin.git/git-receive-pack"
	ct := map[string]string{"Content-Type": "application/x-git-receive-pack-request"}
	for _, sep := range []string{"\x01", "\u2028", "\x1b", "\"", "\\"} {
		key := fakeAWSKey(t)
		before := allRefs(t, up)
		_, resp := rawPost(t, url, receiveBody([]string{zero + " " + main + " refs/heads/x" + sep + key}, packOf(t, work)), ct)
		if allRefs(t, up) != before {
			t.Errorf("%q: upstream changed", sep)
		}
		t.Logf("%q resp %q", sep, resp)
		assertNoSecrets(t, []string{key}, tg.log.String())
	}
	t.Log(tg.log.String())
}

package gitgate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/plan"
)

func TestCheckRefName(t *testing.T) {
	ok := []string{
		"refs/heads/main", "refs/heads/feature/x-1", "refs/tags/v1.2.3", "refs/heads/fix_ü",
		"refs/heads/a@b", "refs/heads/HEADS", "refs/tags/release/2026",
	}
	bad := []string{
		"HEAD", "refs/heads/HEAD", "refs/heads/feature/HEAD", "refs/tags/HEAD", "refs/notes/x", "refs/heads/",
		"refs/heads/a..b", "refs/heads/.hidden", "refs/heads/x/.y", "refs/heads/x.lock", "refs/heads/x.lock/y",
		"refs/heads/x/", "refs/heads/x.", "refs/heads/a//b", "refs/heads/@", "refs/heads/a@{1}",
		"refs/heads/a b", "refs/heads/a~1", "refs/heads/a^", "refs/heads/a:b", "refs/heads/a?", "refs/heads/a*",
		"refs/heads/a[", `refs/heads/a\b`, "refs/heads/a\x01", "refs/heads/a\x7f", "refs/heads/a\u0085b",
		"refs/heads/-f", "refs/heads/refs/heads/main", "refs/heads/" + strings.Repeat("ab", 20),
		"refs/heads/a\u202eb", "refs/heads/a\u200bb", "refs/heads/\xff", "refs/heads/" + strings.Repeat("x", 1020),
	}
	for _, r := range ok {
		if err := checkRefName(r); err != nil {
			t.Errorf("checkRefName(%q) = %v, want nil", r, err)
		}
	}
	for _, r := range bad {
		err := checkRefName(r)
		if err == nil {
			t.Errorf("checkRefName(%q) = nil, want an error", r)
			continue
		}
		if name := strings.TrimPrefix(strings.TrimPrefix(r, "refs/heads/"), "refs/tags/"); len(name) > 4 && strings.Contains(err.Error(), name) {
			t.Errorf("checkRefName(%q) repeats the name: %v", r, err)
		}
	}
}

func TestConfusingRefNamesRefused(t *testing.T) {
	requireGit(t)
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	for _, dst := range []string{"HEAD", "refs/heads/HEAD", "refs/heads/x/HEAD", "refs/heads/a\u202eb", "refs/heads/refs/heads/main"} {
		before := allRefs(t, up)
		out, err := gitRun(t, work, "push", "origin", "main:"+dst)
		if err == nil || !strings.Contains(out, "invalid ref name") {
			t.Errorf("push main:%s: err %v, want the gate's refusal:\n%s", dst, err, out)
		}
		if allRefs(t, up) != before {
			t.Errorf("push main:%s changed upstream", dst)
		}
	}
}

func TestProtectedTags(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct {
		name      string
		protected []string // nil: the default
		movable   bool
	}{
		{"default-all", nil, false},
		{"pattern", []string{"v*"}, false},
		{"none", []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGate(t, plan.GitRemote{Name: "origin", URL: up, ProtectedTags: tc.protected})
			work := tg.cloneVia(t, "origin", up)
			gitOK(t, work, "tag", "-a", "v1", "-m", "one")
			gitOK(t, work, "push", "-q", "origin", "v1") // creating is always allowed
			first := refOf(t, up, "refs/tags/v1")
			if first == "" {
				t.Fatal("tag v1 was not created upstream")
			}
			commitFile(t, work, "f.txt", "x\n", "next")
			gitOK(t, work, "push", "-q", "origin", "main")
			gitOK(t, work, "tag", "-f", "-a", "v1", "-m", "moved")
			out, err := gitRun(t, work, "push", "--force", "origin", "v1")
			if tc.movable {
				if err != nil || refOf(t, up, "refs/tags/v1") == first {
					t.Fatalf("moving unprotected tag v1: err %v\n%s", err, out)
				}
			} else if err == nil || !strings.Contains(out, "moving protected tag v1 is not allowed") || refOf(t, up, "refs/tags/v1") != first {
				t.Fatalf("moving protected tag v1: err %v, upstream %s\n%s", err, refOf(t, up, "refs/tags/v1"), out)
			}
			out, err = gitRun(t, work, "push", "origin", ":refs/tags/v1")
			if tc.movable {
				if err != nil || refOf(t, up, "refs/tags/v1") != "" {
					t.Fatalf("deleting unprotected tag v1: err %v\n%s", err, out)
				}
			} else if err == nil || !strings.Contains(out, "deleting protected tag v1 is not allowed") || refOf(t, up, "refs/tags/v1") == "" {
				t.Fatalf("deleting protected tag v1: err %v\n%s", err, out)
			}
			if tc.name == "pattern" {
				// Outside the pattern, tags move.
				gitOK(t, work, "tag", "rel", "HEAD~1")
				gitOK(t, work, "push", "-q", "origin", "rel")
				gitOK(t, work, "tag", "-f", "rel", "HEAD")
				if out, err := gitRun(t, work, "push", "--force", "origin", "rel"); err != nil {
					t.Fatalf("moving tag rel, outside v*: %v\n%s", err, out)
				}
			}
		})
	}
}

// wordsText returns about n bytes of lines of random lower-case words:
// text that compresses to about 60% (so a pack is larger than git's
// http.postBuffer) and that matches no secret rule.
func wordsText(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var b strings.Builder
	b.Grow(n + 100)
	for b.Len() < n {
		for w := range 12 {
			if w > 0 {
				b.WriteByte(' ')
			}
			for range 2 + rng.IntN(8) {
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestLargePushes pushes one commit adding a file of 3 MB and one of 50
// MB through the gate with a stock git at its default http.postBuffer
// (1 MiB), so git sends its probe request and then the pack in chunks.
func TestLargePushes(t *testing.T) {
	requireGit(t)
	sizes := []int{3 << 20, 50 << 20}
	if testing.Short() {
		sizes = sizes[:1]
	}
	up := newUpstream(t)
	tg := startGate(t, plan.GitRemote{Name: "origin", URL: up})
	work := tg.cloneVia(t, "origin", up)
	for i, n := range sizes {
		t.Run(fmt.Sprintf("%dMB", n>>20), func(t *testing.T) {
			sha := commitFile(t, work, fmt.Sprintf("big%d.txt", i), wordsText(uint64(i), n), "big file")
			out, err := gitRun(t, work, "push", "origin", "main")
			if err != nil {
				t.Fatalf("push of %d bytes: %v\n%s", n, err, out)
			}
			if got := refOf(t, up, "refs/heads/main"); got != sha {
				t.Fatalf("upstream main = %s, want %s\n%s", got, sha, out)
			}
			if !strings.Contains(out, "secret scan clean") {
				t.Errorf("push output lacks the scan's verdict:\n%s", out)
			}
		})
	}
}

func TestPushOverLimitRefused(t *testing.T) {
	requireGit(t)
	for _, tc := range []struct {
		name, content, want string
	}{
		// Random words: the pack itself is over the limit.
		{"pack", wordsText(7, 3<<20), "more than the gate's limit of 1 MiB"},
		// One line repeated: a small pack whose objects are over the limit.
		{"objects", strings.Repeat("the same line again\n", 150000), "more than the gate's limit of 1 MiB of new objects"},
		// A small gzip file that decompresses past the limit.
		{"gzip-bomb", "", "more than the gate's limit of 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			tg := startGateConfig(t, Config{Remotes: []plan.GitRemote{{Name: "origin", URL: up}}, MaxPushBytes: 1 << 20})
			work := tg.cloneVia(t, "origin", up)
			if tc.name == "gzip-bomb" {
				commitBytes(t, work, "bomb.gz", gzipped(t, make([]byte, 4<<20)), "bomb")
			} else {
				commitFile(t, work, "big.txt", tc.content, "big")
			}
			before := allRefs(t, up)
			out, err := gitRun(t, work, "push", "origin", "main")
			if err == nil {
				t.Fatalf("push over the limit succeeded:\n%s", out)
			}
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "max_push_size") {
				t.Errorf("refusal does not name the limit (want %q):\n%s", tc.want, out)
			}
			if allRefs(t, up) != before {
				t.Error("upstream changed")
			}
		})
	}
}

// TestPieces checks the cutting of large texts: the pieces cover the
// text, consecutive ones overlap by at least fragmentOverlap, and each
// knows the line it starts on.
func TestPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var b strings.Builder
		for b.Len() < 600<<10 {
			switch rng.IntN(3) {
			case 0:
				b.WriteString(strings.Repeat("x", rng.IntN(200)) + "\n")
			case 1:
				b.WriteString(strings.Repeat("y", rng.IntN(40<<10)) + "\n") // longer than the overlap
			default:
				b.WriteString("\n")
			}
		}
		text := b.String()
		pos, prevEnd, n := 0, 0, 0
		pieces(text, func(piece string, start, firstLine int) {
			if text[start:start+len(piece)] != piece {
				t.Fatalf("round %d: piece %d is not the text at its offset", round, n)
			}
			if n > 0 && prevEnd-start < fragmentOverlap {
				t.Fatalf("round %d: piece %d overlaps the last by %d bytes", round, n, prevEnd-start)
			}
			if n > 0 && start <= pos {
				t.Fatalf("round %d: piece %d does not advance", round, n)
			}
			if want := strings.Count(text[:start], "\n") + 1; firstLine != want {
				t.Fatalf("round %d: piece %d starts on line %d, says %d", round, n, want, firstLine)
			}
			if len(piece) > fragmentSize {
				t.Fatalf("piece of %d bytes", len(piece))
			}
			pos, prevEnd, n = start, start+len(piece), n+1
		})
		if prevEnd != len(text) {
			t.Fatalf("round %d: the pieces end at %d of %d", round, prevEnd, len(text))
		}
	}
}

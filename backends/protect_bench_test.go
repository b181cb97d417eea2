package backends

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkProtect measures what protecting a workspace costs at launch:
// an empty one (the baseline) beside one of 3,000 directories three
// levels deep, which the search for nested repositories reads.
func BenchmarkProtect(b *testing.B) {
	for _, size := range []int{0, 3000} {
		ws := b.TempDir()
		for i := 0; i < size; i++ {
			d := filepath.Join(ws, fmt.Sprintf("a%d", i%30), fmt.Sprintf("b%d", i%100), fmt.Sprintf("c%d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(ws, ".git", "hooks"), 0o755); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("dirs=%d", size), func(b *testing.B) {
			for b.Loop() {
				st, err := Claim(filepath.Join(b.TempDir(), "slug"))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Protect(protectPlan(ws), st); err != nil {
					b.Fatal(err)
				}
				st.Release()
			}
		})
	}
}

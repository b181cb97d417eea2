//go:build ignore

// seccomp_gen writes seccomp_default.json, Docker's default seccomp
// profile as github.com/moby/profiles/seccomp's DefaultProfile() makes it
// at the version go.mod requires. It runs on Linux only, where
// DefaultProfile is built: go generate ./backends/docker
package main

import (
	"encoding/json"
	"log"
	"os"

	"github.com/moby/profiles/seccomp"
)

func main() {
	// The module's own generate.go writes its default.json the same way.
	b, err := json.MarshalIndent(seccomp.DefaultProfile(), "", "\t")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("seccomp_default.json", b, 0o644); err != nil {
		log.Fatal(err)
	}
}

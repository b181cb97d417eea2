// Package all links every sidecar unit into a program: importing it for
// its side effects registers egress, git-gate, supervise and pipelock with
// the sidecar registry (package sidecars).
package all

import (
	_ "github.com/bottle-dev/bottle/sidecars/egress"    // the built-in egress proxy
	_ "github.com/bottle-dev/bottle/sidecars/gitgate"   // the git gate
	_ "github.com/bottle-dev/bottle/sidecars/pipelock"  // pipelock, run from the host's binary
	_ "github.com/bottle-dev/bottle/sidecars/supervise" // the supervision channel
)

// Command static is a statically linked linux executable that the
// testscript suite builds once per run (CGO_ENABLED=0) and names in
// BOTTLE_SIDECAR_BINARY: the docker backend only accepts a static binary
// for its sidecar bundle, and the test binary that stands in for bottle is
// dynamically linked. The docker stand-in never runs it.
package main

import "os"

func main() { os.Exit(0) }

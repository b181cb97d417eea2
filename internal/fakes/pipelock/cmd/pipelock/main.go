// Command pipelock is the pipelock stand-in (package
// internal/fakes/pipelock) as a binary, for tests that run pipelock as a
// separate process.
package main

import (
	"os"

	"github.com/bottle-dev/bottle/internal/fakes/pipelock"
)

func main() { os.Exit(pipelock.Main()) }

// Command hello is the baseline of bench/dryrun.sh: a static Go program
// that prints one line, the least any Go command can cost to start.
package main

import "os"

func main() { os.Stdout.WriteString("hello\n") }

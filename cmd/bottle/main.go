// Command bottle runs an AI coding agent in a sandbox whose only way out is
// a set of sidecars bottle controls. See the README for the commands.
package main

import "os"

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

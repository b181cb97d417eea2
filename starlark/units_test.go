package starlark

// The evaluator consults the sidecar registry; a program links the units
// in, and so do these tests.
import _ "github.com/bottle-dev/bottle/sidecars/all"

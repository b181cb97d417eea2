// Package profiles holds the profiles shipped inside the bottle binary:
// claude.star, which `bottle start` runs when no profile is given and the
// current directory has no bottle.star, codex.star (`bottle start
// //codex.star`), and the library under lib/ that they load, as an
// example of how a team shares profile code.
package profiles

import "embed"

// FS is the shipped profiles' root: labels such as "//lib/claude.star"
// resolve inside it.
//
//go:embed *.star lib/*.star
var FS embed.FS

// Default is the shipped profile used when none is given.
const Default = "claude.star"

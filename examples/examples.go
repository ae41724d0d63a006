// Package examples holds the bundled example manifests, embedded so that
// `sabot dev --demo` can deploy demo.yaml from any working directory.
package examples

import "embed"

// FS holds every manifest in this folder.
//
//go:embed *.yaml nexmark/*.yaml functions/*/sabot.yaml
var FS embed.FS

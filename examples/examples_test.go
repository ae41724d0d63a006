package examples_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/examples"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
)

// TestExamplesResolve: every manifest under examples/ parses, passes
// validation and resolves into a job graph, so the documented examples
// cannot rot.
func TestExamplesResolve(t *testing.T) {
	t.Parallel()
	n := 0
	err := fs.WalkDir(examples.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		n++
		data, err := examples.FS.ReadFile(path)
		if err != nil {
			return err
		}
		spec, err := manifest.Parse(path, data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if _, err := jobgraph.Resolve(spec); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found %d example manifests; the embedded FS lost some", n)
	}
}

package manifest_test

import (
	"fmt"

	"github.com/sabotdev/sabot/internal/manifest"
)

func ExampleParse() {
	spec, err := manifest.Parse("job.yaml", []byte(`
name: numbers
steps:
  - id: numbers
    sequence: {end: 3}
  - id: out
    print: {prefix: "n> "}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range spec.GetGraph().GetEdges() {
		fmt.Println(e.GetFrom(), "→", e.GetTo())
	}

	_, err = manifest.Parse("job.yaml", []byte(`
name: numbers
steps:
  - id: numbers
    sequence: {end: 3, rows_per_secnd: 10}
  - id: out
    print:
`))
	fmt.Println(err)
	// Output:
	// numbers → out
	// job.yaml:5:24: steps[0].sequence.rows_per_secnd: unknown key, did you mean "rows_per_second"? (allowed: start, end, rows_per_second)
}

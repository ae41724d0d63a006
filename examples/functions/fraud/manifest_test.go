package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
)

// TestManifest: sabot.yaml parses and resolves without the function's
// registration (as `sabot deploy` checks it before deploying), and the
// columns it declares for "alerts" are the fields the function sends.
// (Sabot's own check: a function of yours would not import internal
// packages.)
func TestManifest(t *testing.T) {
	t.Parallel()
	spec, err := manifest.Load("sabot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobgraph.Resolve(spec); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, v := range spec.GetGraph().GetVertices() {
		if f := v.GetOperator().GetFunction(); f != nil && f.GetName() == Fraud.Name {
			for _, c := range f.GetOutputs()["alerts"].GetColumns() {
				cols = append(cols, c.GetName())
			}
		}
	}
	b, err := json.Marshal(Alert{})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range fields {
		want = append(want, k)
	}
	slices.Sort(cols)
	slices.Sort(want)
	if !slices.Equal(cols, want) {
		t.Errorf("sabot.yaml declares alerts columns %v; the function sends %v", cols, want)
	}
}

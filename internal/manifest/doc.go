// Package manifest turns a job manifest — the YAML a person writes and
// deploys with `sabot deploy -f job.yaml` — into a sabot.v1.JobSpec that is
// known to be valid, or into errors that say where the manifest is wrong
// and how.
//
// A manifest is pipeline-shaped: a name, optional job settings, and a list
// of steps, each of which reads from the step before it unless it names its
// inputs:
//
//	name: evens-to-file
//	parallelism: 2
//	steps:
//	  - id: numbers
//	    sequence: {start: 1, end: 1000}
//	  - id: evens
//	    filter: value % 2 = 0
//	  - id: out
//	    file: {path: ./out/evens}
//
// Every key maps 1:1 onto a field of the proto (steps are vertices, inputs
// are edges), so a manifest means exactly what the spec it becomes means;
// docs/manifest.md documents each key.
//
// # Errors
//
// Parse reports every problem it finds (up to MaxErrors) as Errors, each an
// *Error carrying the file, line, column and the field in manifest terms:
//
//	job.yaml:7:5: steps[1].paralelism: unknown key, did you mean "parallelism"? (allowed: …)
//	job.yaml:6:5: steps[1].parallelism: must be greater than or equal to 0 …
//	job.yaml:9:21: steps[2].filter: <what the expression parser says>
//
// Checks run in stages — YAML syntax, the manifest's shape, the proto's
// protovalidate rules, then jobgraph.Resolve (graph rules, schemas and
// expression types) — and a stage runs only when the ones before it passed,
// so one mistake is reported once rather than again as its consequences.
// Problems found on the proto are mapped back to the key that wrote the
// field (graph.vertices[1].parallelism → the parallelism: of steps[1], or
// steps[1] itself when the key is absent and a default broke the rule), and
// expression errors to the column inside the expression where the scalar's
// form allows it (plain or quoted single-line scalars, | and > blocks).
//
// # Scope
//
// Nothing is stored or sent here: the package only turns bytes into a spec.
// It holds no state; Parse and Load are safe for concurrent use.
package manifest

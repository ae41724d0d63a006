package manifest_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/sql/expr"
)

// requireExpr skips a test whose manifests hold map or filter steps while
// sql/expr is a placeholder that compiles nothing.
func requireExpr(t *testing.T) {
	t.Helper()
	if _, err := expr.Compile("value", jobgraph.SequenceSchema()); err != nil {
		t.Skipf("sql/expr cannot compile yet: %v", err)
	}
}

func examples(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no examples found in ../../examples")
	}
	return paths
}

func TestExamples(t *testing.T) {
	t.Parallel()
	requireExpr(t)
	for _, path := range examples(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			spec, err := manifest.Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if _, err := jobgraph.Resolve(spec); err != nil {
				t.Fatalf("Resolve after Load: %v", err)
			}
		})
	}
}

// TestDemoRunsForever pins what `sabot dev --demo` relies on: the demo's
// source is unbounded and rate-limited, and the job is two wide.
func TestDemoRunsForever(t *testing.T) {
	t.Parallel()
	requireExpr(t)
	spec, err := manifest.Load("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seq := spec.GetGraph().GetVertices()[0].GetOperator().GetSequence()
	if seq == nil || seq.End != nil || seq.GetRowsPerSecond() == 0 {
		t.Errorf("demo source = %v, want an unbounded rate-limited sequence", seq)
	}
	if spec.GetParallelism() != 2 {
		t.Errorf("demo parallelism = %d, want 2", spec.GetParallelism())
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	end := int64(10)
	tests := []struct {
		name string
		src  string
		want *sabotv1.JobSpec
	}{{
		name: "implicit inputs and defaults",
		src: `
name: seq-print
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    print:
`,
		want: &sabotv1.JobSpec{
			Name: "seq-print",
			Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{
					{Id: "numbers", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: &end}}}},
					{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
				},
				Edges: []*sabotv1.Edge{{From: "numbers", To: "out"}},
			},
		},
	}, {
		name: "every job key, explicit inputs, key_by implies hash",
		src: `
name: fan-out
parallelism: 2
max_parallelism: 64
labels: {team: data, version: 3}
steps:
  - id: numbers
    parallelism: 1
    sequence: {start: -5, end: 10, rows_per_second: 100}
  - id: log
    key_by: [value]
    print: {prefix: "n> "}
  - id: out
    inputs: [numbers]
    partitioning: broadcast
    parallelism: 3
    file:
      path: ./out/x
      format: json_lines
`,
		want: &sabotv1.JobSpec{
			Name:           "fan-out",
			Parallelism:    2,
			MaxParallelism: 64,
			Labels:         map[string]string{"team": "data", "version": "3"},
			Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{
					{Id: "numbers", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{Start: -5, End: &end, RowsPerSecond: 100}}}},
					{Id: "log", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{Prefix: "n> "}}}},
					{Id: "out", Parallelism: 3, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_File{File: &sabotv1.FileSink{Path: "./out/x", Format: sabotv1.FileFormat_FILE_FORMAT_JSON_LINES}}}},
				},
				Edges: []*sabotv1.Edge{
					{From: "numbers", To: "log", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"value"}},
					{From: "numbers", To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_BROADCAST},
				},
			},
		},
	}, {
		name: "anchors, aliases and an unbounded end",
		src: `
name: anchors
steps:
  - id: numbers
    sequence: {end: null, rows_per_second: &rate 5}
  - id: out
    parallelism: *rate
    print: ~
`,
		want: &sabotv1.JobSpec{
			Name: "anchors",
			Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{
					{Id: "numbers", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{RowsPerSecond: 5}}}},
					{Id: "out", Parallelism: 5, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
				},
				Edges: []*sabotv1.Edge{{From: "numbers", To: "out"}},
			},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := manifest.Parse("job.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

// seqPrint is a valid two-step job that error cases below break one line of.
const seqPrint = `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    print:
`

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{{
		name: "misspelled key",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    paralelism: 2
    print:
`,
		want: `job.yaml:6:5: steps[1].paralelism: unknown key, did you mean "parallelism"? (allowed: id, inputs, partitioning, key_by, parallelism, sequence, nexmark, kafka_source, file_source, map, filter, keyed_aggregate, window, process, function, print, file, blackhole, kafka_sink)`,
	}, {
		name: "unknown top-level key without a near miss",
		src:  "name: ok\nsavepoints: hourly\n" + seqPrint[len("name: ok\n"):],
		want: `job.yaml:2:1: savepoints: unknown key (allowed: name, parallelism, max_parallelism, state_backend, checkpointing, restart_strategy, autoscaler, labels, steps)`,
	}, {
		name: "negative parallelism",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    parallelism: -1
    print:
`,
		want: `job.yaml:6:5: steps[1].parallelism: must be greater than or equal to 0 and less than or equal to 32768`,
	}, {
		name: "wrong type",
		src: `name: ok
parallelism: two
` + seqPrint[len("name: ok\n"):],
		want: `job.yaml:2:14: parallelism: expected an integer, got "two"`,
	}, {
		name: "integer too large",
		src: `name: ok
max_parallelism: 3000000000
` + seqPrint[len("name: ok\n"):],
		want: `job.yaml:2:18: max_parallelism: 3000000000 is out of range [-2147483648, 2147483647]`,
	}, {
		name: "yaml syntax",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10
`,
		want: `job.yaml:4:15: could not find flow mapping end token '}'`,
	}, {
		name: "duplicate key",
		src:  "name: ok\nname: again\n",
		want: `job.yaml:2:1: mapping key "name" already defined at [1:1]`,
	}, {
		name: "empty",
		src:  "# nothing yet\n",
		want: `job.yaml: the manifest is empty; a job needs at least name and steps`,
	}, {
		name: "flow nesting bound",
		src:  "name: " + strings.Repeat("[", 20001),
		want: `job.yaml: the manifest has 20001 '[' and '{'; at most 20000 are accepted`,
	}, {
		name: "two documents",
		src:  seqPrint + "---\nname: other\n",
		want: `job.yaml:8:1: a manifest holds one job, but this file has 2 YAML documents`,
	}, {
		name: "missing name and steps",
		src:  "parallelism: 2\n",
		want: "job.yaml:1:1: missing required key \"name\"\njob.yaml:1:1: missing required key \"steps\"",
	}, {
		name: "unknown input step",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    inputs: [numbrs, other]
    print:
`,
		want: "job.yaml:6:14: steps[1].inputs[0]: no step has id \"numbrs\", did you mean \"numbers\"? (steps: numbers, out)\n" +
			"job.yaml:6:22: steps[1].inputs[1]: no step has id \"other\" (steps: numbers, out)",
	}, {
		name: "cycle",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: a
    inputs: [numbers, c]
    filter: value > 1
  - id: b
    filter: value > 2
  - id: c
    filter: value > 3
  - id: out
    print:
`,
		want: `job.yaml:6:23: steps[1].inputs[1]: the steps form a cycle: c → a → b → c`,
	}, {
		name: "reads itself",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    inputs: [out]
    print:
`,
		want: `job.yaml:6:14: steps[1].inputs[0]: step out reads its own output`,
	}, {
		name: "operators: none, two, and a step after a sink",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
    print:
  - id: nothing
  - id: out
    print:
  - id: more
    print: {prefix: x}
`,
		want: "job.yaml:5:5: steps[0].print: a step has exactly one operator, but this one also has sequence\n" +
			"job.yaml:6:5: steps[1]: missing an operator: one of sequence, nexmark, kafka_source, file_source, map, filter, keyed_aggregate, window, process, function, print, file, blackhole, kafka_sink\n" +
			"job.yaml:9:5: steps[3]: reads from the previous step, but out is a sink; set inputs to the step to read from",
	}, {
		name: "first step is not a source",
		src: `name: ok
steps:
  - id: out
    print:
`,
		want: `job.yaml:3:5: steps[0]: the first step has no previous step to read from; start with a source (sequence) or set inputs`,
	}, {
		name: "duplicate id and missing id",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: numbers
    inputs: [numbers]
    print:
  - inputs: [numbers]
    print:
`,
		want: "job.yaml:5:5: steps[1].id: duplicate step id \"numbers\", also used by steps[0] at line 3\n" +
			"job.yaml:8:5: steps[2]: missing required key \"id\"",
	}, {
		name: "enums and partitioning rules",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
    partitioning: rebalance
  - id: a
    partitioning: hsah
    print:
  - id: b
    inputs: [numbers]
    partitioning: hash
    print:
  - id: c
    inputs: [numbers]
    partitioning: broadcast
    key_by: [value]
    file: {path: ./out, format: csv}
`,
		want: "job.yaml:5:5: steps[0].partitioning: numbers has no inputs to partition\n" +
			"job.yaml:7:19: steps[1].partitioning: unknown value \"hsah\", did you mean \"hash\"? (one of: forward, hash, rebalance, broadcast)\n" +
			"job.yaml:11:5: steps[2].partitioning: partitioning: hash needs key_by, the columns that form the key\n" +
			"job.yaml:16:5: steps[3].key_by: key_by only applies to partitioning: hash, but partitioning is broadcast\n" +
			"job.yaml:17:33: steps[3].file.format: unknown value \"csv\" (one of: json_lines, parquet)",
	}, {
		name: "shapes",
		src: `name: [not, a, string]
labels: team
steps:
  - id: numbers
    sequence: 5
  - just a string
  - id: out
    inputs: numbers
    file:
`,
		want: "job.yaml:1:7: name: expected a job name, got a list\n" +
			"job.yaml:2:9: labels: expected a mapping, got \"team\"\n" +
			"job.yaml:5:15: steps[0].sequence: expected a mapping, got the integer 5\n" +
			"job.yaml:6:5: steps[1]: expected a mapping, got \"just a string\"\n" +
			"job.yaml:8:13: steps[2].inputs: expected a list of step ids, got \"numbers\"\n" +
			"job.yaml:9:5: steps[2].file: missing required key \"path\"",
	}, {
		name: "protovalidate rules",
		src: `name: not a name
parallelism: 200
labels: {"": x}
steps:
  - id: numbers
    sequence: {start: 10, end: 1, rows_per_second: -1}
  - id: 2out
    print:
`,
		want: "job.yaml:1:1: name: \"not a name\" does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9._-]*$`\n" +
			"job.yaml:2:1: parallelism: parallelism must not exceed max_parallelism\n" +
			"job.yaml:3:10: labels[\"\"]: key must be at least 1 characters\n" +
			"job.yaml:6:27: steps[0].sequence.end: end must be at least start\n" +
			"job.yaml:6:35: steps[0].sequence.rows_per_second: must be greater than or equal to 0 and less than or equal to 1000000000\n" +
			"job.yaml:7:5: steps[1].id: \"2out\" does not match regex pattern `^[A-Za-z_][A-Za-z0-9_-]*$`",
	}, {
		name: "empty steps",
		src:  "name: ok\nsteps: []\n",
		want: `job.yaml:2:1: steps: must contain at least 1 item(s)`,
	}, {
		name: "parallelism above max, from the job default",
		src: `name: ok
max_parallelism: 4
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    parallelism: 8
    print:
`,
		want: `job.yaml:7:5: steps[1].parallelism: parallelism 8 exceeds max_parallelism 4`,
	}, {
		name: "forward edge between unequal parallelism",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    parallelism: 2
    partitioning: forward
    print:
`,
		want: `job.yaml:7:5: steps[1].partitioning: a forward edge needs equal parallelism at both ends, but numbers has 1 and out has 2`,
	}, {
		name: "key field that is not a column",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: out
    key_by: [bucket]
    print:
`,
		// jobgraph files key-field problems under graph.edges, so the step
		// is the best place there is.
		want: `job.yaml:6:14: steps[1].key_by[0]: key field "bucket" is not a column of numbers (columns: value)`,
	}, {
		name: "a source with an input",
		src: `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
  - id: more
    inputs: [numbers]
    sequence: {end: 10}
  - id: out
    print:
`,
		want: `job.yaml:6:5: steps[1].inputs: source more cannot have inputs`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := manifest.Parse("job.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("errors:\n got: %s\nwant: %s", got, tt.want)
			}
			var errs manifest.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not a non-empty manifest.Errors", err)
			}
		})
	}
}

// TestErrorFields checks the structured form behind the message.
func TestErrorFields(t *testing.T) {
	t.Parallel()
	src := strings.Replace(seqPrint, "    print:", "    parallelism: -3\n    print:", 1)
	_, err := manifest.Parse("dir/job.yaml", []byte(src))
	var merr *manifest.Error
	if !errors.As(err, &merr) {
		t.Fatalf("errors.As(%v, *manifest.Error) = false", err)
	}
	want := &manifest.Error{File: "dir/job.yaml", Line: 6, Column: 5, Field: "steps[1].parallelism", Msg: "must be greater than or equal to 0 and less than or equal to 32768"}
	if diff := cmp.Diff(want, merr); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestTooManyErrors(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("name: ok\nsteps:\n  - id: numbers\n    sequence: {end: 10}\n")
	// Each bad step is three errors: an unknown key, no operator, and a
	// duplicate id (after the first): 3·25 - 1 = 74.
	for range 25 {
		b.WriteString("  - id: out\n    prnt:\n")
	}
	_, err := manifest.Parse("job.yaml", []byte(b.String()))
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not manifest.Errors", err)
	}
	if len(errs) != manifest.MaxErrors+1 {
		t.Fatalf("got %d errors, want %d", len(errs), manifest.MaxErrors+1)
	}
	if got, want := errs[manifest.MaxErrors].Error(), "job.yaml: too many errors (54 more not shown)"; got != want {
		t.Errorf("last error = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte("name: ok\nsteps: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := manifest.Load(path)
	if want := path + ":2:8: steps: expected a list of steps, got the integer 1"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
	if _, err := manifest.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

// TestExpressionErrors places expression errors inside the YAML scalar.
func TestExpressionErrors(t *testing.T) {
	t.Parallel()
	requireExpr(t)
	const head = `name: ok
steps:
  - id: numbers
    sequence: {end: 10}
`
	tests := []struct {
		name string
		step string // step 1, starting at line 5
		want string
	}{
		{"plain", "  - id: f\n    filter: value > nope\n",
			`job.yaml:6:21: steps[1].filter: unknown column "nope" (columns: value)`},
		{"double quoted", "  - id: f\n    filter: \"value > nope\"\n",
			`job.yaml:6:22: steps[1].filter: unknown column "nope" (columns: value)`},
		{"map column", "  - id: m\n    map:\n      v: value\n      w: value + nope\n",
			`job.yaml:8:18: steps[1].map.w: unknown column "nope" (columns: value)`},
		{"flow map column", "  - id: m\n    map: {a: value, a2: value +* 2}\n",
			`job.yaml:6:32: steps[1].map.a2: expected an operand but found "*"`},
		{"literal block", "  - id: f\n    filter: |\n      value > 1 AND\n      nope\n",
			`job.yaml:8:7: steps[1].filter: unknown column "nope" (columns: value)`},
		{"folded block", "  - id: f\n    filter: >\n      value > 1 AND\n      nope\n",
			`job.yaml:8:7: steps[1].filter: unknown column "nope" (columns: value)`},
		{"escape before the error: offset, not a guessed column", "  - id: f\n    filter: \"'\\t' = nope\"\n",
			`job.yaml:6:13: steps[1].filter: at offset 6 of the expression: unknown column "nope" (columns: value)`},
		{"multi-line plain scalar", "  - id: f\n    filter: value > 1 AND\n      nope\n",
			`job.yaml:6:13: steps[1].filter: at offset 14 of the expression: unknown column "nope" (columns: value)`},
		{"filter that is not boolean", "  - id: f\n    filter: value + 1\n",
			`job.yaml:6:5: steps[1].filter: condition must be boolean, but "value + 1" is int64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := head + tt.step + "  - id: out\n    print:\n"
			_, err := manifest.Parse("job.yaml", []byte(src))
			if err == nil {
				t.Fatal("Parse succeeded, want an expression error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
	t.Run("wraps expr.Error", func(t *testing.T) {
		t.Parallel()
		_, err := manifest.Parse("job.yaml", []byte(head+tests[0].step+"  - id: out\n    print:\n"))
		var xe *expr.Error
		if !errors.As(err, &xe) || xe.Offset != 8 {
			t.Errorf("errors.As(%v, *expr.Error) = %v, want offset 8", err, xe)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, path := range examples(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(seqPrint))
	f.Add([]byte("name: eo\ncheckpointing: {interval_ms: 1000, unaligned: true}\nrestart_strategy: {exponential_delay: {multiplier: 1.5}}\n" +
		"steps:\n  - id: n\n    sequence: {}\n  - id: k\n    kafka_sink: {brokers: [b], topic: t, delivery: exactly_once}\n"))
	f.Add([]byte("name: &a x\nsteps: [*a, {<<: *a}, {id: b, inputs: [b], map: {a.b: \"x\\ty\"}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := manifest.Parse("fuzz.yaml", data)
		switch {
		case err == nil && spec == nil:
			t.Fatal("Parse returned neither a spec nor an error")
		case err == nil:
			// What Parse accepts must survive the checks it claims to run.
			if _, rerr := jobgraph.Resolve(spec); rerr != nil {
				t.Fatalf("Parse accepted a spec Resolve rejects: %v", rerr)
			}
			if _, merr := proto.Marshal(spec); merr != nil {
				t.Fatalf("Parse returned an unmarshalable spec: %v", merr)
			}
		default:
			var errs manifest.Errors
			if !errors.As(err, &errs) || len(errs) == 0 || len(errs) > manifest.MaxErrors+1 {
				t.Fatalf("error %T %v is not a bounded manifest.Errors", err, err)
			}
		}
	})
}

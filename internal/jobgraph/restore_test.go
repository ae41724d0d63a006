package jobgraph_test

import (
	"errors"
	"strings"
	"testing"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

func TestCheckRestore(t *testing.T) {
	t.Parallel()
	g, err := jobgraph.Resolve(spec(2, []*sabotv1.Vertex{
		{Id: "numbers", Operator: seq()},
		{Id: "out", Operator: printOp()},
	}, &sabotv1.Edge{From: "numbers", To: "out"}))
	if err != nil {
		t.Fatal(err)
	}
	const loc = "savepoints/sp1/_metadata"
	snaps := func(vertices ...string) []*clusterv1.OperatorSnapshot {
		var out []*clusterv1.OperatorSnapshot
		for _, v := range vertices {
			// Two subtasks each, with state: a missing vertex is named
			// once. A vertex named "stateless" has none.
			var st []byte
			if v != "stateless" {
				st = []byte{1}
			}
			out = append(out, &clusterv1.OperatorSnapshot{VertexId: v, Subtask: 0, OperatorState: st},
				&clusterv1.OperatorSnapshot{VertexId: v, Subtask: 1, OperatorState: st})
		}
		return out
	}
	cases := []struct {
		name  string
		md    *clusterv1.CheckpointMetadata
		allow bool
		// want lists the fields of the errors, in order; none means ok.
		want []string
		// msg is text every message must hold.
		msg []string
	}{
		{name: "same graph", md: &clusterv1.CheckpointMetadata{MaxParallelism: 128, Operators: snaps("numbers", "out")}},
		{name: "metadata without max_parallelism", md: &clusterv1.CheckpointMetadata{Operators: snaps("numbers")}},
		{name: "fewer vertices in the savepoint", md: &clusterv1.CheckpointMetadata{MaxParallelism: 128, Operators: snaps("numbers")}},
		{
			name: "state of a removed vertex", md: &clusterv1.CheckpointMetadata{MaxParallelism: 128, Operators: snaps("numbers", "count", "old")},
			want: []string{"restore", "restore"}, msg: []string{loc, "allow non-restored state"},
		},
		{name: "a removed stateless vertex", md: &clusterv1.CheckpointMetadata{MaxParallelism: 128, Operators: snaps("numbers", "stateless")}},
		{name: "state of a removed vertex, allowed", md: &clusterv1.CheckpointMetadata{MaxParallelism: 128, Operators: snaps("count")}, allow: true},
		{
			name: "other max_parallelism", md: &clusterv1.CheckpointMetadata{MaxParallelism: 256, Operators: snaps("numbers")}, allow: true,
			want: []string{"max_parallelism"}, msg: []string{loc, "128", "256"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := jobgraph.CheckRestore(g, tc.md, loc, tc.allow)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("CheckRestore: %v", err)
				}
				return
			}
			var errs jobgraph.Errors
			if !errors.As(err, &errs) || len(errs) != len(tc.want) {
				t.Fatalf("CheckRestore: %v, want errors on %v", err, tc.want)
			}
			for i, e := range errs {
				if e.Field != tc.want[i] {
					t.Errorf("error %d on %s, want %s", i, e.Field, tc.want[i])
				}
				for _, m := range tc.msg {
					if !strings.Contains(e.Msg, m) {
						t.Errorf("error %q does not mention %q", e.Msg, m)
					}
				}
			}
		})
	}
}

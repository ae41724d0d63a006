package jobgraph

import (
	"fmt"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
)

// CheckRestore reports whether g can start from the savepoint (or
// checkpoint) md, which was read from location: the checks that do not
// depend on the state itself, so that the gateway can refuse a deploy
// --from-savepoint at once and a worker can tell a restore that can never
// succeed from one worth retrying. It returns Errors with fields relative
// to the JobSpec:
//
//   - max_parallelism: md was taken with another number of key groups, and
//     keyed state cannot be remapped onto a different number;
//   - restore: md has state of a vertex g does not have (matched by
//     vertex id), unless allowNonRestoredState drops it. Vertices without
//     state (maps, filters, print sinks) may be removed or renamed freely
//     (HasState; as the runtime's restore checks).
//
// The runtime applies the same rules when it restores; state that is
// present but cannot be read (a Kafka exactly-once sink's transactions at
// another parallelism within one job) is found only then.
func CheckRestore(g *Graph, md *clusterv1.CheckpointMetadata, location string, allowNonRestoredState bool) error {
	var errs Errors
	if mp := int(md.GetMaxParallelism()); mp != 0 && mp != g.MaxParallelism {
		errs = append(errs, &Error{Field: "max_parallelism", Msg: fmt.Sprintf(
			"%d, but savepoint %s was taken with max_parallelism %d: the number of key groups is fixed for the life of a job and its savepoints (set max_parallelism: %d)",
			g.MaxParallelism, location, mp, mp)})
	}
	if !allowNonRestoredState {
		seen := map[string]bool{}
		for _, s := range md.GetOperators() {
			id := s.GetVertexId()
			if seen[id] || g.Vertex(id) != nil || !HasState(s) {
				continue
			}
			seen[id] = true
			errs = append(errs, &Error{Field: "restore", Msg: fmt.Sprintf(
				"savepoint %s was taken of a job with vertex %q, which this job does not have: keep that step's id, or allow non-restored state (--allow-non-restored-state) to drop its state",
				location, id)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// HasState reports whether a vertex subtask's snapshot holds any state:
// keyed state, operator state or in-flight data.
func HasState(s *clusterv1.OperatorSnapshot) bool {
	return s.GetKeyed() != nil || len(s.GetOperatorState()) > 0 || len(s.GetChannelState()) > 0
}

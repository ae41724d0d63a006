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
//   - restore: md holds state of a vertex g does not have (matched by
//     vertex id), unless allowNonRestoredState drops such state.
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
			if seen[id] || g.Vertex(id) != nil {
				continue
			}
			seen[id] = true
			errs = append(errs, &Error{Field: "restore", Msg: fmt.Sprintf(
				"savepoint %s has state of vertex %q, which the job does not have: keep that step's id, or allow non-restored state (--allow-non-restored-state) to drop its state",
				location, id)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

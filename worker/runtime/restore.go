package runtime

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// restorer is a source or sink with operator state to restore: it gets
// every restored snapshot of its vertex (all subtasks') and takes its
// share, before Open.
type restorer interface {
	restoreState(ctx context.Context, snaps []*clusterv1.OperatorSnapshot) error
}

// restoreOperators hands restored operator state to the task's sources
// and sinks.
func (t *task) restoreOperators(ctx context.Context) error {
	if t.cp == nil {
		return nil
	}
	for _, n := range t.nodes {
		var r restorer
		if n.op == nil {
			r, _ = t.source.(restorer)
		} else {
			r, _ = n.op.(restorer)
		}
		if r == nil {
			continue
		}
		if snaps := t.cp.restoredOf(n.vertex.ID); len(snaps) > 0 {
			if err := r.restoreState(ctx, snaps); err != nil {
				return tagVertex(n.vertex.ID, fmt.Errorf("restore: %w", err))
			}
		}
	}
	return nil
}

// The sequence source's state: the next value and how many remain.

func (s *sequence) snapshotState(context.Context, int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	b := binary.AppendVarint(nil, s.next)
	b = binary.AppendUvarint(b, s.remaining)
	b = binary.AppendVarint(b, s.emitted)
	return &clusterv1.OperatorSnapshot{OperatorState: b}, nil, nil
}

func (s *sequence) restoreState(_ context.Context, snaps []*clusterv1.OperatorSnapshot) error {
	for _, sn := range snaps {
		if int(sn.GetSubtask()) != s.subtask {
			continue
		}
		if int(sn.GetParallelism()) != s.parallelism {
			return fmt.Errorf("sequence source: restores at its checkpointed parallelism %d only, not %d", sn.GetParallelism(), s.parallelism)
		}
		b := sn.GetOperatorState()
		next, n := binary.Varint(b)
		rem, m := binary.Uvarint(b[max(n, 0):])
		emitted, k := binary.Varint(b[max(n, 0)+max(m, 0):])
		if n <= 0 || m <= 0 || k <= 0 {
			return errors.New("sequence source: undecodable state")
		}
		s.next, s.remaining, s.emitted = next, rem, emitted
		return nil
	}
	return nil
}

// The Kafka source's state: the next offset per partition of the subtask.
// A restore takes the union over all restored subtasks, so partitions may
// move between subtasks when the parallelism changes.

func (s *kafkaSource) snapshotState(context.Context, int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	b, err := json.Marshal(s.src.Offsets())
	if err != nil {
		return nil, nil, err
	}
	return &clusterv1.OperatorSnapshot{OperatorState: b}, nil, nil
}

func (s *kafkaSource) restoreState(_ context.Context, snaps []*clusterv1.OperatorSnapshot) error {
	union := map[string]map[int32]int64{}
	for _, sn := range snaps {
		if len(sn.GetOperatorState()) == 0 {
			continue
		}
		var offs map[string]map[int32]int64
		if err := json.Unmarshal(sn.GetOperatorState(), &offs); err != nil {
			return fmt.Errorf("kafka source: undecodable offsets of subtask %d: %w", sn.GetSubtask(), err)
		}
		for topic, ps := range offs {
			if union[topic] == nil {
				union[topic] = map[int32]int64{}
			}
			for p, o := range ps {
				union[topic][p] = o
			}
		}
	}
	s.cfg.Start.Mode = kafka.StartOffsets
	s.cfg.Start.Offsets = union
	return nil
}

package runtime

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// rowCounter counts the rows it processed; its snapshot records the count.
type rowCounter struct {
	baseOperator
	rows int64
}

func (r *rowCounter) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ Output) error {
	r.rows += rec.NumRows()
	return nil
}

func (r *rowCounter) snapshotState(context.Context, int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	return &clusterv1.OperatorSnapshot{StateSize: r.rows}, nil, nil
}

// TestBarrierAlignment feeds a two-channel task: the barrier on channel 0,
// then a batch on channel 0 (after its barrier), a batch on channel 1
// (before its barrier), then channel 1's barrier. Exactly-once aligns: the
// snapshot holds channel 1's rows only, and channel 0's batch waits until
// the snapshot. At-least-once does not block: the snapshot, taken at the
// last barrier, holds both.
func TestBarrierAlignment(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batch := func(n int) Element {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		for i := range n {
			b.Append(int64(i))
		}
		arr := b.NewArray()
		defer arr.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
		return BatchElement(array.NewRecordBatch(schema, []arrow.Array{arr}, int64(n)))
	}
	for _, tc := range []struct {
		name    string
		atLeast bool
		want    int64
	}{{"exactly-once", false, 3}, {"at-least-once", true, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newLocalGate(2, 8)
			send := func(ch int, el Element) {
				if err := (localSender{gate: g, channel: ch}).Send(context.Background(), el); err != nil {
					t.Fatal(err)
				}
			}
			acks := make(chan ack, 4)
			op := &rowCounter{}
			v := &jobgraph.Vertex{ID: "v", Parallelism: 1}
			head := &node{vertex: v, op: op}
			tk := &task{gate: g, head: head, nodes: []*node{head},
				cp: &checkpointing{acks: acks, finished: make(chan []subtaskKey, 1), maxP: 128, atLeast: tc.atLeast}}
			send(0, BarrierElement(1))
			send(0, batch(5))
			send(1, batch(3))
			send(1, BarrierElement(1))
			send(0, EndOfInputElement())
			send(1, EndOfInputElement())
			if err := tk.runInput(context.Background()); err != nil {
				t.Fatal(err)
			}
			a := <-acks
			if a.id != 1 || a.err != nil {
				t.Fatalf("ack %+v", a)
			}
			if got := a.snap.GetStateSize(); got != tc.want {
				t.Errorf("snapshot saw %d rows, want %d", got, tc.want)
			}
			if op.rows != 8 {
				t.Errorf("processed %d rows in all, want 8", op.rows)
			}
		})
	}
}

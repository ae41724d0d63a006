package runtime

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
)

// Unaligned checkpoints (exactly-once, Flink's unaligned checkpoints).
//
// A source injects the barrier as usual, but every exchange hands it to
// the receiver ahead of the buffered elements (Sender.SendPriority). The
// receiving task snapshots its operators at the FIRST barrier of a
// checkpoint, without waiting for the other channels, and forwards the
// barrier at once, again with priority. What the snapshot does not reflect
// is stored with it as channel state: for each input channel, the batches
// that were sent before that channel's barrier but not processed before
// the snapshot — those still buffered when the channel's barrier arrives
// (it overtook them), and, for channels whose barrier arrives later, those
// processed in between. On restore they are processed first. Nothing is
// blocked, so a checkpoint completes within about the time its barriers
// take to jump the queues, however backpressured the job is.
//
// Savepoints stay aligned (as in Flink): they hold no channel state, so
// they restore anywhere. A checkpoint with channel state restores at the
// same parallelism of the receiving vertex only.

// unalignedCheckpoint is an input task's state for one unaligned
// checkpoint in progress.
type unalignedCheckpoint struct {
	b         barrier
	start     time.Time
	got       []bool                // per channel: barrier arrived
	recording []bool                // per channel: record batches processed now
	inflight  [][]arrow.RecordBatch // per channel, retained
	snap      *clusterv1.OperatorSnapshot
	upload    uploadFunc
	err       error
	schemas   []*arrow.Schema // per channel, of the first batch
}

func (u *unalignedCheckpoint) release() {
	for _, bs := range u.inflight {
		for _, b := range bs {
			b.Release()
		}
	}
	u.inflight = nil
}

func (u *unalignedCheckpoint) record(ch int, rec arrow.RecordBatch) {
	rec.Retain()
	u.inflight[ch] = append(u.inflight[ch], rec)
	if u.schemas[ch] == nil {
		u.schemas[ch] = rec.Schema()
	}
}

// onUnalignedBarrier handles a priority barrier from channel ch.
func (t *task) onUnalignedBarrier(ctx context.Context, ch int, el Element, v *valve) error {
	a := &t.align
	id := el.Checkpoint
	if id <= a.last || (t.ua != nil && id < t.ua.b.id) {
		return nil
	}
	if t.ua != nil && id > t.ua.b.id {
		t.ua.release() // a newer checkpoint: the older can no longer complete
		t.ua = nil
	}
	n := t.gate.NumChannels()
	if t.ua == nil {
		b := barrier{id: id, unaligned: true}
		u := &unalignedCheckpoint{b: b, start: time.Now(), got: make([]bool, n), recording: make([]bool, n),
			inflight: make([][]arrow.RecordBatch, n), schemas: make([]*arrow.Schema, n)}
		for c := range n {
			u.recording[c] = !v.ended[c]
		}
		// The head's state now; the chain after it and the downstream
		// tasks get the barrier at once.
		u.snap, u.upload, u.err = t.take(ctx, t.head, b)
		t.ua = u
		if err := t.forwardBarrier(ctx, &t.head.out, b); err != nil {
			return err
		}
	}
	u := t.ua
	u.got[ch], u.recording[ch] = true, false
	// The barrier overtook what the channel still buffers before it.
	if ov, ok := t.gate.(overtaker); ok {
		ov.Buffered(ch, func(b Element) {
			if b.Kind == KindBatch && b.seq <= el.seq {
				u.record(ch, b.Batch)
			}
		})
	}
	return t.maybeUnalignedDone(ctx, v)
}

// maybeUnalignedDone completes the checkpoint in progress once every open
// channel delivered its barrier: the head's snapshot and the channel state
// are uploaded and acked together.
func (t *task) maybeUnalignedDone(ctx context.Context, v *valve) error {
	u := t.ua
	if u == nil {
		return nil
	}
	for c, got := range u.got {
		if !got && !v.ended[c] {
			return nil
		}
	}
	t.ua = nil
	t.align.last = u.b.id
	cp := t.cp
	name := fmt.Sprintf("%s-%d-a%d", pathPart(t.head.vertex.ID, "vertex"), t.info.Subtask, cp.attempt)
	extra := func(ctx context.Context, s *clusterv1.OperatorSnapshot) error {
		defer u.release()
		for c, bs := range u.inflight {
			if len(bs) == 0 {
				continue
			}
			var buf bytes.Buffer
			w := ipc.NewWriter(&buf, ipc.WithSchema(u.schemas[c]))
			for _, b := range bs {
				if err := w.Write(b); err != nil {
					return fmt.Errorf("channel state: %w", err)
				}
			}
			if err := w.Close(); err != nil {
				return fmt.Errorf("channel state: %w", err)
			}
			key := blob.CheckpointKey(cp.jobID, u.b.id, fmt.Sprintf("%s-ch%d", name, c))
			size := int64(buf.Len())
			if err := cp.store.Put(ctx, key, &buf, size); err != nil {
				return err
			}
			s.ChannelState = append(s.ChannelState, &clusterv1.ChannelState{Channel: int32(c), Key: key, Size: size})
			s.StateSize += size
			s.IncrementalSize += size
		}
		return nil
	}
	return t.ack(ctx, t.head, u.b.id, u.start, u.snap, u.upload, u.err, extra)
}

// replayChannelState processes the restored in-flight input of the head
// vertex's subtask before anything else arrives.
func (t *task) replayChannelState(ctx context.Context) error {
	if t.cp == nil {
		return nil
	}
	for _, s := range t.cp.restoredOf(t.head.vertex.ID) {
		if int(s.GetSubtask()) != t.info.Subtask || len(s.GetChannelState()) == 0 {
			continue
		}
		if int(s.GetParallelism()) != t.head.vertex.Parallelism {
			return fmt.Errorf("runtime: %s was checkpointed unaligned at parallelism %d; its in-flight data restores at that parallelism only (take a savepoint to rescale)",
				t.head.vertex.ID, s.GetParallelism())
		}
		for _, cs := range s.GetChannelState() {
			if err := t.replayChannel(ctx, cs); err != nil {
				return tagVertex(t.head.vertex.ID, fmt.Errorf("replay channel state %s: %w", cs.GetKey(), err))
			}
		}
	}
	return nil
}

func (t *task) replayChannel(ctx context.Context, cs *clusterv1.ChannelState) error {
	rc, err := t.cp.store.Get(ctx, cs.GetKey())
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	r, err := ipc.NewReader(rc)
	if err != nil {
		return err
	}
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		if err := t.head.op.ProcessBatch(ctx, rec, &t.head.out); err != nil {
			return err
		}
	}
	return r.Err()
}

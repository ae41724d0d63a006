package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// edgeWriter is one sending subtask's side of a non-chained edge: it picks
// the receiving subtasks of each batch by the edge's partitioning and
// broadcasts control events to all of them.
//
// Partitioning:
//   - FORWARD: to the subtask with the sender's index (a forward edge that
//     is not chained: its receiver has several inputs).
//   - REBALANCE: whole batches round robin, starting at the sender's own
//     index so senders do not all hit receiver 0 first. Per batch rather
//     than per row: splitting would copy every batch into p small ones,
//     and sources emit full batches, so the spread is even where volume
//     matters; at low rates batches are a row or a few, which is per-row
//     round robin anyway.
//   - BROADCAST: every batch to every receiver (one reference each, no
//     copy).
//   - HASH: rows split by key group (see hash.go); a batch whose rows all
//     go to one receiver is forwarded whole, otherwise each receiver gets
//     a new batch of its rows (arrow take).
type edgeWriter struct {
	// origin is the owning task's current batch origin (task.origin).
	origin *int64
	// tm counts rows sent and time blocked for the owning task.
	tm      *taskMetrics
	edge    *jobgraph.Edge
	senders []Sender // by receiving subtask
	self    int
	next    int // REBALANCE: next receiver
	hash    *hashSplitter
}

func newEdgeWriter(e *jobgraph.Edge, x Exchange, self int, maxP int, mem memory.Allocator) *edgeWriter {
	w := &edgeWriter{edge: e, self: self, senders: make([]Sender, e.To.Parallelism)}
	for to := range w.senders {
		w.senders[to] = x.Sender(e, self, to)
	}
	w.next = self % len(w.senders)
	if e.Partitioning == sabotv1.Partitioning_PARTITIONING_HASH {
		w.hash = &hashSplitter{keys: e.KeyIndices, maxP: maxP, p: e.To.Parallelism, mem: mem, rows: make([][]int32, e.To.Parallelism)}
	}
	return w
}

// sendBatch gives receiver to its own reference to rec.
func (w *edgeWriter) sendBatch(ctx context.Context, to int, rec arrow.RecordBatch) error {
	rec.Retain()
	return w.send(ctx, to, w.element(rec))
}

// send hands el to receiver to; the time it blocks (a full receiver) is
// the task's backpressured time.
func (w *edgeWriter) send(ctx context.Context, to int, el Element) error {
	if w.tm == nil {
		return w.senders[to].Send(ctx, el)
	}
	start := time.Now()
	err := w.senders[to].Send(ctx, el)
	w.tm.bp.Add(int64(time.Since(start)))
	return err
}

// element wraps rec with the owning task's current batch origin (none when
// the writer has no task, as in unit tests).
func (w *edgeWriter) element(rec arrow.RecordBatch) Element {
	el := BatchElement(rec)
	if w.origin != nil {
		el.Origin = *w.origin
	}
	return el
}

func (w *edgeWriter) Emit(ctx context.Context, rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		return nil
	}
	if w.tm != nil {
		w.tm.out.Add(rec.NumRows())
	}
	switch w.edge.Partitioning {
	case sabotv1.Partitioning_PARTITIONING_FORWARD:
		return w.sendBatch(ctx, w.self, rec)
	case sabotv1.Partitioning_PARTITIONING_REBALANCE:
		to := w.next
		w.next++
		if w.next == len(w.senders) {
			w.next = 0
		}
		return w.sendBatch(ctx, to, rec)
	case sabotv1.Partitioning_PARTITIONING_BROADCAST:
		for to := range w.senders {
			if err := w.sendBatch(ctx, to, rec); err != nil {
				return err
			}
		}
		return nil
	case sabotv1.Partitioning_PARTITIONING_HASH:
		return w.hash.split(ctx, rec, w)
	default:
		return fmt.Errorf("runtime: edge %s → %s: unknown partitioning %s", w.edge.From.ID, w.edge.To.ID, w.edge.Partitioning)
	}
}

// broadcast sends a control element to every receiver.
func (w *edgeWriter) broadcast(ctx context.Context, el Element) error {
	for _, s := range w.senders {
		if err := s.Send(ctx, el); err != nil {
			return err
		}
	}
	return nil
}

// broadcastPriority sends el ahead of everything buffered at every
// receiver (an unaligned checkpoint's barrier).
func (w *edgeWriter) broadcastPriority(ctx context.Context, el Element) error {
	for _, s := range w.senders {
		if err := s.SendPriority(ctx, el); err != nil {
			return err
		}
	}
	return nil
}

func (w *edgeWriter) EmitWatermark(ctx context.Context, wm int64) error {
	return w.broadcast(ctx, WatermarkElement(wm))
}

func (w *edgeWriter) EmitIdle(ctx context.Context, idle bool) error {
	return w.broadcast(ctx, WatermarkStatusElement(idle))
}

func (w *edgeWriter) endOfInput(ctx context.Context) error {
	return w.broadcast(ctx, EndOfInputElement())
}

// hashSplitter splits batches by key group. Its buffers are reused from
// batch to batch; the per-row loop allocates nothing.
type hashSplitter struct {
	keys    []int
	maxP, p int
	mem     memory.Allocator
	hashes  []uint32
	rows    [][]int32 // per receiver: row indices of the current batch
}

func (h *hashSplitter) split(ctx context.Context, rec arrow.RecordBatch, w *edgeWriter) error {
	n := int(rec.NumRows())
	if cap(h.hashes) < n {
		h.hashes = make([]uint32, n)
	}
	hashes := h.hashes[:n]
	if err := HashKeys(rec, h.keys, hashes); err != nil {
		return err
	}
	for t := range h.rows {
		h.rows[t] = h.rows[t][:0]
	}
	maxP := uint32(h.maxP)
	for i, hv := range hashes {
		t := jobgraph.SubtaskForKeyGroup(h.maxP, h.p, int(hv%maxP))
		h.rows[t] = append(h.rows[t], int32(i))
	}
	for t, rows := range h.rows {
		switch len(rows) {
		case 0:
			continue
		case n:
			return w.sendBatch(ctx, t, rec) // every row to one receiver: no copy
		}
		part, err := take(ctx, h.mem, rec, rows)
		if err != nil {
			return err
		}
		if err := w.send(ctx, t, w.element(part)); err != nil {
			return err
		}
	}
	return nil
}

// take returns a batch of rec's rows at the given indices (gather: a
// zero-copy slice when they are one contiguous run).
func take(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, rows []int32) (arrow.RecordBatch, error) {
	return gather(ctx, mem, rec, rows)
}

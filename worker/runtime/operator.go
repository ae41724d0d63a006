package runtime

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// Output is where an operator emits. It is the operator's view of the rest
// of its task: chained operators are called directly, exchange edges are
// written to their channels, a sink's output discards.
//
// Emit borrows rec: the caller keeps its reference and releases it when it
// no longer needs the batch; an output that keeps rec (a queue, a buffer)
// retains it itself. Emit blocks while a downstream queue is full (that is
// backpressure) and returns ctx.Err() if ctx is cancelled meanwhile.
type Output interface {
	Emit(ctx context.Context, rec arrow.RecordBatch) error
	// EmitWatermark forwards a watermark downstream. Only sources call it;
	// operators' watermarks are forwarded by the task after
	// Operator.ProcessWatermark returns.
	EmitWatermark(ctx context.Context, wm int64) error
	// EmitIdle forwards a watermark status downstream: idle (true) or
	// active (false). Only sources call it, as for EmitWatermark; the
	// task forwards its inputs' combined status itself. A source marks
	// itself active again before it emits its next batch or watermark.
	// A status equal to the last one sent is dropped.
	EmitIdle(ctx context.Context, idle bool) error
}

// Operator is one vertex's logic inside a task. The task calls it from one
// goroutine only, in this order:
//
//	Open → (ProcessBatch | ProcessWatermark)* → Finish → Close
//
// Finish is called once every input has ended (bounded input) and may emit
// final results; it is not called when the task is cancelled or fails.
// Close is always called once Open was attempted, also after a failure, and
// releases resources; it must tolerate a failed or missing Open.
//
// Operators with state take part in checkpoints through unexported hooks
// (snapshot.go: snapshotter, completeListener, restorer); keyed operators
// keep their state in a keyedState, which the runtime snapshots.
type Operator interface {
	Open(ctx context.Context) error
	// ProcessBatch handles one batch, borrowed for the duration of the
	// call (retain it to keep it).
	ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error
	// ProcessWatermark is told the input watermark advanced to wm; it may
	// emit (e.g. fire event-time windows). The task forwards wm
	// downstream after it returns.
	ProcessWatermark(ctx context.Context, wm int64, out Output) error
	Finish(ctx context.Context, out Output) error
	Close() error
}

// Source is the head of a source task. The task calls Next in a loop:
// each call emits what is available now (or waits, selecting on ctx, until
// something is) and returns done when a bounded input is exhausted. The
// task gets control back between calls, which is where checkpoint
// barriers are injected.
type Source interface {
	Open(ctx context.Context) error
	Next(ctx context.Context, out Output) (done bool, err error)
	Close() error
}

// TaskInfo identifies the subtask an operator runs in.
type TaskInfo struct {
	JobID       string
	Attempt     int64
	VertexID    string
	Subtask     int
	Parallelism int
	// KeyGroupStart and KeyGroupEnd are the inclusive range of key groups
	// this subtask owns (jobgraph.KeyGroupRange).
	KeyGroupStart, KeyGroupEnd int
}

// baseOperator gives no-op defaults for the optional parts of Operator.
type baseOperator struct{}

func (baseOperator) Open(context.Context) error                            { return nil }
func (baseOperator) ProcessWatermark(context.Context, int64, Output) error { return nil }
func (baseOperator) Finish(context.Context, Output) error                  { return nil }
func (baseOperator) Close() error                                          { return nil }

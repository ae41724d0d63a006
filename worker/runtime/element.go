package runtime

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// ElementKind says what an Element carries.
type ElementKind uint8

// Element kinds. New control events (checkpoint barriers, cancellation
// markers, latency markers) are added here as new kinds; the task loop
// switches on the kind, so an unhandled kind is a compile-visible gap rather
// than a type assertion failing at run time.
const (
	// KindBatch carries Element.Batch, a record batch with the schema of
	// the edge's sending vertex.
	KindBatch ElementKind = iota + 1
	// KindWatermark carries Element.Watermark: no later record on this
	// channel has an event time at or below it.
	KindWatermark
	// KindEndOfInput says the sending subtask will send nothing more on
	// this channel. It is the last element of every channel of a bounded
	// job.
	KindEndOfInput
	// KindBarrier carries Element.Checkpoint: a checkpoint barrier. Every
	// record the sender emitted before it belongs to that checkpoint's
	// snapshot, none after it. Sources inject barriers; a task with
	// several input channels aligns them (exactly-once) or not
	// (at-least-once) before it snapshots and forwards the barrier.
	KindBarrier
	// KindWatermarkStatus carries Element.Idle: the sending subtask's
	// watermark status (Flink's WatermarkStatus). An idle sender is left
	// out of the receiver's watermark minimum until it sends an active
	// status again, which it does before its next batch or watermark.
	KindWatermarkStatus
)

func (k ElementKind) String() string {
	switch k {
	case KindBatch:
		return "batch"
	case KindWatermark:
		return "watermark"
	case KindEndOfInput:
		return "end-of-input"
	case KindBarrier:
		return "barrier"
	case KindWatermarkStatus:
		return "watermark-status"
	default:
		return fmt.Sprintf("ElementKind(%d)", uint8(k))
	}
}

// MaxWatermark is the watermark a bounded input sends before its
// end-of-input: event time is complete, every timer may fire (as Flink's
// Watermark.MAX_WATERMARK).
const MaxWatermark int64 = math.MaxInt64

// MinWatermark is the watermark of an input that has sent none yet.
const MinWatermark int64 = math.MinInt64

// Element is one item on an exchange channel: a data batch or an in-band
// control event, in the order the sender emitted them. It is a small value
// type (no interface, no allocation per element).
//
// Ownership: an Element holding a batch owns one reference to it. Whoever
// takes the element off a channel releases that reference exactly once
// (after processing it, or when draining a channel at shutdown).
type Element struct {
	Kind ElementKind
	// Batch is set for KindBatch.
	Batch arrow.RecordBatch
	// Watermark is set for KindWatermark, in milliseconds since the epoch.
	Watermark int64
	// Idle is set for KindWatermarkStatus: true for IDLE, false for
	// ACTIVE.
	Idle bool
	// Origin is set for KindBatch: when the source began producing the
	// records the batch derives from (Unix nanoseconds), carried through
	// chains and exchanges so sinks can measure event-to-output latency.
	Origin int64
	// Checkpoint is set for KindBarrier: the checkpoint id.
	Checkpoint int64
	// Savepoint is set for a KindBarrier of a savepoint: its name (the
	// directory under savepoints/ in the blob store).
	Savepoint string
	// Unaligned marks a barrier of an unaligned checkpoint: it overtook
	// the elements buffered before it.
	Unaligned bool
	// seq numbers the elements of one channel (set by the exchange): a
	// priority element carries the number of the last element sent
	// before it.
	seq uint64
}

// BatchElement returns an element carrying rec (and the caller's reference
// to it).
func BatchElement(rec arrow.RecordBatch) Element { return Element{Kind: KindBatch, Batch: rec} }

// WatermarkElement returns a watermark element.
func WatermarkElement(wm int64) Element { return Element{Kind: KindWatermark, Watermark: wm} }

// WatermarkStatusElement returns a watermark status element: idle (true)
// or active (false).
func WatermarkStatusElement(idle bool) Element { return Element{Kind: KindWatermarkStatus, Idle: idle} }

// BarrierElement returns a barrier of checkpoint id.
func BarrierElement(id int64) Element { return Element{Kind: KindBarrier, Checkpoint: id} }

// EndOfInputElement returns an end-of-input element.
func EndOfInputElement() Element { return Element{Kind: KindEndOfInput} }

// release drops the element's batch reference, if it holds one.
func (e Element) release() {
	if e.Batch != nil {
		e.Batch.Release()
	}
}

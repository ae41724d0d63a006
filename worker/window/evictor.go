package window

import (
	"encoding/binary"
	"fmt"

	"github.com/sabotdev/sabot/worker/state"
)

// Timestamped is an element with its timestamp, as an evicting window
// keeps it.
type Timestamped[T any] struct {
	Value     T
	Timestamp int64
}

// EvictorContext is what an evictor may look at besides the elements.
type EvictorContext struct {
	Window         Window
	Watermark      int64
	ProcessingTime int64
}

// Evictor removes elements from a window when it fires (Flink's Evictor).
// With an evictor the operator keeps each window's elements as a list (as
// Flink's EvictingWindowOperator), even for an aggregate function, which
// then runs over the remaining elements at each firing. After a firing the
// remaining elements are written back, so evicted ones are gone from state.
// Users may write their own.
type Evictor[T any] interface {
	// EvictBefore runs before the window function. It returns the elements
	// to keep, in their order; it may filter elems in place.
	EvictBefore(elems []Timestamped[T], ctx EvictorContext) []Timestamped[T]
	// EvictAfter runs after the window function, likewise.
	EvictAfter(elems []Timestamped[T], ctx EvictorContext) []Timestamped[T]
}

// filter keeps the elements keep accepts, in place.
func filter[T any](elems []Timestamped[T], keep func(e *Timestamped[T]) bool) []Timestamped[T] {
	out := elems[:0]
	for i := range elems {
		if keep(&elems[i]) {
			out = append(out, elems[i])
		}
	}
	clear(elems[len(out):]) // drop references the caller's slice still holds
	return out
}

// countEvictor is Flink's CountEvictor.
type countEvictor[T any] struct {
	n     int
	after bool
}

// CountEvictor keeps the last n elements of a window (in arrival order)
// and evicts the others, before the window function or, with evictAfter,
// after it. n > 0, else ErrInvalidConfig.
func CountEvictor[T any](n int, evictAfter bool) (Evictor[T], error) {
	if n <= 0 {
		return nil, configError("count evictor", "count %d must be > 0", n)
	}
	return countEvictor[T]{n: n, after: evictAfter}, nil
}

func (e countEvictor[T]) evict(elems []Timestamped[T]) []Timestamped[T] {
	if len(elems) <= e.n {
		return elems
	}
	drop := len(elems) - e.n
	copy(elems, elems[drop:])
	clear(elems[e.n:])
	return elems[:e.n]
}

func (e countEvictor[T]) EvictBefore(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if e.after {
		return elems
	}
	return e.evict(elems)
}

func (e countEvictor[T]) EvictAfter(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if !e.after {
		return elems
	}
	return e.evict(elems)
}

// timeEvictor is Flink's TimeEvictor.
type timeEvictor[T any] struct {
	size  int64
	after bool
}

// TimeEvictor keeps the elements of the last size milliseconds of a
// window, measured from its newest element: with m the largest timestamp
// among the elements, it evicts every element with timestamp ≤ m - size
// and keeps those with timestamp > m - size (Flink's TimeEvictor, whose
// code evicts at "≤ cutoff"). Before the window function or, with
// evictAfter, after it. size > 0, else ErrInvalidConfig.
func TimeEvictor[T any](size int64, evictAfter bool) (Evictor[T], error) {
	if size <= 0 {
		return nil, configError("time evictor", "size %d must be > 0", size)
	}
	return timeEvictor[T]{size: size, after: evictAfter}, nil
}

func (e timeEvictor[T]) evict(elems []Timestamped[T]) []Timestamped[T] {
	if len(elems) == 0 {
		return elems
	}
	maxTS := elems[0].Timestamp
	for _, el := range elems[1:] {
		maxTS = max(maxTS, el.Timestamp)
	}
	cutoff := maxTS - e.size
	return filter(elems, func(el *Timestamped[T]) bool { return el.Timestamp > cutoff })
}

func (e timeEvictor[T]) EvictBefore(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if e.after {
		return elems
	}
	return e.evict(elems)
}

func (e timeEvictor[T]) EvictAfter(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if !e.after {
		return elems
	}
	return e.evict(elems)
}

// deltaEvictor is Flink's DeltaEvictor.
type deltaEvictor[T any] struct {
	threshold float64
	delta     func(a, b T) float64
	after     bool
}

// DeltaEvictor evicts every element whose delta to the window's last
// element, delta(element, last), is ≥ threshold (Flink's DeltaEvictor).
// Before the window function or, with evictAfter, after it. delta nil is
// ErrInvalidConfig.
func DeltaEvictor[T any](threshold float64, delta func(a, b T) float64, evictAfter bool) (Evictor[T], error) {
	if delta == nil {
		return nil, configError("delta evictor", "delta function must not be nil")
	}
	return deltaEvictor[T]{threshold: threshold, delta: delta, after: evictAfter}, nil
}

func (e deltaEvictor[T]) evict(elems []Timestamped[T]) []Timestamped[T] {
	if len(elems) == 0 {
		return elems
	}
	last := elems[len(elems)-1].Value
	return filter(elems, func(el *Timestamped[T]) bool { return e.delta(el.Value, last) < e.threshold })
}

func (e deltaEvictor[T]) EvictBefore(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if e.after {
		return elems
	}
	return e.evict(elems)
}

func (e deltaEvictor[T]) EvictAfter(elems []Timestamped[T], _ EvictorContext) []Timestamped[T] {
	if !e.after {
		return elems
	}
	return e.evict(elems)
}

// timestampedCodec stores an element of an evicting window: its timestamp
// (8 bytes, big-endian) then the value's encoding.
type timestampedCodec[T any] struct{ c state.Codec[T] }

func (c timestampedCodec[T]) Append(dst []byte, v Timestamped[T]) ([]byte, error) {
	return c.c.Append(binary.BigEndian.AppendUint64(dst, uint64(v.Timestamp)), v.Value)
}

func (c timestampedCodec[T]) Decode(src []byte) (Timestamped[T], error) {
	if len(src) < 8 {
		return Timestamped[T]{}, fmt.Errorf("%w: window element of %d bytes", state.ErrCorrupt, len(src))
	}
	v, err := c.c.Decode(src[8:])
	return Timestamped[T]{Value: v, Timestamp: int64(binary.BigEndian.Uint64(src))}, err
}

package window

import (
	"encoding/binary"
	"fmt"

	"github.com/sabotdev/sabot/worker/state"
)

// Info describes the window a function is called for (the context of
// Flink's ProcessWindowFunction).
type Info struct {
	// Key is the current key's bytes; valid during the call only.
	Key    []byte
	Window Window
	// Watermark and ProcessingTime are the operator's clocks at the firing.
	Watermark      int64
	ProcessingTime int64
	// Count is the number of elements behind the result: every element
	// added to the window (and to windows merged into it) since its last
	// purge for incremental aggregates; the elements passed to the function
	// for list windows (after EvictBefore, with an evictor).
	Count int64
}

// ProcessFunc is a full window function (Flink's ProcessWindowFunction):
// called at each firing with the window's elements (or, after
// AggregateProcess, the single aggregate result) in arrival order; it
// emits zero or more results. in is valid during the call only. An error
// fails the operator call that fired the window.
type ProcessFunc[IN, OUT any] func(info Info, in []IN, emit func(OUT) error) error

// AggregateFunction is Flink's AggregateFunction as plain functions: an
// accumulator per (key, window) that Add folds each element into and
// Result reads at firing. Create, Add, Result and Codec are required.
// Merge combines the accumulators of merging windows and is required with
// a merging assigner (sessions) unless an evictor is set (then the window
// keeps a list and aggregates at firing, so nothing is merged). Add and
// Merge may modify and return their first argument.
type AggregateFunction[T, ACC, R any] struct {
	Create func() ACC
	Add    func(acc ACC, v T) ACC
	Merge  func(a, b ACC) ACC
	Result func(acc ACC) R
	// Codec encodes the accumulator in state.
	Codec state.Codec[ACC]
}

func (a *AggregateFunction[T, ACC, R]) validate() error {
	switch {
	case a.Create == nil:
		return configError("aggregate Create", "must not be nil")
	case a.Add == nil:
		return configError("aggregate Add", "must not be nil")
	case a.Result == nil:
		return configError("aggregate Result", "must not be nil")
	case a.Codec == nil:
		return configError("aggregate Codec", "must not be nil")
	}
	return nil
}

// Function is what a window computes at each firing; build it with
// Aggregate, Reduce, Process or AggregateProcess. The zero Function is
// invalid. A Function may be shared by several Operators.
type Function[T, OUT any] struct {
	kind      string
	err       error // a construction error, reported by New
	mergeable bool  // the incremental aggregate can merge
	// incremental builds per-(key, window) accumulator contents; nil for
	// Process, which keeps the elements.
	incremental func(c *core, name string) (contents[T, OUT], error)
	// overList builds, per operator, the computation over a window's
	// elements (Process, and any function under an evictor).
	overList func() listFunc[T, OUT]
}

// listFunc computes a firing's results from the window's elements.
type listFunc[T, OUT any] func(info *Info, vals []T, emit func(OUT) error) error

// Aggregate aggregates each window incrementally (Flink's
// WindowedStream.aggregate): one accumulator per (key, window) in state,
// the result emitted at each firing. Errors in agg are reported by New.
func Aggregate[T, ACC, R any](agg AggregateFunction[T, ACC, R]) Function[T, R] {
	return aggregateFunction(agg, "aggregate", func() func(*Info, R, func(R) error) error {
		return func(_ *Info, r R, emit func(R) error) error { return emit(r) }
	})
}

// AggregateProcess aggregates incrementally and, at each firing, passes the
// single result to fn together with the window's Info (Flink's
// aggregate(aggFunction, windowFunction)).
func AggregateProcess[T, ACC, R, OUT any](agg AggregateFunction[T, ACC, R], fn ProcessFunc[R, OUT]) Function[T, OUT] {
	f := aggregateFunction(agg, "aggregate with process function", func() func(*Info, R, func(OUT) error) error {
		one := make([]R, 1)
		return func(info *Info, r R, emit func(OUT) error) error {
			one[0] = r
			return fn(*info, one, emit)
		}
	})
	if f.err == nil && fn == nil {
		f.err = configError("aggregate process function", "must not be nil")
	}
	return f
}

func aggregateFunction[T, ACC, R, OUT any](agg AggregateFunction[T, ACC, R], kind string,
	finisher func() func(*Info, R, func(OUT) error) error,
) Function[T, OUT] {
	f := Function[T, OUT]{kind: kind, err: agg.validate(), mergeable: agg.Merge != nil}
	f.incremental = func(c *core, name string) (contents[T, OUT], error) {
		st, err := state.Value(c.k, state.ValueDescriptor[counted[ACC]]{Name: name + "-acc", Codec: countedCodec[ACC]{agg.Codec}})
		if err != nil {
			return nil, err
		}
		return &aggContents[T, ACC, R, OUT]{c: c, st: st, agg: agg, finish: finisher()}, nil
	}
	f.overList = func() listFunc[T, OUT] {
		finish := finisher()
		return func(info *Info, vals []T, emit func(OUT) error) error {
			acc := agg.Create()
			for _, v := range vals {
				acc = agg.Add(acc, v)
			}
			return finish(info, agg.Result(acc), emit)
		}
	}
	return f
}

// Reduce aggregates each window with a reduce function (Flink's
// WindowedStream.reduce): the first element, then reduce(acc, v) for each
// further one. It merges (sessions) with reduce too. codec encodes T.
func Reduce[T any](reduce func(acc, v T) T, codec state.Codec[T]) Function[T, T] {
	if reduce == nil || codec == nil {
		return Function[T, T]{kind: "reduce", err: configError("reduce", "function and codec must not be nil")}
	}
	f := Aggregate(AggregateFunction[T, reduced[T], T]{
		Create: func() reduced[T] { return reduced[T]{} },
		Add: func(acc reduced[T], v T) reduced[T] {
			if !acc.set {
				return reduced[T]{v: v, set: true}
			}
			return reduced[T]{v: reduce(acc.v, v), set: true}
		},
		Merge: func(a, b reduced[T]) reduced[T] {
			switch {
			case !a.set:
				return b
			case !b.set:
				return a
			}
			return reduced[T]{v: reduce(a.v, b.v), set: true}
		},
		Result: func(acc reduced[T]) T { return acc.v },
		Codec:  reducedCodec[T]{codec},
	})
	f.kind = "reduce"
	return f
}

// Process keeps every element of each window (in a list in state) and
// calls fn with all of them at each firing (Flink's
// WindowedStream.process). Config.Codec must encode T.
func Process[T, OUT any](fn ProcessFunc[T, OUT]) Function[T, OUT] {
	f := Function[T, OUT]{kind: "process"}
	if fn == nil {
		f.err = configError("process function", "must not be nil")
	}
	f.overList = func() listFunc[T, OUT] {
		return func(info *Info, vals []T, emit func(OUT) error) error { return fn(*info, vals, emit) }
	}
	return f
}

// counted is a stored accumulator with the number of elements in it.
type counted[ACC any] struct {
	n   int64
	acc ACC
}

// countedCodec writes the count as a uvarint, then the accumulator.
type countedCodec[ACC any] struct{ c state.Codec[ACC] }

func (c countedCodec[ACC]) Append(dst []byte, v counted[ACC]) ([]byte, error) {
	return c.c.Append(binary.AppendUvarint(dst, uint64(v.n)), v.acc)
}

func (c countedCodec[ACC]) Decode(src []byte) (counted[ACC], error) {
	n, w := binary.Uvarint(src)
	if w <= 0 {
		return counted[ACC]{}, fmt.Errorf("%w: window accumulator count", state.ErrCorrupt)
	}
	acc, err := c.c.Decode(src[w:])
	return counted[ACC]{n: int64(n), acc: acc}, err
}

// reduced is Reduce's accumulator: a value once one was added.
type reduced[T any] struct {
	v   T
	set bool
}

// reducedCodec writes a flag byte, then the value when set.
type reducedCodec[T any] struct{ c state.Codec[T] }

func (c reducedCodec[T]) Append(dst []byte, v reduced[T]) ([]byte, error) {
	if !v.set {
		return append(dst, 0), nil
	}
	return c.c.Append(append(dst, 1), v.v)
}

func (c reducedCodec[T]) Decode(src []byte) (reduced[T], error) {
	if len(src) == 0 {
		return reduced[T]{}, fmt.Errorf("%w: empty reduce accumulator", state.ErrCorrupt)
	}
	if src[0] == 0 {
		return reduced[T]{}, nil
	}
	v, err := c.c.Decode(src[1:])
	return reduced[T]{v: v, set: true}, err
}

package window

import (
	"fmt"
	"math"
)

// Assigner puts each element into zero or more windows (Flink's
// WindowAssigner). Users may implement their own.
//
// Merging assigners (sessions) have their in-flight windows merged the way
// Flink's TimeWindow.mergeWindows merges them: windows that intersect or
// touch merge into the window covering them, transitively.
type Assigner[T any] interface {
	// AssignWindows appends the windows of the element (v, ts) to dst and
	// returns it. now is the current processing time (the last value given
	// to Operator.AdvanceProcessingTime), which processing-time assigners
	// use instead of ts. It must not keep dst.
	AssignWindows(v T, ts, now int64, dst []Window) ([]Window, error)
	// IsEventTime reports whether the windows are in event time: then
	// watermarks decide lateness and cleanup; otherwise processing time
	// does, and no element is ever late.
	IsEventTime() bool
	// Merging reports whether windows merge (sessions).
	Merging() bool
	// DefaultTrigger returns a new trigger used when Config.Trigger is nil.
	DefaultTrigger() Trigger[T]
}

// domainDefaultTrigger is the default trigger of a time domain.
func domainDefaultTrigger[T any](d TimeDomain) Trigger[T] {
	if d == ProcessingTime {
		return ProcessingTimeTrigger[T]()
	}
	return EventTimeTrigger[T]()
}

func checkDomain(name string, d TimeDomain) error {
	if !d.valid() {
		return configError(name+" domain", "%s is neither EventTime nor ProcessingTime", d)
	}
	return nil
}

// aligned is the time base of tumbling, sliding and cumulate windows: the
// element timestamp in event time (checked for Flink's no-timestamp
// marker), now in processing time.
func alignedTime(d TimeDomain, ts, now int64) (int64, error) {
	if d == ProcessingTime {
		return now, nil
	}
	if ts == math.MinInt64 {
		return 0, ErrNoTimestamp
	}
	return ts, nil
}

// tumbling is Flink's TumblingEventTimeWindows / TumblingProcessingTimeWindows.
type tumbling[T any] struct {
	domain       TimeDomain
	size, offset int64
}

// Tumbling returns fixed-size, non-overlapping windows [start, start+size)
// with start ≡ offset (mod size), in milliseconds. Flink's
// TumblingEventTimeWindows.of(size, offset) and
// TumblingProcessingTimeWindows.of(size, offset): size > 0 and |offset| <
// size, else ErrInvalidConfig.
func Tumbling[T any](d TimeDomain, size, offset int64) (Assigner[T], error) {
	if err := checkDomain("tumbling", d); err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, configError("tumbling size", "%d must be > 0", size)
	}
	if offset <= -size || offset >= size {
		return nil, configError("tumbling offset", "|%d| must be < size %d", offset, size)
	}
	return &tumbling[T]{domain: d, size: size, offset: offset}, nil
}

func (a *tumbling[T]) AssignWindows(_ T, ts, now int64, dst []Window) ([]Window, error) {
	t, err := alignedTime(a.domain, ts, now)
	if err != nil {
		return dst, err
	}
	start := windowStart(t, a.offset, a.size)
	return append(dst, Window{Start: start, End: start + a.size}), nil
}

func (a *tumbling[T]) IsEventTime() bool          { return a.domain == EventTime }
func (a *tumbling[T]) Merging() bool              { return false }
func (a *tumbling[T]) DefaultTrigger() Trigger[T] { return domainDefaultTrigger[T](a.domain) }
func (a *tumbling[T]) String() string {
	return fmt.Sprintf("tumbling(%s, size=%d, offset=%d)", a.domain, a.size, a.offset)
}

// sliding is Flink's SlidingEventTimeWindows / SlidingProcessingTimeWindows.
type sliding[T any] struct {
	domain              TimeDomain
	size, slide, offset int64
}

// Sliding returns windows of size starting every slide (hopping windows),
// aligned to offset; an element belongs to the size/slide windows (rounded
// up) containing it, the latest first. size > 0, slide > 0 and
// |offset| < slide, else ErrInvalidConfig. As in Flink, slide may exceed
// size: the windows then have gaps, and an element in a gap belongs to no
// window (it is dropped, not late).
func Sliding[T any](d TimeDomain, size, slide, offset int64) (Assigner[T], error) {
	if err := checkDomain("sliding", d); err != nil {
		return nil, err
	}
	switch {
	case size <= 0:
		return nil, configError("sliding size", "%d must be > 0", size)
	case slide <= 0:
		return nil, configError("sliding slide", "%d must be > 0", slide)
	case offset <= -slide || offset >= slide:
		return nil, configError("sliding offset", "|%d| must be < slide %d", offset, slide)
	}
	return &sliding[T]{domain: d, size: size, slide: slide, offset: offset}, nil
}

func (a *sliding[T]) AssignWindows(_ T, ts, now int64, dst []Window) ([]Window, error) {
	t, err := alignedTime(a.domain, ts, now)
	if err != nil {
		return dst, err
	}
	// Flink: lastStart = getWindowStartWithOffset(ts, offset, slide), then
	// every start down by slide while the window still contains ts.
	for start := windowStart(t, a.offset, a.slide); start > t-a.size; start -= a.slide {
		dst = append(dst, Window{Start: start, End: start + a.size})
	}
	return dst, nil
}

func (a *sliding[T]) IsEventTime() bool          { return a.domain == EventTime }
func (a *sliding[T]) Merging() bool              { return false }
func (a *sliding[T]) DefaultTrigger() Trigger[T] { return domainDefaultTrigger[T](a.domain) }
func (a *sliding[T]) String() string {
	return fmt.Sprintf("sliding(%s, size=%d, slide=%d, offset=%d)", a.domain, a.size, a.slide, a.offset)
}

// session is Flink's (Dynamic)EventTimeSessionWindows and
// (Dynamic)ProcessingTimeSessionWindows.
type session[T any] struct {
	domain TimeDomain
	gap    int64
	gapOf  func(T) int64 // dynamic gap; nil for a fixed gap
}

// Session returns session windows: each element opens [t, t+gap) (t the
// timestamp in event time, the current processing time otherwise), and
// windows that intersect or touch merge. gap > 0, else ErrInvalidConfig.
func Session[T any](d TimeDomain, gap int64) (Assigner[T], error) {
	if err := checkDomain("session", d); err != nil {
		return nil, err
	}
	if gap <= 0 {
		return nil, configError("session gap", "%d must be > 0", gap)
	}
	return &session[T]{domain: d, gap: gap}, nil
}

// DynamicSession is Session with the gap taken from each element (Flink's
// SessionWindowTimeGapExtractor). A gap ≤ 0 fails that element with
// ErrInvalidGap; gapOf nil is ErrInvalidConfig.
func DynamicSession[T any](d TimeDomain, gapOf func(v T) int64) (Assigner[T], error) {
	if err := checkDomain("dynamic session", d); err != nil {
		return nil, err
	}
	if gapOf == nil {
		return nil, configError("dynamic session gap extractor", "must not be nil")
	}
	return &session[T]{domain: d, gapOf: gapOf}, nil
}

func (a *session[T]) AssignWindows(v T, ts, now int64, dst []Window) ([]Window, error) {
	gap := a.gap
	if a.gapOf != nil {
		if gap = a.gapOf(v); gap <= 0 {
			return dst, fmt.Errorf("%w: extractor returned %d", ErrInvalidGap, gap)
		}
	}
	t := ts
	if a.domain == ProcessingTime {
		t = now
	}
	return append(dst, Window{Start: t, End: t + gap}), nil
}

func (a *session[T]) IsEventTime() bool          { return a.domain == EventTime }
func (a *session[T]) Merging() bool              { return true }
func (a *session[T]) DefaultTrigger() Trigger[T] { return domainDefaultTrigger[T](a.domain) }
func (a *session[T]) String() string {
	if a.gapOf != nil {
		return fmt.Sprintf("session(%s, dynamic gap)", a.domain)
	}
	return fmt.Sprintf("session(%s, gap=%d)", a.domain, a.gap)
}

// cumulate is Flink SQL's CUMULATE window (CumulativeWindowAssigner).
type cumulate[T any] struct {
	domain                TimeDomain
	step, maxSize, offset int64
}

// Cumulate returns Flink SQL's cumulating windows: per max-window
// [start, start+maxSize), with start aligned to maxSize (and offset), the
// windows [start, start+step), [start, start+2·step), ..., [start,
// start+maxSize). An element belongs to every window of its max-window
// whose end is after its timestamp, the earliest end first. step > 0,
// maxSize a positive multiple of step, |offset| < maxSize, else
// ErrInvalidConfig.
func Cumulate[T any](d TimeDomain, step, maxSize, offset int64) (Assigner[T], error) {
	if err := checkDomain("cumulate", d); err != nil {
		return nil, err
	}
	switch {
	case step <= 0:
		return nil, configError("cumulate step", "%d must be > 0", step)
	case maxSize <= 0:
		return nil, configError("cumulate max size", "%d must be > 0", maxSize)
	case maxSize%step != 0:
		return nil, configError("cumulate max size", "%d must be a multiple of step %d", maxSize, step)
	case offset <= -maxSize || offset >= maxSize:
		return nil, configError("cumulate offset", "|%d| must be < max size %d", offset, maxSize)
	}
	return &cumulate[T]{domain: d, step: step, maxSize: maxSize, offset: offset}, nil
}

func (a *cumulate[T]) AssignWindows(_ T, ts, now int64, dst []Window) ([]Window, error) {
	t, err := alignedTime(a.domain, ts, now)
	if err != nil {
		return dst, err
	}
	start := windowStart(t, a.offset, a.maxSize)
	last := start + a.maxSize
	for end := windowStart(t, a.offset, a.step) + a.step; end <= last; end += a.step {
		dst = append(dst, Window{Start: start, End: end})
	}
	return dst, nil
}

func (a *cumulate[T]) IsEventTime() bool          { return a.domain == EventTime }
func (a *cumulate[T]) Merging() bool              { return false }
func (a *cumulate[T]) DefaultTrigger() Trigger[T] { return domainDefaultTrigger[T](a.domain) }
func (a *cumulate[T]) String() string {
	return fmt.Sprintf("cumulate(%s, step=%d, max=%d, offset=%d)", a.domain, a.step, a.maxSize, a.offset)
}

// global is Flink's GlobalWindows.
type global[T any] struct{}

// Global puts every element into GlobalWindow(). As Flink's GlobalWindows
// it is not event time (no element is late, nothing is cleaned up) and its
// default trigger never fires: use it with a CountTrigger, a custom
// trigger, or an event-time trigger to fire at the final watermark.
func Global[T any]() Assigner[T] { return global[T]{} }

func (global[T]) AssignWindows(_ T, _, _ int64, dst []Window) ([]Window, error) {
	return append(dst, GlobalWindow()), nil
}

func (global[T]) IsEventTime() bool          { return false }
func (global[T]) Merging() bool              { return false }
func (global[T]) DefaultTrigger() Trigger[T] { return NeverTrigger[T]() }
func (global[T]) String() string             { return "global" }

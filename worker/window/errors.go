package window

import (
	"errors"
	"fmt"
)

// Sentinels for conditions callers act on. Inspect with errors.Is.
var (
	// ErrInvalidConfig: a constructor or New was given a setting it cannot
	// use (a size ≤ 0, a slide larger than the size, a cumulate size that
	// is not a multiple of the step, a merging assigner with an aggregate
	// that has no Merge, ...). The message names the setting. Returned
	// before any state is touched.
	ErrInvalidConfig = errors.New("window: invalid configuration")
	// ErrInvalidGap: a dynamic session gap extractor returned a gap ≤ 0 for
	// an element (Flink's "Dynamic session time gap must satisfy 0 < gap").
	// The element was not added anywhere; the runtime applies its
	// bad-record policy.
	ErrInvalidGap = errors.New("window: session gap must be > 0")
	// ErrNoTimestamp: an element reached an aligned event-time assigner
	// (tumbling, sliding, cumulate) with timestamp math.MinInt64, Flink's
	// "no timestamp" marker. The element was not added anywhere.
	ErrNoTimestamp = errors.New("window: element has no timestamp (math.MinInt64)")
	// ErrLateMerge: merging session windows produced a window that is
	// already late (event time) or already over (processing time). Flink
	// fails the task the same way (UnsupportedOperationException); with the
	// built-in assigners and timers advanced only through the Operator it
	// cannot happen.
	ErrLateMerge = errors.New("window: merged window is already late")
)

// configError builds an ErrInvalidConfig error naming setting.
func configError(setting, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, setting, fmt.Sprintf(format, args...))
}

// panicf reports a broken invariant of this package (never bad input).
func panicf(format string, args ...any) {
	panic(fmt.Sprintf("window: "+format, args...))
}

func lateMerge(w Window, clock string, now int64) error {
	return fmt.Errorf("%w: %s at %s %d", ErrLateMerge, w, clock, now)
}

package runtime

import (
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/eventtime"
)

// watermarkStrategy maps a manifest's WatermarkStrategy onto
// eventtime.Strategy. No strategy, or one without a kind (only idleness or
// interval set), is eventtime.KindNone: the source emits no watermarks, as
// Flink's WatermarkStrategy.noWatermarks. `monotonous: false` is read the
// same way, as "no generator".
func watermarkStrategy(w *sabotv1.WatermarkStrategy) (eventtime.Strategy, error) {
	if w == nil {
		return eventtime.Strategy{}, nil
	}
	s := eventtime.Strategy{
		IdleTimeout: time.Duration(w.GetIdleTimeoutMs()) * time.Millisecond,
		Interval:    time.Duration(w.GetIntervalMs()) * time.Millisecond,
	}
	switch k := w.GetKind().(type) {
	case *sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs:
		s.Kind = eventtime.KindBoundedOutOfOrderness
		s.MaxOutOfOrderness = time.Duration(k.MaxOutOfOrdernessMs) * time.Millisecond
	case *sabotv1.WatermarkStrategy_Monotonous:
		if k.Monotonous {
			s.Kind = eventtime.KindMonotonous
		}
	case *sabotv1.WatermarkStrategy_PunctuatedMarkerField:
		s.Kind = eventtime.KindPunctuated
		s.MarkerColumn = k.PunctuatedMarkerField
	default: // no kind: no watermarks
	}
	if err := s.Validate(); err != nil {
		return eventtime.Strategy{}, fmt.Errorf("watermark strategy: %w", err)
	}
	return s, nil
}

// splitWatermarks is a split-reading source subtask's event-time clock:
// one generator per split (eventtime.Multiplexer), the combined watermark
// being the minimum over active splits, and periodic emission paced on the
// injected clock (eventtime.Periodic). The source feeds each split's
// batches through the split's handle and calls tick once per Next, so
// periodic emission and idleness detection happen even when no record
// arrives; a source that can block for input must therefore return from
// Next at least every poll timeout.
//
// Watermarks only go forward: the multiplexer reports a watermark only
// when it rose above the last one.
type splitWatermarks struct {
	strategy eventtime.Strategy
	clock    clockwork.Clock
	mux      *eventtime.Multiplexer
	periodic eventtime.Periodic
}

// newSplitWatermarks returns nil for a strategy that generates no
// watermarks: the source then feeds nothing and emits none.
func newSplitWatermarks(s eventtime.Strategy, clock clockwork.Clock) *splitWatermarks {
	if s.Kind == eventtime.KindNone {
		return nil
	}
	return &splitWatermarks{strategy: s, clock: clock, mux: s.NewMultiplexer()}
}

// start begins periodic emission: the first is due one interval from now.
func (w *splitWatermarks) start() {
	w.periodic = eventtime.NewPeriodic(w.strategy.PeriodicInterval(), w.clock.Now())
}

// addSplit registers a split with a fresh generator.
func (w *splitWatermarks) addSplit(id string) (*eventtime.Split, error) {
	return w.mux.AddSplit(id, w.strategy.NewGenerator())
}

// tick runs the periodic step if it is due and returns the combined
// watermark if it advanced.
func (w *splitWatermarks) tick() (int64, bool) {
	now := w.clock.Now()
	if !w.periodic.Due(now) {
		return 0, false
	}
	return w.mux.OnPeriodicEmit(now)
}

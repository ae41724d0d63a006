package window

import (
	"fmt"

	"github.com/sabotdev/sabot/worker/state"
)

// openOnce guards the state handles of a stateful built-in trigger: a
// trigger value serves one Operator.
type openOnce bool

func (o *openOnce) open(kind string) error {
	if *o {
		return configError("trigger", "%s is already open in another Operator; build one trigger per Operator", kind)
	}
	*o = true
	return nil
}

// eventTimeTrigger is Flink's EventTimeTrigger.
type eventTimeTrigger[T any] struct{}

// EventTimeTrigger fires a window once the watermark passes its
// MaxTimestamp (a timer there); an element added to a window the watermark
// already passed (late but within the allowed lateness) fires it at once,
// so every late element re-emits the updated result. The default trigger
// of event-time assigners.
func EventTimeTrigger[T any]() Trigger[T] { return eventTimeTrigger[T]{} }

func (eventTimeTrigger[T]) Open(*state.Keyed, string) error { return nil }

func (eventTimeTrigger[T]) OnElement(_ T, _ int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	if w.MaxTimestamp() <= ctx.CurrentWatermark() {
		return Fire, nil
	}
	return Continue, ctx.RegisterEventTimeTimer(w.MaxTimestamp())
}

func (eventTimeTrigger[T]) OnEventTime(time int64, w Window, _ *TriggerContext) (TriggerResult, error) {
	if time == w.MaxTimestamp() {
		return Fire, nil
	}
	return Continue, nil
}

func (eventTimeTrigger[T]) OnProcessingTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (eventTimeTrigger[T]) CanMerge() bool { return true }

func (eventTimeTrigger[T]) OnMerge(w Window, ctx *TriggerContext) error {
	// Only when the watermark has not passed the merged window: otherwise
	// the element that caused the merge fires it in OnElement, and a timer
	// would fire it a second time.
	if w.MaxTimestamp() > ctx.CurrentWatermark() {
		return ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	}
	return nil
}

func (eventTimeTrigger[T]) Clear(w Window, ctx *TriggerContext) error {
	return ctx.DeleteEventTimeTimer(w.MaxTimestamp())
}

func (eventTimeTrigger[T]) String() string { return "EventTimeTrigger" }

// processingTimeTrigger is Flink's ProcessingTimeTrigger.
type processingTimeTrigger[T any] struct{}

// ProcessingTimeTrigger fires a window when processing time reaches its
// MaxTimestamp. The default trigger of processing-time assigners.
func ProcessingTimeTrigger[T any]() Trigger[T] { return processingTimeTrigger[T]{} }

func (processingTimeTrigger[T]) Open(*state.Keyed, string) error { return nil }

func (processingTimeTrigger[T]) OnElement(_ T, _ int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	return Continue, ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
}

func (processingTimeTrigger[T]) OnEventTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (processingTimeTrigger[T]) OnProcessingTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Fire, nil
}

func (processingTimeTrigger[T]) CanMerge() bool { return true }

func (processingTimeTrigger[T]) OnMerge(w Window, ctx *TriggerContext) error {
	if w.MaxTimestamp() > ctx.CurrentProcessingTime() {
		return ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
	}
	return nil
}

func (processingTimeTrigger[T]) Clear(w Window, ctx *TriggerContext) error {
	return ctx.DeleteProcessingTimeTimer(w.MaxTimestamp())
}

func (processingTimeTrigger[T]) String() string { return "ProcessingTimeTrigger" }

// countTrigger is Flink's CountTrigger.
type countTrigger[T any] struct {
	n      int64
	opened openOnce
	count  *state.ReducingState[int64]
}

// CountTrigger fires a window every n elements: a per-window count in
// trigger state (name "<trigger>-count"), reset at each firing. It never
// fires on time, so windows end only through their cleanup timer (or never,
// for the global window). n > 0, else ErrInvalidConfig.
func CountTrigger[T any](n int64) (Trigger[T], error) {
	if n <= 0 {
		return nil, configError("count trigger", "count %d must be > 0", n)
	}
	return &countTrigger[T]{n: n}, nil
}

func (c *countTrigger[T]) Open(k *state.Keyed, name string) error {
	if err := c.opened.open("CountTrigger"); err != nil {
		return err
	}
	var err error
	c.count, err = state.Reducing(k, state.ReducingDescriptor[int64]{
		Name: name + "-count", Codec: state.Int64Codec{},
		Reduce: func(a, b int64) int64 { return a + b },
	})
	return err
}

func (c *countTrigger[T]) OnElement(T, int64, Window, *TriggerContext) (TriggerResult, error) {
	if err := c.count.Add(1); err != nil {
		return Continue, err
	}
	n, _, err := c.count.Get()
	if err != nil || n < c.n {
		return Continue, err
	}
	return Fire, c.count.Clear()
}

func (c *countTrigger[T]) OnEventTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (c *countTrigger[T]) OnProcessingTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (c *countTrigger[T]) CanMerge() bool { return true }

// OnMerge adds up the counts; a merged count at or above n fires with the
// next element, as in Flink.
func (c *countTrigger[T]) OnMerge(_ Window, ctx *TriggerContext) error {
	return MergeReducing(ctx, c.count)
}

func (c *countTrigger[T]) Clear(Window, *TriggerContext) error { return c.count.Clear() }

func (c *countTrigger[T]) String() string { return fmt.Sprintf("CountTrigger(%d)", c.n) }

// continuousEventTimeTrigger is Flink's ContinuousEventTimeTrigger.
type continuousEventTimeTrigger[T any] struct {
	interval int64
	opened   openOnce
	next     *state.ReducingState[int64] // the next early firing, min-reduced
}

// ContinuousEventTimeTrigger fires a window early every interval of event
// time, and at its end. The first element schedules the first early firing
// at min(ts - ts%interval + interval, MaxTimestamp); each firing schedules
// the next one interval later (kept in trigger state "<trigger>-fire-time").
// Like EventTimeTrigger it fires at once for an element of a window the
// watermark already passed. interval > 0, else ErrInvalidConfig.
func ContinuousEventTimeTrigger[T any](interval int64) (Trigger[T], error) {
	if interval <= 0 {
		return nil, configError("continuous event-time trigger", "interval %d must be > 0", interval)
	}
	return &continuousEventTimeTrigger[T]{interval: interval}, nil
}

func (c *continuousEventTimeTrigger[T]) Open(k *state.Keyed, name string) error {
	if err := c.opened.open("ContinuousEventTimeTrigger"); err != nil {
		return err
	}
	var err error
	c.next, err = state.Reducing(k, state.ReducingDescriptor[int64]{
		Name: name + "-fire-time", Codec: state.Int64Codec{}, Reduce: func(a, b int64) int64 { return min(a, b) },
	})
	return err
}

func (c *continuousEventTimeTrigger[T]) schedule(time int64, w Window, ctx *TriggerContext) error {
	next := min(time+c.interval, w.MaxTimestamp())
	if err := c.next.Add(next); err != nil {
		return err
	}
	return ctx.RegisterEventTimeTimer(next)
}

func (c *continuousEventTimeTrigger[T]) OnElement(_ T, ts int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	if w.MaxTimestamp() <= ctx.CurrentWatermark() {
		return Fire, nil
	}
	if err := ctx.RegisterEventTimeTimer(w.MaxTimestamp()); err != nil {
		return Continue, err
	}
	_, ok, err := c.next.Get()
	if err != nil || ok {
		return Continue, err
	}
	return Continue, c.schedule(ts-ts%c.interval, w, ctx)
}

func (c *continuousEventTimeTrigger[T]) OnEventTime(time int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	if time == w.MaxTimestamp() {
		return Fire, nil
	}
	next, ok, err := c.next.Get()
	if err != nil || !ok || next != time {
		return Continue, err
	}
	if err := c.next.Clear(); err != nil {
		return Continue, err
	}
	return Fire, c.schedule(time, w, ctx)
}

func (c *continuousEventTimeTrigger[T]) OnProcessingTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (c *continuousEventTimeTrigger[T]) CanMerge() bool { return true }

func (c *continuousEventTimeTrigger[T]) OnMerge(_ Window, ctx *TriggerContext) error {
	// Unlike Flink, delete the merged windows' pending early firings first:
	// once their state is merged, Clear cannot find them, and Flink leaves
	// them to fire into windows that no longer exist.
	for _, m := range ctx.MergedWindows() {
		if err := ctx.InWindow(m, c.deleteNext(ctx)); err != nil {
			return err
		}
	}
	if err := MergeReducing(ctx, c.next); err != nil {
		return err
	}
	// Flink registers only the next early firing here: the end-of-window
	// timer comes with the next element (every merge has one).
	next, ok, err := c.next.Get()
	if err != nil || !ok {
		return err
	}
	return ctx.RegisterEventTimeTimer(next)
}

// deleteNext returns a function deleting the current window's pending
// early-firing timer (its state stays, for MergeReducing).
func (c *continuousEventTimeTrigger[T]) deleteNext(ctx *TriggerContext) func() error {
	return func() error {
		next, ok, err := c.next.Get()
		if err != nil || !ok {
			return err
		}
		return ctx.DeleteEventTimeTimer(next)
	}
}

// Clear deletes the next early firing and, unlike Flink (which leaves it
// to fire into a cleared window), the end-of-window timer.
func (c *continuousEventTimeTrigger[T]) Clear(w Window, ctx *TriggerContext) error {
	next, ok, err := c.next.Get()
	if err != nil {
		return err
	}
	if ok {
		if err := ctx.DeleteEventTimeTimer(next); err != nil {
			return err
		}
		if err := c.next.Clear(); err != nil {
			return err
		}
	}
	return ctx.DeleteEventTimeTimer(w.MaxTimestamp())
}

func (c *continuousEventTimeTrigger[T]) String() string {
	return fmt.Sprintf("ContinuousEventTimeTrigger(%d)", c.interval)
}

// purgingTrigger is Flink's PurgingTrigger.
type purgingTrigger[T any] struct{ t Trigger[T] }

// PurgingTrigger turns every Fire of t into FireAndPurge, so each firing
// emits only what arrived since the previous one (Flink's countWindow(n) is
// Global with PurgingTrigger(CountTrigger(n))). t nil is ErrInvalidConfig.
func PurgingTrigger[T any](t Trigger[T]) (Trigger[T], error) {
	if t == nil {
		return nil, configError("purging trigger", "nested trigger must not be nil")
	}
	return purgingTrigger[T]{t: t}, nil
}

func purge(r TriggerResult, err error) (TriggerResult, error) {
	if r.IsFire() {
		return FireAndPurge, err
	}
	return r, err
}

func (p purgingTrigger[T]) Open(k *state.Keyed, name string) error { return p.t.Open(k, name) }

func (p purgingTrigger[T]) OnElement(v T, ts int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	return purge(p.t.OnElement(v, ts, w, ctx))
}

func (p purgingTrigger[T]) OnEventTime(time int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	return purge(p.t.OnEventTime(time, w, ctx))
}

func (p purgingTrigger[T]) OnProcessingTime(time int64, w Window, ctx *TriggerContext) (TriggerResult, error) {
	return purge(p.t.OnProcessingTime(time, w, ctx))
}

func (p purgingTrigger[T]) CanMerge() bool                              { return p.t.CanMerge() }
func (p purgingTrigger[T]) OnMerge(w Window, ctx *TriggerContext) error { return p.t.OnMerge(w, ctx) }
func (p purgingTrigger[T]) Clear(w Window, ctx *TriggerContext) error   { return p.t.Clear(w, ctx) }
func (p purgingTrigger[T]) String() string                              { return fmt.Sprintf("PurgingTrigger(%v)", p.t) }

// neverTrigger is Flink's GlobalWindows.NeverTrigger.
type neverTrigger[T any] struct{}

// NeverTrigger never fires: the default trigger of Global.
func NeverTrigger[T any]() Trigger[T] { return neverTrigger[T]{} }

func (neverTrigger[T]) Open(*state.Keyed, string) error { return nil }
func (neverTrigger[T]) OnElement(T, int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (neverTrigger[T]) OnEventTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}

func (neverTrigger[T]) OnProcessingTime(int64, Window, *TriggerContext) (TriggerResult, error) {
	return Continue, nil
}
func (neverTrigger[T]) CanMerge() bool                        { return true }
func (neverTrigger[T]) OnMerge(Window, *TriggerContext) error { return nil }
func (neverTrigger[T]) Clear(Window, *TriggerContext) error   { return nil }
func (neverTrigger[T]) String() string                        { return "NeverTrigger" }

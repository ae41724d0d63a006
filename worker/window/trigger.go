package window

import (
	"strconv"

	"github.com/sabotdev/sabot/worker/state"
)

// TriggerResult is what a trigger decides for a window (Flink's
// TriggerResult).
type TriggerResult uint8

const (
	// Continue does nothing.
	Continue TriggerResult = iota
	// Fire emits the window's result and keeps its contents, so a later
	// firing (an early trigger, or a late element within the allowed
	// lateness) emits everything again.
	Fire
	// Purge clears the window's contents without emitting. The window
	// itself, its trigger state and its timers stay.
	Purge
	// FireAndPurge emits, then clears the contents.
	FireAndPurge
)

// IsFire reports whether r emits.
func (r TriggerResult) IsFire() bool { return r == Fire || r == FireAndPurge }

// IsPurge reports whether r clears the contents.
func (r TriggerResult) IsPurge() bool { return r == Purge || r == FireAndPurge }

func (r TriggerResult) String() string {
	switch r {
	case Continue:
		return "CONTINUE"
	case Fire:
		return "FIRE"
	case Purge:
		return "PURGE"
	case FireAndPurge:
		return "FIRE_AND_PURGE"
	default:
		return "TriggerResult(" + strconv.Itoa(int(r)) + ")"
	}
}

// Trigger decides when a window emits (Flink's Trigger). Users may write
// their own.
//
// Every method except Open runs with the operator's current key and
// namespace set to (element or timer key, w): state handles created in
// Open are therefore partitioned per key and window (Flink's
// getPartitionedState), and the timer calls of the TriggerContext are for
// this key and window. Timers are shared by the trigger and the operator:
// every event-time (processing-time) timer of the window, whoever set it,
// reaches OnEventTime (OnProcessingTime), so a trigger checks the time it
// is called with (EventTimeTrigger fires only at w.MaxTimestamp()).
//
// A trigger value serves one Operator: Open binds its state handles to
// that operator's state, and the built-in triggers refuse a second Open.
type Trigger[T any] interface {
	// Open creates the trigger's state handles on k. name is unique to
	// this trigger within the operator; prefix the trigger's state names
	// with it. Called once, by New.
	Open(k *state.Keyed, name string) error
	// OnElement is called for every element added to w.
	OnElement(v T, ts int64, w Window, ctx *TriggerContext) (TriggerResult, error)
	// OnEventTime is called when an event-time timer of w fires at time.
	OnEventTime(time int64, w Window, ctx *TriggerContext) (TriggerResult, error)
	// OnProcessingTime is called when a processing-time timer of w fires.
	OnProcessingTime(time int64, w Window, ctx *TriggerContext) (TriggerResult, error)
	// CanMerge reports whether OnMerge is implemented; merging assigners
	// need it.
	CanMerge() bool
	// OnMerge is called when windows merged into w; ctx.MergedWindows()
	// lists them. It merges the trigger state of the merged windows into w
	// (MergeReducing, MergeValue, MergeList) and registers w's timers. The
	// merged windows' Clear is called right after.
	OnMerge(w Window, ctx *TriggerContext) error
	// Clear deletes the trigger's state and timers for w; called when the
	// window is cleaned up or merged away.
	Clear(w Window, ctx *TriggerContext) error
}

// TriggerContext gives a trigger the operator's clocks and the timers and
// state of the current key and window (Flink's Trigger.TriggerContext).
// Valid only during the call that receives it.
type TriggerContext struct {
	c      *core
	window Window
	merged []Window
}

// Key is the current key's bytes; valid during the call.
func (ctx *TriggerContext) Key() []byte { return ctx.c.k.CurrentKey() }

// Window is the window the trigger is called for.
func (ctx *TriggerContext) Window() Window { return ctx.window }

// CurrentWatermark is the operator's event-time clock (math.MinInt64
// before the first watermark).
func (ctx *TriggerContext) CurrentWatermark() int64 { return ctx.c.timers.CurrentWatermark() }

// CurrentProcessingTime is the last time given to AdvanceProcessingTime.
func (ctx *TriggerContext) CurrentProcessingTime() int64 { return ctx.c.procTime }

// RegisterEventTimeTimer sets an event-time timer at ts for the current
// key and window; setting it twice gives one timer.
func (ctx *TriggerContext) RegisterEventTimeTimer(ts int64) error {
	return ctx.c.timers.RegisterEventTimeTimer(ts)
}

// DeleteEventTimeTimer deletes the current key and window's event-time
// timer at ts, if any.
func (ctx *TriggerContext) DeleteEventTimeTimer(ts int64) error {
	return ctx.c.timers.DeleteEventTimeTimer(ts)
}

// RegisterProcessingTimeTimer sets a processing-time timer at ts.
func (ctx *TriggerContext) RegisterProcessingTimeTimer(ts int64) error {
	return ctx.c.timers.RegisterProcessingTimeTimer(ts)
}

// DeleteProcessingTimeTimer deletes a processing-time timer at ts, if any.
func (ctx *TriggerContext) DeleteProcessingTimeTimer(ts int64) error {
	return ctx.c.timers.DeleteProcessingTimeTimer(ts)
}

// MergedWindows lists the windows merged into Window(); set during OnMerge
// only. The slice is the operator's: do not keep it.
func (ctx *TriggerContext) MergedWindows() []Window { return ctx.merged }

// InWindow runs fn with the current window set to w (one of
// MergedWindows, typically): the trigger's state handles and the timer
// calls of ctx then apply to w. For OnMerge code that must look at a
// merged window before its state is merged away, such as deleting the
// timers it recorded in state.
func (ctx *TriggerContext) InWindow(w Window, fn func() error) error {
	saved := ctx.window
	ctx.window = w
	ctx.c.setNS(w)
	err := fn()
	ctx.window = saved
	ctx.c.setNS(saved)
	return err
}

// mergeEach runs fn for every merged window with the namespace set to it,
// then restores the namespace of ctx.Window(). into is called with the
// namespace of ctx.Window() to fold what fn read.
func mergeEach(ctx *TriggerContext, fn func() (bool, error), into func() error) error {
	defer ctx.c.setNS(ctx.window)
	for _, m := range ctx.merged {
		if m == ctx.window {
			continue
		}
		ctx.c.setNS(m)
		ok, err := fn()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		ctx.c.setNS(ctx.window)
		if err := into(); err != nil {
			return err
		}
	}
	return nil
}

// MergeReducing merges s's values in the merged windows into the current
// window with s's reduce function and clears them (Flink's
// mergePartitionedState for a ReducingState). Call from OnMerge.
func MergeReducing[T any](ctx *TriggerContext, s *state.ReducingState[T]) error {
	var v T
	return mergeEach(ctx, func() (bool, error) {
		var ok bool
		var err error
		if v, ok, err = s.Get(); err != nil || !ok {
			return false, err
		}
		return true, s.Clear()
	}, func() error { return s.Add(v) })
}

// MergeValue merges s's values in the merged windows into the current
// window with merge(current, merged) and clears them; a window without a
// value contributes nothing. Call from OnMerge.
func MergeValue[T any](ctx *TriggerContext, s *state.ValueState[T], merge func(a, b T) T) error {
	var v T
	return mergeEach(ctx, func() (bool, error) {
		var ok bool
		var err error
		if v, ok, err = s.Value(); err != nil || !ok {
			return false, err
		}
		return true, s.Clear()
	}, func() error {
		cur, ok, err := s.Value()
		if err != nil {
			return err
		}
		if ok {
			v = merge(cur, v)
		}
		return s.Update(v)
	})
}

// MergeList appends s's lists in the merged windows to the current
// window's list and clears them. Call from OnMerge.
func MergeList[T any](ctx *TriggerContext, s *state.ListState[T]) error {
	var vs []T
	return mergeEach(ctx, func() (bool, error) {
		var err error
		if vs, err = s.Get(); err != nil || len(vs) == 0 {
			return false, err
		}
		return true, s.Clear()
	}, func() error { return s.AddAll(vs) })
}

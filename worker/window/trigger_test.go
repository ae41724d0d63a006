package window_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// distinctTrigger is a custom trigger keeping the distinct values of a
// window in list state: it fires (FIRE, not purge) when a window has seen
// n distinct values, and fires a session at its end. OnMerge uses
// MergeList; its timers go through the TriggerContext.
type distinctTrigger struct {
	n    int
	seen *state.ListState[int64]
}

func (d *distinctTrigger) Open(k *state.Keyed, name string) error {
	var err error
	d.seen, err = state.List(k, state.ListDescriptor[int64]{Name: name + "-seen", Codec: state.Int64Codec{}})
	return err
}

func (d *distinctTrigger) OnElement(v, _ int64, w window.Window, ctx *window.TriggerContext) (window.TriggerResult, error) {
	if err := ctx.RegisterEventTimeTimer(w.MaxTimestamp()); err != nil {
		return window.Continue, err
	}
	seen, err := d.seen.Get()
	if err != nil || slices.Contains(seen, v) {
		return window.Continue, err
	}
	if err := d.seen.Add(v); err != nil {
		return window.Continue, err
	}
	if len(seen)+1 == d.n {
		return window.Fire, nil
	}
	return window.Continue, nil
}

func (d *distinctTrigger) OnEventTime(time int64, w window.Window, _ *window.TriggerContext) (window.TriggerResult, error) {
	if time == w.MaxTimestamp() {
		return window.Fire, nil
	}
	return window.Continue, nil
}

func (d *distinctTrigger) OnProcessingTime(int64, window.Window, *window.TriggerContext) (window.TriggerResult, error) {
	return window.Continue, nil
}

func (d *distinctTrigger) CanMerge() bool { return true }

func (d *distinctTrigger) OnMerge(w window.Window, ctx *window.TriggerContext) error {
	if got := ctx.Window(); got != w {
		return fmt.Errorf("ctx.Window() = %s in OnMerge of %s", got, w)
	}
	if err := window.MergeList(ctx, d.seen); err != nil {
		return err
	}
	if w.MaxTimestamp() > ctx.CurrentWatermark() {
		return ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	}
	return nil
}

func (d *distinctTrigger) Clear(w window.Window, ctx *window.TriggerContext) error {
	if err := d.seen.Clear(); err != nil {
		return err
	}
	return ctx.DeleteEventTimeTimer(w.MaxTimestamp())
}

// TestCustomTrigger runs a custom stateful trigger on sessions: its list
// state follows merges (MergeList), its timers are deleted with merged
// windows, and everything is gone after the cleanup.
func TestCustomTrigger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, kind string) {
		bk := openBackend(t, kind)
		k := newKeyed(t, bk.b)
		var got []string
		op, err := window.New(k, window.Config[int64, string]{
			Assigner: mustAssigner(t)(window.Session[int64](window.EventTime, 10)),
			Trigger:  &distinctTrigger{n: 3},
			Codec:    state.Int64Codec{},
			Function: window.Process(func(info window.Info, in []int64, emit func(string) error) error {
				return emit(fmt.Sprintf("%s %v", info.Window, in))
			}),
			Emit: func(key []byte, _ window.Window, out string) error {
				got = append(got, fmt.Sprintf("%s %s", key, out))
				return nil
			},
		})
		must(t, err)
		setKey(t, k, "a")
		for _, e := range [][2]int64{{0, 1}, {20, 2}, {21, 2}, {10, 3}, {12, 1}} {
			must(t, op.ProcessElement(e[0], e[1]))
		}
		// 10 bridges [0,10) and [20,31): seen {1} + {2} + 3 = 3 distinct.
		want := []string{"a [0,31) [1 2 2 3]"}
		if !slices.Equal(got, want) {
			t.Fatalf("before the watermark: %q, want %q", got, want)
		}
		if dumpState(t, bk.b, "op") == "(empty)" {
			t.Fatal("state empty before the end of the session")
		}
		must(t, op.AdvanceWatermark(math.MaxInt64))
		want = append(want, "a [0,31) [1 2 2 3 1]")
		if !slices.Equal(got, want) {
			t.Fatalf("after the watermark: %q, want %q", got, want)
		}
		if dump := dumpState(t, bk.b, "op"); dump != "(empty)" {
			t.Fatalf("state left:\n%s", dump)
		}
	})
}

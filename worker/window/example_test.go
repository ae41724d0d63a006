package window_test

import (
	"fmt"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// The runtime's side of the engine: per row set the key and add the
// element; per watermark advance event time. Sums per key over tumbling
// 10 ms windows, with 5 ms of allowed lateness and a late output. (Both
// keys are in key group 0 here; timers of one time fire in key order
// within a key group, length first.)
func Example() {
	b, _ := state.NewHeap(state.Config{})
	defer func() { _ = b.Close() }()
	k, _ := state.NewKeyed(b, "window-1")

	tumbling, _ := window.Tumbling[int64](window.EventTime, 10, 0)
	op, err := window.New(k, window.Config[int64, int64]{
		Assigner:        tumbling,
		AllowedLateness: 5,
		Function:        window.Reduce(func(a, b int64) int64 { return a + b }, state.Int64Codec{}),
		Emit: func(key []byte, w window.Window, sum int64) error {
			fmt.Printf("%s %s sum %d\n", key, w, sum)
			return nil
		},
		Late: func(key []byte, ts, v int64) error {
			fmt.Printf("%s late element at %d\n", key, ts)
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	add := func(key string, ts, v int64) {
		_ = k.SetCurrentKey([]byte(key), 0) // the runtime passes the real key group
		if err := op.ProcessElement(ts, v); err != nil {
			panic(err)
		}
	}
	add("apples", 1, 3)
	add("pears", 4, 1)
	add("apples", 7, 2)
	_ = op.AdvanceWatermark(9) // fires [0,10)
	add("apples", 8, 10)       // late, within the allowed lateness: fires again
	_ = op.AdvanceWatermark(14)
	add("apples", 9, 1) // too late: [0,10) is gone
	// Output:
	// pears [0,10) sum 1
	// apples [0,10) sum 5
	// apples [0,10) sum 15
	// apples late element at 9
}

// thresholdTrigger is a custom trigger: it fires a window as soon as the
// values in it add up to at least limit, and purges. Its running total is
// partitioned trigger state (per key and window), merged for sessions.
type thresholdTrigger struct {
	limit int64
	total *state.ValueState[int64]
}

func (t *thresholdTrigger) Open(k *state.Keyed, name string) error {
	var err error
	t.total, err = state.Value(k, state.ValueDescriptor[int64]{Name: name + "-total", Codec: state.Int64Codec{}})
	return err
}

func (t *thresholdTrigger) OnElement(v, _ int64, _ window.Window, _ *window.TriggerContext) (window.TriggerResult, error) {
	total, _, err := t.total.Value()
	if err != nil {
		return window.Continue, err
	}
	if total += v; total >= t.limit {
		return window.FireAndPurge, t.total.Clear()
	}
	return window.Continue, t.total.Update(total)
}

func (t *thresholdTrigger) OnEventTime(int64, window.Window, *window.TriggerContext) (window.TriggerResult, error) {
	return window.Continue, nil
}

func (t *thresholdTrigger) OnProcessingTime(int64, window.Window, *window.TriggerContext) (window.TriggerResult, error) {
	return window.Continue, nil
}

func (t *thresholdTrigger) CanMerge() bool { return true }

func (t *thresholdTrigger) OnMerge(_ window.Window, ctx *window.TriggerContext) error {
	return window.MergeValue(ctx, t.total, func(a, b int64) int64 { return a + b })
}

func (t *thresholdTrigger) Clear(window.Window, *window.TriggerContext) error { return t.total.Clear() }

// A custom trigger with its own state, on session windows: the totals of
// two sessions merge when an element bridges them.
func Example_customTrigger() {
	b, _ := state.NewHeap(state.Config{})
	defer func() { _ = b.Close() }()
	k, _ := state.NewKeyed(b, "window-2")
	sessions, _ := window.Session[int64](window.EventTime, 10)
	op, err := window.New(k, window.Config[int64, string]{
		Assigner: sessions,
		Trigger:  &thresholdTrigger{limit: 10},
		Codec:    state.Int64Codec{},
		Function: window.Process(func(info window.Info, in []int64, emit func(string) error) error {
			return emit(fmt.Sprintf("%s %v", info.Window, in))
		}),
		Emit: func(key []byte, _ window.Window, out string) error {
			fmt.Printf("%s: %s\n", key, out)
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	_ = k.SetCurrentKey([]byte("sensor-1"), 0)
	// [0,10) and [20,30) hold 4 each; 10 bridges them, 4+4+3 reaches 10.
	// Then [40,50) and [35,45) merge: 9+1.
	for _, e := range [][2]int64{{0, 4}, {20, 4}, {10, 3}, {40, 9}, {35, 1}} {
		if err := op.ProcessElement(e[0], e[1]); err != nil {
			panic(err)
		}
	}
	// Output:
	// sensor-1: [0,30) [4 4 3]
	// sensor-1: [35,50) [9 1]
}

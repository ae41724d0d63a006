package state_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

// fired is a firing as the callback saw it, including what a value state
// read for the current key (to prove the key was set).
type fired struct {
	ts      int64
	key, ns string
	value   int64
}

func timerSetup(t *testing.T, nb newBackendFunc) (state.Backend, *state.Keyed, *state.TimerService, *state.ValueState[int64]) {
	t.Helper()
	b, k, _ := setup(t, nb)
	ts, err := k.TimerService("user")
	must(t, err)
	v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
	must(t, err)
	return b, k, ts, v
}

// at registers an event-time timer at ts for key/ns and stores val in v
// for that key/ns.
func at(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64], key, ns string, when, val int64) {
	t.Helper()
	setKey(t, k, key)
	k.SetCurrentNamespace([]byte(ns))
	must(t, v.Update(val))
	must(t, ts.RegisterEventTimeTimer(when))
}

func recorder(t *testing.T, v *state.ValueState[int64], out *[]fired) func(state.Timer) error {
	return func(tm state.Timer) error {
		got, _, err := v.Value()
		if err != nil {
			return err
		}
		*out = append(*out, fired{tm.Timestamp, string(tm.Key), string(tm.Namespace), got})
		return nil
	}
}

func TestTimers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		cases := []struct {
			name string
			run  func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired
			want []fired
		}{
			{"order and key context", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				at(t, k, ts, v, "c", "", 30, 3)
				at(t, k, ts, v, "a", "", 10, 1)
				at(t, k, ts, v, "b", "", 20, 2)
				at(t, k, ts, v, "d", "", 40, 4)
				var out []fired
				must(t, ts.AdvanceWatermark(35, recorder(t, v, &out)))
				if next, ok := ts.NextEventTime(); !ok || next != 40 {
					t.Errorf("next event time %d %v", next, ok)
				}
				return out
			}, []fired{{10, "a", "", 1}, {20, "b", "", 2}, {30, "c", "", 3}}},
			{"dedup", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				at(t, k, ts, v, "a", "", 10, 1)
				at(t, k, ts, v, "a", "", 10, 1)
				var out []fired
				must(t, ts.AdvanceWatermark(10, recorder(t, v, &out)))
				must(t, ts.AdvanceWatermark(100, recorder(t, v, &out)))
				return out
			}, []fired{{10, "a", "", 1}}},
			{"delete", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				at(t, k, ts, v, "a", "", 10, 1)
				at(t, k, ts, v, "a", "", 20, 1)
				must(t, ts.DeleteEventTimeTimer(10))
				must(t, ts.DeleteEventTimeTimer(15)) // absent: no-op
				setKey(t, k, "b")
				must(t, ts.DeleteEventTimeTimer(20)) // another key's timer: untouched
				var out []fired
				must(t, ts.AdvanceWatermark(100, recorder(t, v, &out)))
				return out
			}, []fired{{20, "a", "", 1}}},
			{"per key and namespace", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				at(t, k, ts, v, "a", "w1", 10, 1)
				at(t, k, ts, v, "a", "w2", 10, 2)
				at(t, k, ts, v, "b", "w1", 10, 3)
				var out []fired
				must(t, ts.AdvanceWatermark(10, recorder(t, v, &out)))
				slices.SortFunc(out, func(x, y fired) int { return int(x.value - y.value) })
				return out
			}, []fired{{10, "a", "w1", 1}, {10, "a", "w2", 2}, {10, "b", "w1", 3}}},
			{"registered while firing", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				at(t, k, ts, v, "a", "", 10, 1)
				var out []fired
				rec := recorder(t, v, &out)
				must(t, ts.AdvanceWatermark(20, func(tm state.Timer) error {
					if tm.Timestamp == 10 {
						// same key: at 15 (≤ watermark, fires now), at 5
						// (already late, fires now), at 100 (later)
						for _, when := range []int64{15, 5, 100} {
							if err := ts.RegisterEventTimeTimer(when); err != nil {
								return err
							}
						}
					}
					return rec(tm)
				}))
				if next, _ := ts.NextEventTime(); next != 100 {
					t.Errorf("next = %d", next)
				}
				return out
			}, []fired{{10, "a", "", 1}, {5, "a", "", 1}, {15, "a", "", 1}}},
			{"late registration fires on next advance", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				var out []fired
				must(t, ts.AdvanceWatermark(50, recorder(t, v, &out)))
				at(t, k, ts, v, "a", "", 10, 1)
				must(t, ts.AdvanceWatermark(40, recorder(t, v, &out))) // watermark stays 50
				if ts.CurrentWatermark() != 50 {
					t.Errorf("watermark moved back to %d", ts.CurrentWatermark())
				}
				return out
			}, []fired{{10, "a", "", 1}}},
			{"processing time", func(t *testing.T, k *state.Keyed, ts *state.TimerService, v *state.ValueState[int64]) []fired {
				setKey(t, k, "a")
				must(t, v.Update(1))
				must(t, ts.RegisterProcessingTimeTimer(2000))
				must(t, ts.RegisterProcessingTimeTimer(1000))
				must(t, ts.RegisterProcessingTimeTimer(1000))
				must(t, ts.RegisterEventTimeTimer(500)) // other domain: not fired
				if next, ok := ts.NextProcessingTime(); !ok || next != 1000 {
					t.Errorf("next processing time %d %v", next, ok)
				}
				var out []fired
				must(t, ts.AdvanceProcessingTime(1500, recorder(t, v, &out)))
				if next, _ := ts.NextProcessingTime(); next != 2000 {
					t.Errorf("next processing time after firing %d", next)
				}
				must(t, ts.DeleteProcessingTimeTimer(2000))
				if _, ok := ts.NextProcessingTime(); ok {
					t.Error("deleted processing timer still scheduled")
				}
				return out
			}, []fired{{1000, "a", "", 1}}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, k, ts, v := timerSetup(t, nb)
				if got := tc.run(t, k, ts, v); !slices.Equal(got, tc.want) {
					t.Fatalf("fired %v\nwant  %v", got, tc.want)
				}
			})
		}
	})
}

func TestTimerReentrancyAndErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, ts, v := timerSetup(t, nb)
		at(t, k, ts, v, "a", "", 1, 0)
		at(t, k, ts, v, "b", "", 2, 0)
		err := ts.AdvanceWatermark(10, func(state.Timer) error { return ts.AdvanceWatermark(10, nil) })
		if !errors.Is(err, state.ErrReentrant) {
			t.Fatalf("nested advance: %v", err)
		}
		boom := errors.New("boom")
		if err := ts.AdvanceWatermark(10, func(state.Timer) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("callback error: %v", err)
		}
		if _, err := k.TimerService("a/b"); !errors.Is(err, state.ErrInvalidDescriptor) {
			t.Fatalf("bad name: %v", err)
		}
	})
}

// TestTimersReload: a second timer service over the same backend (what a
// restore does) indexes the stored timers, fired ones excluded.
func TestTimersReload(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		b, k, ts, v := timerSetup(t, nb)
		for i := range 20 {
			at(t, k, ts, v, fmt.Sprintf("k%d", i), "ns", int64(100-i), int64(i))
		}
		var out []fired
		must(t, ts.AdvanceWatermark(85, recorder(t, v, &out))) // fires 81..85
		k2, err := state.NewKeyed(b, "op")
		must(t, err)
		ts2, err := k2.TimerService("user")
		must(t, err)
		v2, err := state.Value(k2, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		must(t, err)
		var again []fired
		must(t, ts2.AdvanceWatermark(1000, recorder(t, v2, &again)))
		if len(again) != 15 || again[0].ts != 86 || again[14].ts != 100 || again[0].key != "k14" || again[0].value != 14 {
			t.Fatalf("reloaded firings: %v", again)
		}
	})
}

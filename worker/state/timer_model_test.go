package state_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

// mtimer is a timer of the model: the oracle keeps every pending timer in
// one sorted slice, ordered as the package doc says timers fire: by
// timestamp, then key group, then the stored row (key, namespace).
type mtimer struct {
	ts      int64
	kg      uint16
	key, ns string
}

func (m mtimer) row() []byte {
	r := binary.AppendUvarint(nil, uint64(len(m.key)))
	r = append(r, m.key...)
	r = binary.AppendUvarint(r, uint64(len(m.ns)))
	return append(r, m.ns...)
}

func compareTimers(x, y mtimer) int {
	if c := cmp.Compare(x.ts, y.ts); c != 0 {
		return c
	}
	if c := cmp.Compare(x.kg, y.kg); c != 0 {
		return c
	}
	return bytes.Compare(x.row(), y.row())
}

type timerModel struct{ pending []mtimer }

func (m *timerModel) add(tm mtimer) {
	if i, ok := slices.BinarySearchFunc(m.pending, tm, compareTimers); !ok {
		m.pending = slices.Insert(m.pending, i, tm)
	}
}

func (m *timerModel) remove(tm mtimer) {
	if i, ok := slices.BinarySearchFunc(m.pending, tm, compareTimers); ok {
		m.pending = slices.Delete(m.pending, i, i+1)
	}
}

// timerMachine drives a TimerService and the model with the same random
// operations, checking each firing against the model's smallest pending
// timer.
type timerMachine struct {
	t     *testing.T
	rng   *rand.Rand
	b     state.Backend
	k     *state.Keyed
	ts    *state.TimerService
	model timerModel
	wm    int64
	fired int
	quiet bool // callbacks register and delete nothing
}

var modelKeys = []string{"", "a", "b", "c", "apple", "key-with-a-long-name-0001", "key-with-a-long-name-0002", "z"}

func (m *timerMachine) random() mtimer {
	key := modelKeys[m.rng.IntN(len(modelKeys))]
	return mtimer{
		ts:  m.wm - 5 + m.rng.Int64N(40), // some at or before the watermark
		kg:  kgOf(key),
		key: key,
		ns:  []string{"", "w1", "w2"}[m.rng.IntN(3)],
	}
}

func (m *timerMachine) setScope(tm mtimer) {
	must(m.t, m.k.SetCurrentKey([]byte(tm.key), tm.kg))
	m.k.SetCurrentNamespace([]byte(tm.ns))
}

func (m *timerMachine) register(tm mtimer) error {
	m.setScope(tm)
	m.model.add(tm)
	return m.ts.RegisterEventTimeTimer(tm.ts)
}

func (m *timerMachine) delete(tm mtimer) error {
	m.setScope(tm)
	m.model.remove(tm)
	return m.ts.DeleteEventTimeTimer(tm.ts)
}

func (m *timerMachine) advance(wm int64) {
	m.t.Helper()
	m.wm = max(m.wm, wm)
	err := m.ts.AdvanceWatermark(wm, func(got state.Timer) error {
		m.fired++
		if len(m.model.pending) == 0 {
			return fmt.Errorf("fired %d %q/%q: the model has no timer pending", got.Timestamp, got.Key, got.Namespace)
		}
		want := m.model.pending[0]
		if want.ts > m.wm || got.Timestamp != want.ts || got.KeyGroup != want.kg ||
			string(got.Key) != want.key || string(got.Namespace) != want.ns {
			return fmt.Errorf("fired %d kg %d %q/%q, want %+v", got.Timestamp, got.KeyGroup, got.Key, got.Namespace, want)
		}
		if string(m.k.CurrentKey()) != want.key || string(m.k.CurrentNamespace()) != want.ns {
			return fmt.Errorf("current key %q/%q in the callback of %+v", m.k.CurrentKey(), m.k.CurrentNamespace(), want)
		}
		m.model.pending = m.model.pending[1:]
		// Register and delete from the callback, as triggers do (the
		// service restores no key: the next firing sets its own).
		for n := m.rng.IntN(3); n > 0 && !m.quiet; n-- {
			var err error
			switch tm := m.random(); m.rng.IntN(3) {
			case 0:
				tm.key, tm.kg, tm.ns = want.key, want.kg, want.ns // same key, maybe same time
				tm.ts = want.ts + m.rng.Int64N(3) - 1
				err = m.register(tm)
			case 1:
				err = m.register(tm)
			default:
				if len(m.model.pending) > 0 {
					err = m.delete(m.model.pending[m.rng.IntN(len(m.model.pending))])
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	must(m.t, err)
	if len(m.model.pending) > 0 && m.model.pending[0].ts <= m.wm {
		m.t.Fatalf("watermark %d: timer %+v left pending", m.wm, m.model.pending[0])
	}
	m.checkNext()
}

func (m *timerMachine) checkNext() {
	m.t.Helper()
	next, ok := m.ts.NextEventTime()
	if len(m.model.pending) == 0 {
		if ok {
			m.t.Fatalf("next event time %d, model empty", next)
		}
		return
	}
	if !ok || next != m.model.pending[0].ts {
		m.t.Fatalf("next event time %d %v, want %d", next, ok, m.model.pending[0].ts)
	}
}

// checkStored compares the stored timer entries with the model.
func (m *timerMachine) checkStored() {
	m.t.Helper()
	var got []mtimer
	must(m.t, m.b.IterateKeyGroups(m.b.KeyGroups(), func(e *state.Entry) error {
		if e.State != "_timers/m/event" {
			return nil
		}
		ts := int64(binary.BigEndian.Uint64(e.Column) ^ 1<<63)
		got = append(got, mtimer{ts, e.KeyGroup, string(e.Key), string(e.Namespace)})
		return nil
	}))
	want := slices.Clone(m.model.pending)
	// Stored order: key group, row, then timestamp.
	slices.SortFunc(want, func(x, y mtimer) int {
		if c := cmp.Compare(x.kg, y.kg); c != 0 {
			return c
		}
		if c := bytes.Compare(x.row(), y.row()); c != 0 {
			return c
		}
		return cmp.Compare(x.ts, y.ts)
	})
	if !slices.Equal(got, want) {
		m.t.Fatalf("stored timers\n%v\nwant\n%v", got, want)
	}
}

// TestTimersAgainstModel runs random registrations, deletions (also from
// callbacks), watermarks and restores against the model, on both
// backends. Each seed replays.
func TestTimersAgainstModel(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		for seed := range uint64(20) {
			t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
				t.Parallel()
				b := nb(t, state.Config{})
				k, err := state.NewKeyed(b, "op")
				must(t, err)
				ts, err := k.TimerService("m")
				must(t, err)
				m := &timerMachine{t: t, rng: rand.New(rand.NewPCG(seed, 1)), b: b, k: k, ts: ts}
				for step := range 400 {
					switch op := m.rng.IntN(20); {
					case op < 10:
						must(t, m.register(m.random()))
					case op < 13:
						if len(m.model.pending) > 0 {
							must(t, m.delete(m.model.pending[m.rng.IntN(len(m.model.pending))]))
						} else {
							must(t, m.delete(m.random())) // absent: a no-op
						}
					case op < 18:
						m.advance(m.wm + m.rng.Int64N(15))
					case op < 19:
						// A restore: a new context and service over the same
						// backend take over.
						k2, err := state.NewKeyed(b, "op")
						must(t, err)
						ts2, err := k2.TimerService("m")
						must(t, err)
						m.k, m.ts = k2, ts2
					default:
						m.checkStored()
					}
					if t.Failed() {
						t.Fatalf("step %d", step)
					}
					m.checkNext()
				}
				m.checkStored()
				m.quiet = true
				m.advance(1 << 40)
				if len(m.model.pending) != 0 || m.fired == 0 {
					t.Fatalf("%d pending after the last watermark, %d fired", len(m.model.pending), m.fired)
				}
				m.checkStored()
			})
		}
	})
}

// TestTimerSameTimestampOrder: timers at one timestamp fire in key order
// (key group, key, namespace) whatever the order of registration, before
// and after a restore, and the same on both backends.
func TestTimerSameTimestampOrder(t *testing.T) {
	t.Parallel()
	type kns struct {
		kg      uint16
		key, ns string
	}
	regs := []kns{
		{3, "b", ""}, {1, "z", ""}, {3, "a", "w2"}, {3, "a", "w1"}, {2, "c", ""},
		{1, "y", "w"}, {3, "a", ""}, {1, "y", ""}, {3, "aa", ""},
	}
	// Rows compare as stored: length-prefixed key, then namespace, so
	// within a key group shorter keys come first.
	want := []string{"1/y/", "1/y/w", "1/z/", "2/c/", "3/a/", "3/a/w1", "3/a/w2", "3/b/", "3/aa/"}
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		for _, restore := range []bool{false, true} {
			t.Run(fmt.Sprint("restore=", restore), func(t *testing.T) {
				t.Parallel()
				b := nb(t, state.Config{})
				k, err := state.NewKeyed(b, "op")
				must(t, err)
				ts, err := k.TimerService("t")
				must(t, err)
				for i, r := range regs {
					must(t, k.SetCurrentKey([]byte(r.key), r.kg))
					k.SetCurrentNamespace([]byte(r.ns))
					must(t, ts.RegisterEventTimeTimer(100))
					if i%3 == 0 { // deleted and registered again: no effect on order
						must(t, ts.DeleteEventTimeTimer(100))
						must(t, ts.RegisterEventTimeTimer(100))
					}
				}
				if restore {
					k, err = state.NewKeyed(b, "op")
					must(t, err)
					ts, err = k.TimerService("t")
					must(t, err)
				}
				var got []string
				must(t, ts.AdvanceWatermark(100, func(tm state.Timer) error {
					got = append(got, fmt.Sprintf("%d/%s/%s", tm.KeyGroup, tm.Key, tm.Namespace))
					return nil
				}))
				if !slices.Equal(got, want) {
					t.Fatalf("fired %v\nwant  %v", got, want)
				}
			})
		}
	})
}

// TestTimersDeleteKeyGroups: on the heap backend the timer index is the
// table, so timers of deleted key groups are gone from it too.
func TestTimersDeleteKeyGroups(t *testing.T) {
	t.Parallel()
	b, err := state.NewHeap(state.Config{})
	must(t, err)
	defer func() { _ = b.Close() }()
	k, err := state.NewKeyed(b, "op")
	must(t, err)
	ts, err := k.TimerService("t")
	must(t, err)
	for kg := range uint16(128) {
		must(t, k.SetCurrentKey([]byte("k"), kg))
		must(t, ts.RegisterEventTimeTimer(int64(kg%4)))
	}
	must(t, b.DeleteKeyGroups(state.KeyGroupRange{Start: 0, End: 64}))
	n := 0
	must(t, ts.AdvanceWatermark(10, func(tm state.Timer) error {
		if tm.KeyGroup < 64 {
			t.Errorf("timer of deleted key group %d fired", tm.KeyGroup)
		}
		n++
		return nil
	}))
	if n != 64 {
		t.Fatalf("%d timers fired, want 64", n)
	}
}

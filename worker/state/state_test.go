package state_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

// scope is where an access happens: key, key group and namespace.
type scope struct {
	key string
	kg  uint16
	ns  string
}

func (s scope) set(t *testing.T, k *state.Keyed) {
	t.Helper()
	must(t, k.SetCurrentKey([]byte(s.key), s.kg))
	k.SetCurrentNamespace([]byte(s.ns))
}

// isolation cases: a write in `base` must not be visible in `other`.
var isolationCases = []struct {
	name  string
	other scope
}{
	{"same scope", scope{"a", 1, "w1"}}, // control: visible
	{"other key", scope{"b", 1, "w1"}},
	{"other namespace", scope{"a", 1, "w2"}},
	{"default namespace", scope{"a", 1, ""}},
	{"other key group", scope{"a", 2, "w1"}},
	{"empty key", scope{"", 1, "w1"}},
}

var baseScope = scope{"a", 1, "w1"}

func TestValueState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, _ := setup(t, nb)
		v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		must(t, err)
		baseScope.set(t, k)
		if _, ok, err := v.Value(); err != nil || ok {
			t.Fatalf("empty state: ok=%v err=%v", ok, err)
		}
		must(t, v.Update(7))
		must(t, v.Update(42))
		if got, ok, err := v.Value(); err != nil || !ok || got != 42 {
			t.Fatalf("after update: %v %v %v", got, ok, err)
		}
		for _, tc := range isolationCases {
			t.Run(tc.name, func(t *testing.T) {
				tc.other.set(t, k)
				_, ok, err := v.Value()
				must(t, err)
				if want := tc.other == baseScope; ok != want {
					t.Fatalf("visible=%v, want %v", ok, want)
				}
			})
		}
		baseScope.set(t, k)
		must(t, v.Clear())
		if _, ok, _ := v.Value(); ok {
			t.Fatal("value after clear")
		}
		// A zero-length encoding is still a value.
		s, err := state.Value(k, state.ValueDescriptor[string]{Name: "s", Codec: state.StringCodec{}})
		must(t, err)
		must(t, s.Update(""))
		if got, ok, err := s.Value(); err != nil || !ok || got != "" {
			t.Fatalf("empty string: %q %v %v", got, ok, err)
		}
	})
}

func TestListState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, _ := setup(t, nb)
		l, err := state.List(k, state.ListDescriptor[string]{Name: "l", Codec: state.StringCodec{}})
		must(t, err)
		baseScope.set(t, k)
		if got, err := l.Get(); err != nil || got != nil {
			t.Fatalf("empty list: %v %v", got, err)
		}
		must(t, l.Add("x"))
		must(t, l.Add(""))
		must(t, l.AddAll([]string{"y", "z"}))
		if got, _ := l.Get(); !slices.Equal(got, []string{"x", "", "y", "z"}) {
			t.Fatalf("after adds: %q", got)
		}
		for _, tc := range isolationCases {
			t.Run(tc.name, func(t *testing.T) {
				tc.other.set(t, k)
				got, err := l.Get()
				must(t, err)
				if want := tc.other == baseScope; (got != nil) != want {
					t.Fatalf("visible=%v, want %v", got != nil, want)
				}
			})
		}
		baseScope.set(t, k)
		must(t, l.Update([]string{"u"}))
		if got, _ := l.Get(); !slices.Equal(got, []string{"u"}) {
			t.Fatalf("after update: %q", got)
		}
		must(t, l.Update(nil))
		if got, _ := l.Get(); got != nil {
			t.Fatalf("after empty update: %q", got)
		}
		must(t, l.Add("w"))
		must(t, l.Clear())
		if got, _ := l.Get(); got != nil {
			t.Fatalf("after clear: %q", got)
		}
	})
}

func TestMapState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, _ := setup(t, nb)
		m, err := state.Map(k, state.MapDescriptor[string, int64]{Name: "m", KeyCodec: state.StringCodec{}, ValueCodec: state.Int64Codec{}})
		must(t, err)
		baseScope.set(t, k)
		if empty, err := m.IsEmpty(); err != nil || !empty {
			t.Fatalf("empty map: %v %v", empty, err)
		}
		if _, ok, err := m.Get("x"); err != nil || ok {
			t.Fatalf("get on empty: %v %v", ok, err)
		}
		must(t, m.Put("x", 1))
		must(t, m.Put("", 2)) // the empty user key is a key like any other
		must(t, m.Put("y", 3))
		must(t, m.Put("x", 10))
		must(t, m.Remove("y"))
		must(t, m.Remove("absent"))
		got := map[string]int64{}
		must(t, m.Iterate(func(key string, v int64) error { got[key] = v; return nil }))
		if len(got) != 2 || got["x"] != 10 || got[""] != 2 {
			t.Fatalf("entries: %v", got)
		}
		if ok, _ := m.Contains(""); !ok {
			t.Fatal("empty key missing")
		}
		for _, tc := range isolationCases {
			t.Run(tc.name, func(t *testing.T) {
				tc.other.set(t, k)
				empty, err := m.IsEmpty()
				must(t, err)
				_, ok, err := m.Get("x")
				must(t, err)
				if want := tc.other == baseScope; empty == want || ok != want {
					t.Fatalf("empty=%v get=%v, want visible=%v", empty, ok, want)
				}
			})
		}
		stop := errors.New("stop")
		baseScope.set(t, k)
		if err := m.Iterate(func(string, int64) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("iterate error: %v", err)
		}
		must(t, m.Clear())
		if empty, _ := m.IsEmpty(); !empty {
			t.Fatal("map not empty after clear")
		}
		// Clearing one row leaves the neighbours (prefix-free rows).
		scope{"a", 1, "w"}.set(t, k)
		must(t, m.Put("k", 1))
		scope{"a", 1, "w1"}.set(t, k)
		must(t, m.Put("k", 1))
		must(t, m.Clear())
		scope{"a", 1, "w"}.set(t, k)
		if ok, _ := m.Contains("k"); !ok {
			t.Fatal("clear of namespace w1 removed namespace w")
		}
	})
}

func TestReducingState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, _ := setup(t, nb)
		r, err := state.Reducing(k, state.ReducingDescriptor[int64]{
			Name: "sum", Codec: state.Int64Codec{}, Reduce: func(a, b int64) int64 { return a + b },
		})
		must(t, err)
		baseScope.set(t, k)
		if _, ok, _ := r.Get(); ok {
			t.Fatal("value on empty")
		}
		for i := int64(1); i <= 4; i++ {
			must(t, r.Add(i))
		}
		if got, ok, _ := r.Get(); !ok || got != 10 {
			t.Fatalf("sum = %d %v", got, ok)
		}
		for _, tc := range isolationCases {
			t.Run(tc.name, func(t *testing.T) {
				tc.other.set(t, k)
				_, ok, err := r.Get()
				must(t, err)
				if want := tc.other == baseScope; ok != want {
					t.Fatalf("visible=%v, want %v", ok, want)
				}
			})
		}
		baseScope.set(t, k)
		must(t, r.Clear())
		must(t, r.Add(5))
		if got, _, _ := r.Get(); got != 5 {
			t.Fatalf("after clear+add: %d", got)
		}
	})
}

// avg is an AggregateFunction computing a mean.
type avg struct{}

type avgAcc struct{ Sum, Count int64 }

func (avg) CreateAccumulator() avgAcc       { return avgAcc{} }
func (avg) Add(in int64, acc avgAcc) avgAcc { return avgAcc{acc.Sum + in, acc.Count + 1} }
func (avg) Result(acc avgAcc) float64       { return float64(acc.Sum) / float64(acc.Count) }

func TestAggregatingState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, _ := setup(t, nb)
		a, err := state.Aggregating(k, state.AggregatingDescriptor[int64, avgAcc, float64]{
			Name: "avg", Codec: state.BinaryCodec[avgAcc]{}, Aggregate: avg{},
		})
		must(t, err)
		baseScope.set(t, k)
		if _, ok, _ := a.Get(); ok {
			t.Fatal("result on empty")
		}
		for _, v := range []int64{1, 2, 6} {
			must(t, a.Add(v))
		}
		if got, ok, _ := a.Get(); !ok || got != 3 {
			t.Fatalf("avg = %v %v", got, ok)
		}
		for _, tc := range isolationCases {
			t.Run(tc.name, func(t *testing.T) {
				tc.other.set(t, k)
				_, ok, err := a.Get()
				must(t, err)
				if want := tc.other == baseScope; ok != want {
					t.Fatalf("visible=%v, want %v", ok, want)
				}
			})
		}
		baseScope.set(t, k)
		must(t, a.Clear())
		if _, ok, _ := a.Get(); ok {
			t.Fatal("result after clear")
		}
	})
}

func TestOperatorIsolation(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		b, k1, _ := setup(t, nb)
		k2, err := state.NewKeyed(b, "op2")
		must(t, err)
		v1, err := state.Value(k1, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		must(t, err)
		v2, err := state.Value(k2, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		must(t, err)
		baseScope.set(t, k1)
		baseScope.set(t, k2)
		must(t, v1.Update(1))
		if _, ok, _ := v2.Value(); ok {
			t.Fatal("operator op2 sees op's state")
		}
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		b, k, _ := setup(t, nb)
		cases := []struct {
			name string
			err  error
			want error
		}{
			{"key group out of range", k.SetCurrentKey([]byte("a"), 128), state.ErrKeyGroupOutOfRange},
			{"empty name", func() error {
				_, err := state.Value(k, state.ValueDescriptor[int64]{Codec: state.Int64Codec{}})
				return err
			}(), state.ErrInvalidDescriptor},
			{"reserved name", func() error {
				_, err := state.Value(k, state.ValueDescriptor[int64]{Name: "_timers/x", Codec: state.Int64Codec{}})
				return err
			}(), state.ErrInvalidDescriptor},
			{"no codec", func() error {
				_, err := state.List(k, state.ListDescriptor[int64]{Name: "l"})
				return err
			}(), state.ErrInvalidDescriptor},
			{"sub-millisecond ttl", func() error {
				_, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}, TTL: state.TTLConfig{TTL: 1}})
				return err
			}(), state.ErrInvalidDescriptor},
			{"kind conflict", func() error {
				if _, err := state.Value(k, state.ValueDescriptor[int64]{Name: "x", Codec: state.Int64Codec{}}); err != nil {
					return err
				}
				_, err := state.List(k, state.ListDescriptor[int64]{Name: "x", Codec: state.Int64Codec{}})
				return err
			}(), state.ErrStateConflict},
			{"bad range", b.DeleteKeyGroups(state.KeyGroupRange{Start: 5, End: 4}), state.ErrKeyGroupOutOfRange},
		}
		for _, tc := range cases {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		must(t, b.Close())
		must(t, b.Close()) // idempotent
		if _, err := b.CleanupStep(1); !errors.Is(err, state.ErrClosed) {
			t.Errorf("after close: %v", err)
		}
	})
}

func TestCodecs(t *testing.T) {
	t.Parallel()
	type pair struct {
		A int32
		B float64
	}
	check := func(t *testing.T, name string, roundTrip func() (bool, error)) {
		t.Helper()
		ok, err := roundTrip()
		if err != nil || !ok {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
	}
	check(t, "int64", func() (bool, error) { return roundTrip(state.Int64Codec{}, -5) })
	check(t, "float64", func() (bool, error) { return roundTrip(state.Float64Codec{}, 2.5) })
	check(t, "string", func() (bool, error) { return roundTrip(state.StringCodec{}, "héllo") })
	check(t, "binary struct", func() (bool, error) { return roundTrip(state.BinaryCodec[pair]{}, pair{-3, 1.5}) })
	check(t, "bytes", func() (bool, error) {
		b, err := state.BytesCodec{}.Append(nil, []byte("ab"))
		if err != nil {
			return false, err
		}
		got, err := state.BytesCodec{}.Decode(b)
		return string(got) == "ab", err
	})
	if _, err := (state.Int64Codec{}).Decode([]byte{1}); !errors.Is(err, state.ErrCorrupt) {
		t.Errorf("short int64: %v", err)
	}
	if _, err := (state.BinaryCodec[[]int]{}).Append(nil, []int{1}); err == nil {
		t.Error("binary codec accepted a slice")
	}
}

func roundTrip[T comparable](c state.Codec[T], v T) (bool, error) {
	b, err := c.Append(nil, v)
	if err != nil {
		return false, err
	}
	got, err := c.Decode(b)
	return got == v, err
}

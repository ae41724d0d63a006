package state_test

import (
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/state"
)

// Helpers of the snapshot and restore tests.

var backendKinds = []string{"heap", "pebble"}

// openBackend opens a backend of kind ("heap" or "pebble"), closed when
// the test ends.
func openBackend(t *testing.T, kind string, cfg state.Config) state.Backend {
	t.Helper()
	var (
		b   state.Backend
		err error
	)
	switch kind {
	case "heap":
		b, err = state.NewHeap(cfg)
	case "pebble":
		b, err = state.OpenPebble(t.TempDir(), cfg)
	default:
		t.Fatalf("unknown backend %q", kind)
	}
	must(t, err)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func blobFileStore(tb testing.TB) (*blob.FileStore, error) {
	st, err := blob.OpenFile(tb.TempDir())
	if err == nil {
		tb.Cleanup(func() { _ = st.Close() })
	}
	return st, err
}

func fileStore(t *testing.T) *blob.FileStore {
	t.Helper()
	st, err := blob.OpenFile(t.TempDir())
	must(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// s3Store opens a store on an in-process S3 server (gofakes3).
func s3Store(t *testing.T) blob.Store {
	t.Helper()
	srv := testkit.StartS3(t)
	u := fmt.Sprintf("s3://%s/snapshots?endpoint=%s&region=%s&path_style=true", srv.Bucket, srv.Endpoint, srv.Region)
	st, err := blob.Open(u, blob.Options{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	must(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// readObject returns an object's content.
func readObject(t *testing.T, st blob.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	must(t, err)
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	must(t, err)
	return b
}

const snapTTL = 10 * time.Second

// stateSet is every kind of state the snapshot tests write, plus timers.
type stateSet struct {
	k      *state.Keyed
	v      *state.ValueState[int64]
	l      *state.ListState[string]
	m      *state.MapState[string, int64]
	r      *state.ReducingState[int64]
	ttl    *state.ValueState[string] // TTL, no cleanup: expired entries stay in snapshots
	snap   *state.ValueState[string] // TTL with CleanupFullSnapshot
	timers *state.TimerService
}

func register(t *testing.T, b state.Backend) *stateSet {
	t.Helper()
	k, err := state.NewKeyed(b, "op")
	must(t, err)
	s := &stateSet{k: k}
	s.v, err = state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
	must(t, err)
	s.l, err = state.List(k, state.ListDescriptor[string]{Name: "l", Codec: state.StringCodec{}})
	must(t, err)
	s.m, err = state.Map(k, state.MapDescriptor[string, int64]{Name: "m", KeyCodec: state.StringCodec{}, ValueCodec: state.Int64Codec{}})
	must(t, err)
	s.r, err = state.Reducing(k, state.ReducingDescriptor[int64]{Name: "r", Codec: state.Int64Codec{},
		Reduce: func(a, b int64) int64 { return a + b }})
	must(t, err)
	s.ttl, err = state.Value(k, state.ValueDescriptor[string]{Name: "ttl", Codec: state.StringCodec{},
		TTL: state.TTLConfig{TTL: snapTTL}})
	must(t, err)
	s.snap, err = state.Value(k, state.ValueDescriptor[string]{Name: "snap", Codec: state.StringCodec{},
		TTL: state.TTLConfig{TTL: snapTTL, CleanupFullSnapshot: true}})
	must(t, err)
	s.timers, err = k.TimerService("t")
	must(t, err)
	return s
}

const keysPerGroup = 2

func (s *stateSet) at(t *testing.T, kg uint16, i int) {
	t.Helper()
	must(t, s.k.SetCurrentKey(fmt.Appendf(nil, "k%d-%d", kg, i), kg))
	s.k.SetCurrentNamespace([]byte("w"))
}

// eventTS and procTS are the timers of key i of key group kg.
func eventTS(kg uint16, i int) int64 { return int64(kg)*100 + int64(i) }
func procTS(kg uint16) int64         { return start.UnixMilli() + 100_000 + int64(kg) }

// populate writes every state and two timers for keysPerGroup keys in
// every key group of b. The "snap" entries of even key groups are written
// 11 s earlier than everything else, so they have expired by the end (and
// snapshots leave them out); "ttl" entries are live.
func populate(t *testing.T, b state.Backend, clk *clockwork.FakeClock) {
	t.Helper()
	s := register(t, b)
	r := b.KeyGroups()
	for kg := r.Start; kg < r.End; kg++ {
		if kg%2 != 0 {
			continue
		}
		for i := range keysPerGroup {
			s.at(t, kg, i)
			must(t, s.snap.Update("old"))
		}
	}
	clk.Advance(snapTTL + time.Second)
	for kg := r.Start; kg < r.End; kg++ {
		for i := range keysPerGroup {
			s.at(t, kg, i)
			must(t, s.v.Update(int64(kg)*10+int64(i)))
			must(t, s.l.AddAll([]string{"a", fmt.Sprint(kg)}))
			must(t, s.m.Put("x", int64(kg)))
			must(t, s.m.Put("", -int64(kg))) // a user key that encodes to nothing
			must(t, s.r.Add(int64(kg)))
			must(t, s.r.Add(1))
			must(t, s.ttl.Update("live"))
			if kg%2 == 1 {
				must(t, s.snap.Update("new"))
			}
			must(t, s.timers.RegisterEventTimeTimer(eventTS(kg, i)))
		}
		must(t, s.timers.RegisterProcessingTimeTimer(procTS(kg)))
	}
}

// verify registers the states on b (restored from a populate over a
// range covering b's) and checks, through the handles, what populate
// wrote in b's key groups; then fires every timer and checks them; then
// lets the "ttl" entries expire.
func verify(t *testing.T, b state.Backend, clk *clockwork.FakeClock) {
	t.Helper()
	s := register(t, b)
	r := b.KeyGroups()
	for kg := r.Start; kg < r.End; kg++ {
		for i := range keysPerGroup {
			s.at(t, kg, i)
			if v, ok, err := s.v.Value(); err != nil || !ok || v != int64(kg)*10+int64(i) {
				t.Fatalf("kg %d key %d: value %d %v %v", kg, i, v, ok, err)
			}
			if l, err := s.l.Get(); err != nil || !slices.Equal(l, []string{"a", fmt.Sprint(kg)}) {
				t.Fatalf("kg %d: list %v %v", kg, l, err)
			}
			for mk, want := range map[string]int64{"x": int64(kg), "": -int64(kg)} {
				if v, ok, err := s.m.Get(mk); err != nil || !ok || v != want {
					t.Fatalf("kg %d: map[%q] = %d %v %v", kg, mk, v, ok, err)
				}
			}
			if v, ok, err := s.r.Get(); err != nil || !ok || v != int64(kg)+1 {
				t.Fatalf("kg %d: reducing %d %v %v", kg, v, ok, err)
			}
			if v, ok, err := s.ttl.Value(); err != nil || !ok || v != "live" {
				t.Fatalf("kg %d: ttl value %q %v %v", kg, v, ok, err)
			}
			v, ok, err := s.snap.Value()
			must(t, err)
			if want := kg%2 == 1; ok != want || (ok && v != "new") {
				t.Fatalf("kg %d: snap value %q present=%v", kg, v, ok)
			}
		}
	}
	// Timers come back as timers, in key order per timestamp.
	var fired []string
	must(t, s.timers.AdvanceWatermark(1<<40, func(tm state.Timer) error {
		fired = append(fired, fmt.Sprintf("%d/%d/%s/%s", tm.Timestamp, tm.KeyGroup, tm.Key, tm.Namespace))
		return nil
	}))
	var want []string
	for kg := r.Start; kg < r.End; kg++ {
		for i := range keysPerGroup {
			want = append(want, fmt.Sprintf("%d/%d/k%d-%d/w", eventTS(kg, i), kg, kg, i))
		}
	}
	if !slices.Equal(fired, want) {
		t.Fatalf("event timers fired %d, want %d\n got %.5q\nwant %.5q", len(fired), len(want), fired, want)
	}
	nproc := 0
	must(t, s.timers.AdvanceProcessingTime(procTS(r.End), func(tm state.Timer) error {
		if tm.Timestamp != procTS(tm.KeyGroup) {
			t.Errorf("processing timer %d in key group %d", tm.Timestamp, tm.KeyGroup)
		}
		nproc++
		return nil
	}))
	if nproc != r.Len() {
		t.Fatalf("processing timers fired %d, want %d", nproc, r.Len())
	}
	// The TTL timestamps came back unchanged: "ttl" expires TTL after it
	// was written, not after the restore.
	clk.Advance(snapTTL)
	s.at(t, r.Start, 0)
	if _, ok, err := s.ttl.Value(); err != nil || ok {
		t.Fatalf("ttl value visible %v after its ttl: %v", ok, err)
	}
}

// inRange keeps the entries of key groups r.
func inRange(es []entry, r state.KeyGroupRange) []entry {
	var out []entry
	for _, e := range es {
		if r.Contains(e.KeyGroup) {
			out = append(out, e)
		}
	}
	return out
}

// mustEqualEntries fails with the first difference.
func mustEqualEntries(t *testing.T, got, want []entry) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("entry %d differs:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
}

// upload takes a full snapshot of b's whole range and uploads it.
func upload(t *testing.T, b state.Backend, st blob.Store, key string) *clusterv1.FullStateHandle {
	t.Helper()
	s, err := state.TakeFullSnapshot(b, b.KeyGroups())
	must(t, err)
	defer func() { must(t, s.Release()) }()
	h, err := s.Upload(t.Context(), st, key)
	must(t, err)
	if s.Size() != h.GetSize() {
		t.Fatalf("Size() = %d, handle %d", s.Size(), h.GetSize())
	}
	return h
}

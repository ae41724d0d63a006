package state_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

// fill writes one value, one list, two map entries and one timer for one
// key in each of the 128 key groups.
func fill(t *testing.T, b state.Backend) {
	t.Helper()
	k, err := state.NewKeyed(b, "op")
	must(t, err)
	v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
	must(t, err)
	l, err := state.List(k, state.ListDescriptor[string]{Name: "l", Codec: state.StringCodec{}})
	must(t, err)
	m, err := state.Map(k, state.MapDescriptor[string, int64]{Name: "m", KeyCodec: state.StringCodec{}, ValueCodec: state.Int64Codec{}})
	must(t, err)
	ts, err := k.TimerService("t")
	must(t, err)
	for kg := range uint16(128) {
		must(t, k.SetCurrentKey([]byte(fmt.Sprintf("key-%d", kg)), kg))
		k.SetCurrentNamespace([]byte{0, byte(kg)})
		must(t, v.Update(int64(kg)))
		must(t, l.AddAll([]string{"x", "y"}))
		must(t, m.Put("a", 1))
		must(t, m.Put("b", 2))
		must(t, ts.RegisterEventTimeTimer(int64(kg)))
	}
}

const entriesPerGroup = 5 // v, l, m×2, timer

func TestKeyGroupRange(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		b := nb(t, state.Config{})
		fill(t, b)
		all := collect(t, b, b.KeyGroups(), false)
		if len(all) != 128*entriesPerGroup {
			t.Fatalf("%d entries", len(all))
		}
		if !slices.IsSortedFunc(all, func(x, y entry) int { return int(x.KeyGroup) - int(y.KeyGroup) }) {
			t.Fatal("entries not in key-group order")
		}
		part := collect(t, b, state.KeyGroupRange{Start: 10, End: 20}, false)
		if len(part) != 10*entriesPerGroup || part[0].KeyGroup != 10 || part[len(part)-1].KeyGroup != 19 {
			t.Fatalf("range [10,20): %d entries, first %d", len(part), part[0].KeyGroup)
		}
		// Cut [32, 64) out, as a rescale hands it to another subtask.
		must(t, b.DeleteKeyGroups(state.KeyGroupRange{Start: 32, End: 64}))
		rest := collect(t, b, b.KeyGroups(), false)
		if len(rest) != 96*entriesPerGroup {
			t.Fatalf("%d entries after cut-out", len(rest))
		}
		for _, e := range rest {
			if e.KeyGroup >= 32 && e.KeyGroup < 64 {
				t.Fatalf("entry left in cut range: %+v", e)
			}
		}
		// The neighbours are intact and readable through handles.
		k, err := state.NewKeyed(b, "op")
		must(t, err)
		v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		must(t, err)
		for _, kg := range []uint16{31, 32, 63, 64} {
			must(t, k.SetCurrentKey([]byte(fmt.Sprintf("key-%d", kg)), kg))
			k.SetCurrentNamespace([]byte{0, byte(kg)})
			_, ok, err := v.Value()
			must(t, err)
			if want := kg < 32 || kg >= 64; ok != want {
				t.Errorf("key group %d: present=%v want %v", kg, ok, want)
			}
		}
	})
}

// TestSnapshotFormatAcrossBackends: the same writes give byte-identical
// entries, in the same order, on both backends (savepoints are portable).
func TestSnapshotFormatAcrossBackends(t *testing.T) {
	t.Parallel()
	h, err := state.NewHeap(state.Config{})
	must(t, err)
	defer func() { _ = h.Close() }()
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	defer func() { must(t, p.Close()) }()
	fill(t, h)
	fill(t, p)
	a, b := collect(t, h, h.KeyGroups(), true), collect(t, p, p.KeyGroups(), true)
	if !sortedEqual(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("entry %d differs:\nheap   %+v\npebble %+v", i, a[i], b[i])
			}
		}
		t.Fatalf("heap %d entries, pebble %d", len(a), len(b))
	}
}

// TestPebbleCheckpoint (pebble only: the heap has no files): a checkpoint
// opens as a backend with the same state and timers.
func TestPebbleCheckpoint(t *testing.T) {
	t.Parallel()
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	fill(t, p)
	dir := filepath.Join(t.TempDir(), "chk-1")
	must(t, p.Checkpoint(dir))
	want := collect(t, p, p.KeyGroups(), false)
	must(t, p.Close())

	r, err := state.OpenPebble(dir, state.Config{})
	must(t, err)
	defer func() { must(t, r.Close()) }()
	if got := collect(t, r, r.KeyGroups(), false); !sortedEqual(got, want) {
		t.Fatalf("restored %d entries, want %d", len(got), len(want))
	}
	k, err := state.NewKeyed(r, "op")
	must(t, err)
	ts, err := k.TimerService("t")
	must(t, err)
	n := 0
	must(t, ts.AdvanceWatermark(1000, func(state.Timer) error { n++; return nil }))
	if n != 128 {
		t.Fatalf("restored timers fired %d times", n)
	}
}

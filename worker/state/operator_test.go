package state_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

func TestOperatorState(t *testing.T) {
	t.Parallel()
	s := state.NewOperatorStore(nil)
	l, err := state.OperatorList(s, "offsets", state.RoundRobin, state.Int64Codec{})
	must(t, err)
	l.Add(1)
	l.Add(2)
	bc, err := state.BroadcastMap(s, "rules", state.StringCodec{}, state.Int64Codec{})
	must(t, err)
	bc.Put("b", 2)
	bc.Put("a", 1)
	bc.Remove("zz")
	if _, err := state.OperatorList(s, "offsets", state.RoundRobin, state.Int64Codec{}); !errors.Is(err, state.ErrStateConflict) {
		t.Fatalf("double registration: %v", err)
	}
	snaps, err := s.Snapshot()
	must(t, err)
	if len(snaps) != 2 || snaps[1].Name != "rules" || string(snaps[1].Items[0].Key) != "a" {
		t.Fatalf("snapshot: %+v", snaps)
	}

	r := state.NewOperatorStore(snaps)
	l2, err := state.OperatorList(r, "offsets", state.RoundRobin, state.Int64Codec{})
	must(t, err)
	if !slices.Equal(l2.Get(), []int64{1, 2}) {
		t.Fatalf("restored list %v", l2.Get())
	}
	if _, err := state.OperatorList(r, "rules", state.Union, state.Int64Codec{}); !errors.Is(err, state.ErrStateConflict) {
		t.Fatalf("restored with another redistribution: %v", err)
	}
	// "rules" not registered again: still carried by the next snapshot.
	again, err := r.Snapshot()
	must(t, err)
	if len(again) != 2 {
		t.Fatalf("unregistered restored state dropped: %+v", again)
	}
	b2, err := state.BroadcastMap(state.NewOperatorStore(snaps), "rules", state.StringCodec{}, state.Int64Codec{})
	must(t, err)
	if v, ok := b2.Get("b"); !ok || v != 2 || b2.Len() != 2 {
		t.Fatalf("restored broadcast: %v %v %d", v, ok, b2.Len())
	}
}

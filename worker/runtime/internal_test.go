package runtime

import (
	"context"
	"testing"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestValve(t *testing.T) {
	t.Parallel()
	type step struct {
		ch     int
		wm     int64 // ignored for end
		end    bool
		want   int64
		wantOK bool
	}
	for _, tc := range []struct {
		name     string
		channels int
		steps    []step
	}{
		{"single channel forwards every advance", 1, []step{
			{ch: 0, wm: 5, want: 5, wantOK: true},
			{ch: 0, wm: 5},
			{ch: 0, wm: 3},
			{ch: 0, wm: 9, want: 9, wantOK: true},
		}},
		{"min over channels", 3, []step{
			{ch: 0, wm: 10},
			{ch: 1, wm: 20},
			{ch: 2, wm: 5, want: 5, wantOK: true},
			{ch: 2, wm: 30, want: 10, wantOK: true},
			{ch: 0, wm: 25, want: 20, wantOK: true},
		}},
		{"an ended channel stops holding back", 2, []step{
			{ch: 0, wm: 10},
			{ch: 1, end: true, want: 10, wantOK: true},
			{ch: 1, wm: 50}, // after end: ignored
			{ch: 0, wm: 11, want: 11, wantOK: true},
			{ch: 0, end: true},
		}},
		{"max watermark then end", 2, []step{
			{ch: 0, wm: MaxWatermark},
			{ch: 0, end: true},
			{ch: 1, wm: MaxWatermark, want: MaxWatermark, wantOK: true},
			{ch: 1, end: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newValve(tc.channels)
			for i, s := range tc.steps {
				var r valveOutput
				if s.end {
					r = v.end(s.ch)
				} else {
					r = v.watermark(s.ch, s.wm)
				}
				if r.active || r.idle {
					t.Fatalf("step %d (%+v): status change %+v", i, s, r)
				}
				got, ok := r.wm, r.advanced
				if ok != s.wantOK || (ok && got != s.want) {
					t.Fatalf("step %d (%+v): got %d, %v; want %d, %v", i, s, got, ok, s.want, s.wantOK)
				}
			}
		})
	}
}

// TestValveIdle runs the input side of a task through idleness: an idle
// channel does not hold the output back, all idle makes the output idle,
// and a channel returning with an older watermark does not move the output
// back (it rejoins once it catches up).
func TestValveIdle(t *testing.T) {
	t.Parallel()
	const (
		wm    = iota // watermark
		idle         // status idle
		activ        // status active
		end          // end of input
	)
	type step struct {
		ch, kind int
		wm       int64
		want     valveOutput
	}
	steps := []step{
		{ch: 0, kind: wm, wm: 10},
		{ch: 0, kind: idle}, // channel 1 has no watermark yet
		{ch: 1, kind: wm, wm: 20, want: valveOutput{wm: 20, advanced: true}}, // channel 0 idle: left out
		{ch: 1, kind: wm, wm: 30, want: valveOutput{wm: 30, advanced: true}},
		{ch: 1, kind: idle, want: valveOutput{wm: 30, idle: true}}, // all idle
		{ch: 1, kind: idle, want: valveOutput{wm: 30}},             // repeated: nothing
		{ch: 0, kind: activ, want: valveOutput{wm: 30, active: true}},
		{ch: 0, kind: wm, wm: 15, want: valveOutput{wm: 30}}, // behind the output: unaligned
		{ch: 0, kind: wm, wm: 25, want: valveOutput{wm: 30}},
		{ch: 0, kind: wm, wm: 40, want: valveOutput{wm: 40, advanced: true}}, // caught up; channel 1 idle
		{ch: 1, kind: activ, want: valveOutput{wm: 40}},                      // 30 < 40: unaligned
		{ch: 0, kind: wm, wm: 50, want: valveOutput{wm: 50, advanced: true}},
		{ch: 1, kind: wm, wm: 45, want: valveOutput{wm: 50}},
		{ch: 1, kind: wm, wm: 60, want: valveOutput{wm: 50}}, // rejoins at 60 >= 50: min is 50
		{ch: 0, kind: wm, wm: 70, want: valveOutput{wm: 60, advanced: true}},
		{ch: 0, kind: idle, want: valveOutput{wm: 60}},
		{ch: 1, kind: idle, want: valveOutput{wm: 70, advanced: true, idle: true}}, // all idle: flush to the max
		{ch: 0, kind: end, want: valveOutput{wm: MaxWatermark, advanced: true, active: true}},
		{ch: 1, kind: end}, // last channel: the task finishes
	}
	v := newValve(2)
	for i, s := range steps {
		var got valveOutput
		switch s.kind {
		case wm:
			got = v.watermark(s.ch, s.wm)
		case idle, activ:
			got = v.status(s.ch, s.kind == idle)
		case end:
			got = v.end(s.ch)
		}
		if !got.advanced {
			got.wm = s.want.wm // only compared when sent
		}
		if got != s.want {
			t.Fatalf("step %d (%+v): got %+v, want %+v", i, s, got, s.want)
		}
	}
	if v.open != 0 {
		t.Errorf("open = %d after both ended", v.open)
	}
}

func TestHashSplitStringKeys(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	keys := []string{"apple", "banana", "", "cherry", "apple", "durian", "x"}
	valid := []bool{true, true, false, true, true, true, true}
	bld.Field(0).(*array.StringBuilder).AppendValues(keys, valid)
	for i := range keys {
		bld.Field(1).(*array.Int32Builder).Append(int32(i))
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()

	hashes := make([]uint32, len(keys))
	if err := HashKeys(rec, []int{0, 1}, hashes); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		h := Murmur3(k, 0)
		if !valid[i] {
			h = murmur3Null(0)
		}
		if want := murmur3U64(uint64(i), h); hashes[i] != want {
			t.Errorf("row %d: hash %#x, want %#x", i, hashes[i], want)
		}
	}

	// Split across 3 receivers and check every row went to its owner.
	const maxP, p = 16, 3
	gates := make([]*localGate, p)
	senders := make([]Sender, p)
	for i := range gates {
		gates[i] = &localGate{ch: make(chan envelope, 8), channels: 1}
		senders[i] = localSender{gate: gates[i]}
	}
	w := &edgeWriter{senders: senders, hash: &hashSplitter{keys: []int{0}, maxP: maxP, p: p, mem: mem, rows: make([][]int32, p)}}
	if err := w.hash.split(context.Background(), rec, w); err != nil {
		t.Fatal(err)
	}
	total := 0
	for to, g := range gates {
		for len(g.ch) > 0 {
			env := <-g.ch
			b := env.el.Batch
			total += int(b.NumRows())
			ks := b.Column(0).(*array.String)
			for i := range ks.Len() {
				h := murmur3Null(0)
				if ks.IsValid(i) {
					h = Murmur3(ks.Value(i), 0)
				}
				if owner := int(h%maxP) * p / maxP; owner != to {
					t.Errorf("key %q went to %d, owner is %d", ks.Value(i), to, owner)
				}
			}
			b.Release()
		}
	}
	if total != len(keys) {
		t.Errorf("split %d rows into %d", len(keys), total)
	}
}

// Not parallel: AllocsPerRun needs the process to itself.
func TestHotPathsDoNotAllocate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	for i := range 1000 {
		bld.Field(0).(*array.StringBuilder).Append("key-" + string(rune('a'+i%26)))
		bld.Field(1).(*array.Int64Builder).Append(int64(i))
		bld.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(i * 1e6))
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()

	hashes := make([]uint32, rec.NumRows())
	if n := testing.AllocsPerRun(20, func() { _ = HashKeys(rec, []int{0, 1, 2}, hashes) }); n > 0 {
		t.Errorf("HashKeys allocates %.0f times per batch of 1000 rows", n)
	}
	enc := jsonrow.NewEncoder(schema)
	enc.Reset(rec)
	buf := make([]byte, 0, 1<<20)
	if n := testing.AllocsPerRun(20, func() {
		b := buf[:0]
		for i := range int(rec.NumRows()) {
			b = enc.AppendRow(b, i)
		}
	}); n > 0 {
		t.Errorf("encoding a batch of 1000 rows allocates %.0f times", n)
	}
}

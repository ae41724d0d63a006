package eventtime_test

import (
	"testing"
	"time"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// TestHotPathsDoNotAllocate pins STYLE §18: nothing per batch or per
// watermark allocates once warm.
func TestHotPathsDoNotAllocate(t *testing.T) {
	// Not parallel: AllocsPerRun counts allocations of the whole process.
	ts := batch(4096)
	mem := newAlloc(t)
	schema := testSchema()
	rec := record(mem, schema, ts, make([]bool, len(ts)))
	defer rec.Release()

	bounded := eventtime.NewBoundedOutOfOrderness(time.Second)
	punct := eventtime.NewPunctuated(func(int, int64) (int64, bool) { return 0, false })
	column := eventtime.NewColumnPunctuated("wm")
	mux := eventtime.NewMultiplexer(time.Minute)
	split, err := mux.AddSplit("p0", eventtime.NewColumnPunctuated("wm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mux.AddSplit("p1", eventtime.NewMonotonous()); err != nil {
		t.Fatal(err)
	}
	merger := eventtime.NewInputMerger(8)
	extract := eventtime.NewExtractor("ts")
	if _, err := extract.Extract(rec); err != nil { // warm: resolves the column, sizes the buffer
		t.Fatal(err)
	}
	tick := eventtime.NewPeriodic(eventtime.DefaultInterval, time.Unix(0, 0))
	now := time.Unix(0, 0)
	var i int64

	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"BoundedOutOfOrderness.OnEvents", func() { bounded.OnEvents(ts) }},
		{"BoundedOutOfOrderness.OnPeriodicEmit", func() { bounded.OnPeriodicEmit() }},
		{"Punctuated.OnEvents", func() { punct.OnEvents(ts) }},
		{"ColumnPunctuated.Bind+OnEvents", func() {
			if err := column.Bind(rec); err != nil {
				t.Fatal(err)
			}
			column.OnEvents(ts)
		}},
		{"Split.OnBatch", func() {
			if _, _, err := split.OnBatch(rec, ts); err != nil {
				t.Fatal(err)
			}
		}},
		{"Multiplexer.OnPeriodicEmit", func() {
			now = now.Add(time.Second)
			mux.OnPeriodicEmit(now)
		}},
		{"Periodic.Due", func() {
			now = now.Add(time.Second)
			tick.Due(now)
		}},
		{"InputMerger.Update", func() {
			i++
			merger.Update(int(i%8), i)
		}},
		{"InputMerger.SetIdle", func() {
			i++
			merger.SetIdle(int(i%8), i%3 == 0)
		}},
		{"Extractor.Extract", func() {
			if _, err := extract.Extract(rec); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, n)
		}
	}
}

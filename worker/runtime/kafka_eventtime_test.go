package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/runtime"
)

// wmRecorder is a sink that records rows and the watermarks it is given,
// with the fake clock's time of each, and every watermark that did not
// advance.
type wmRecorder struct {
	clock clockwork.Clock
	mu    struct {
		sync.Mutex
		rows      int
		wms       []int64
		at        []time.Time
		backwards []string
	}
}

func (r *wmRecorder) Open(context.Context) error                   { return nil }
func (r *wmRecorder) Finish(context.Context, runtime.Output) error { return nil }
func (r *wmRecorder) Close() error                                 { return nil }

func (r *wmRecorder) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ runtime.Output) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.rows += int(rec.NumRows())
	return nil
}

func (r *wmRecorder) ProcessWatermark(_ context.Context, wm int64, _ runtime.Output) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.mu.wms); n > 0 && wm <= r.mu.wms[n-1] {
		r.mu.backwards = append(r.mu.backwards, fmt.Sprintf("%d after %d", wm, r.mu.wms[n-1]))
	}
	r.mu.wms = append(r.mu.wms, wm)
	r.mu.at = append(r.mu.at, r.clock.Now())
	return nil
}

func (r *wmRecorder) snapshot() (rows int, wms []int64, at []time.Time, backwards []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.rows, append([]int64(nil), r.mu.wms...), append([]time.Time(nil), r.mu.at...), append([]string(nil), r.mu.backwards...)
}

// TestKafkaWatermarksSkipIdlePartition reads a three-partition topic with
// bounded out-of-orderness (50 ms) and a 1 s idle timeout, on a fake
// clock. Partitions 0 and 1 get out-of-order records every round;
// partition 2 gets none. The watermark must stay back while partition 2
// is active (it has no watermark), advance once it turns idle, reach
// min over the active partitions of (max event time) - 50 - 1, and never
// go backwards.
func TestKafkaWatermarksSkipIdlePartition(t *testing.T) {
	t.Parallel()
	const (
		interval    = 200 * time.Millisecond
		idleTimeout = time.Second
		delay       = 50
		rounds      = 9 // > (interval + idleTimeout) / interval
	)
	k := testkit.StartKafka(t, testkit.WithTopics(3, "events"))
	producer := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mem := checked(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	clock := clockwork.NewFakeClockAt(t0)

	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "wm", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "src", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KafkaSource{KafkaSource: &sabotv1.KafkaSource{
				Brokers: k.Addrs,
				Topics:  []string{"events"},
				Columns: []*sabotv1.Column{
					{Name: "id", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
					{Name: "ts", Type: sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP},
				},
				EventTime: &sabotv1.EventTime{TimestampField: "ts", Watermark: &sabotv1.WatermarkStrategy{
					Kind:          &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: delay},
					IdleTimeoutMs: idleTimeout.Milliseconds(),
					IntervalMs:    interval.Milliseconds(),
				}},
			}}}},
			{Id: "sink", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{{From: "src", To: "sink", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &wmRecorder{clock: clock}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	cfg := runtime.Config{
		Graph: g, Allocator: mem, Clock: clock, PollTimeout: 20 * time.Millisecond,
		Logger: testkit.Logger(t, slog.LevelWarn),
	}
	runtime.SetOperatorHook(&cfg, func(v *jobgraph.Vertex, _ runtime.TaskInfo) runtime.Operator {
		if v.ID == "sink" {
			return rec
		}
		return nil
	})
	go func() { done <- runtime.Run(ctx, cfg) }()

	// Out-of-order event times per round, relative to the round's base.
	p0, p1 := []int64{30, 10, 20}, []int64{5, 25, 15}
	id := 0
	var base int64
	for r := range rounds {
		base = t0.UnixMilli() + int64(r+1)*10_000
		var recs []*kgo.Record
		for i := range p0 {
			for p, offs := range [][]int64{p0, p1} {
				id++
				v := `{"id":` + strconv.Itoa(id) + `,"ts":` + strconv.FormatInt(base+offs[i], 10) + `}`
				recs = append(recs, &kgo.Record{Topic: "events", Partition: int32(p), Value: []byte(v)})
			}
		}
		if err := producer.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// The sink sees a batch after the source fed its event times to
		// the split's generator: once all rows arrived, the next periodic
		// check sees this round's activity.
		testkit.Eventually(t, 10*time.Second, func() error {
			if rows, _, _, _ := rec.snapshot(); rows != id {
				return fmt.Errorf("%d rows, want %d", rows, id)
			}
			return nil
		})
		clock.Advance(interval)
	}
	// After the last advance the source's periodic step runs once more,
	// with partitions 0 and 1 active and partition 2 idle.
	want := min(base+p0[0], base+p1[1]) - delay - 1
	testkit.Eventually(t, 10*time.Second, func() error {
		_, wms, _, _ := rec.snapshot()
		if len(wms) == 0 || wms[len(wms)-1] != want {
			return fmt.Errorf("watermarks %v, want the last to be %d", wms, want)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	_, wms, at, backwards := rec.snapshot()
	if len(backwards) > 0 {
		t.Errorf("watermarks went backwards: %v", backwards)
	}
	// Partition 2 is first checked one interval after the source opened
	// and turns idle only once more than the idle timeout has passed
	// since: until then its missing watermark holds the output back.
	if earliest := t0.Add(interval + idleTimeout); !at[0].After(earliest) {
		t.Errorf("first watermark %d at %v, before partition 2 could be idle (after %v)", wms[0], at[0].Sub(t0), earliest.Sub(t0))
	}
	for _, wm := range wms {
		if wm > want {
			t.Errorf("watermark %d above the bound %d", wm, want)
		}
	}
}

// TestKafkaWatermarksPassIdleSubtask reads a two-partition topic with three
// source subtasks, so one subtask is assigned no partition, and sends the
// records through a rebalance exchange. The partition-less subtask never
// has a watermark; it must send IDLE so that the downstream task's
// watermark advances with the other two (without watermark status it
// would be held back for ever).
func TestKafkaWatermarksPassIdleSubtask(t *testing.T) {
	t.Parallel()
	const (
		interval = 200 * time.Millisecond
		delay    = 50
		rounds   = 3
	)
	k := testkit.StartKafka(t, testkit.WithTopics(2, "events"))
	producer := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mem := checked(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	clock := clockwork.NewFakeClockAt(t0)

	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "wm-idle", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "src", Parallelism: 3, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KafkaSource{KafkaSource: &sabotv1.KafkaSource{
				Brokers: k.Addrs,
				Topics:  []string{"events"},
				Columns: []*sabotv1.Column{
					{Name: "id", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
					{Name: "ts", Type: sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP},
				},
				EventTime: &sabotv1.EventTime{TimestampField: "ts", Watermark: &sabotv1.WatermarkStrategy{
					Kind:       &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: delay},
					IntervalMs: interval.Milliseconds(),
				}},
			}}}},
			{Id: "sink", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{{From: "src", To: "sink", Partitioning: sabotv1.Partitioning_PARTITIONING_REBALANCE}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &wmRecorder{clock: clock}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	cfg := runtime.Config{
		Graph: g, Allocator: mem, Clock: clock, PollTimeout: 20 * time.Millisecond,
		Logger: testkit.Logger(t, slog.LevelWarn),
	}
	runtime.SetOperatorHook(&cfg, func(v *jobgraph.Vertex, _ runtime.TaskInfo) runtime.Operator {
		if v.ID == "sink" {
			return rec
		}
		return nil
	})
	go func() { done <- runtime.Run(ctx, cfg) }()

	id := 0
	var maxTS [2]int64
	for r := range rounds {
		base := t0.UnixMilli() + int64(r+1)*10_000
		var recs []*kgo.Record
		for p := range 2 {
			for _, off := range []int64{30, 10, 20} {
				id++
				ts := base + off + int64(p)*100
				maxTS[p] = max(maxTS[p], ts)
				v := `{"id":` + strconv.Itoa(id) + `,"ts":` + strconv.FormatInt(ts, 10) + `}`
				recs = append(recs, &kgo.Record{Topic: "events", Partition: int32(p), Value: []byte(v)})
			}
		}
		if err := producer.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, func() error {
			if rows, _, _, _ := rec.snapshot(); rows != id {
				return fmt.Errorf("%d rows, want %d", rows, id)
			}
			return nil
		})
		clock.Advance(interval)
	}
	// Each partition's subtask emits max event time - delay - 1 at its
	// next periodic step; the sink's watermark is the minimum of the two.
	want := min(maxTS[0], maxTS[1]) - delay - 1
	testkit.Eventually(t, 10*time.Second, func() error {
		_, wms, _, _ := rec.snapshot()
		if len(wms) == 0 || wms[len(wms)-1] != want {
			return fmt.Errorf("watermarks %v, want the last to be %d", wms, want)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, _, _, backwards := rec.snapshot(); len(backwards) > 0 {
		t.Errorf("watermarks went backwards: %v", backwards)
	}
}

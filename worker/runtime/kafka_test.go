package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
	"github.com/sabotdev/sabot/worker/runtime"
)

func kafkaSourceVertex(id string, p int32, k *testkit.Kafka, topic string, policy sabotv1.BadRecordPolicy, cols ...*sabotv1.Column) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KafkaSource{
		KafkaSource: &sabotv1.KafkaSource{Brokers: k.Addrs, Topics: []string{topic}, Columns: cols, BadRecords: policy},
	}}}
}

func kafkaSinkVertex(id string, p int32, k *testkit.Kafka, topic string, keys ...string) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KafkaSink{
		KafkaSink: &sabotv1.KafkaSink{Brokers: k.Addrs, Topic: topic, KeyFields: keys},
	}}}
}

func column(name string, t sabotv1.ColumnType) *sabotv1.Column {
	return &sabotv1.Column{Name: name, Type: t}
}

// produceTo writes values to topic synchronously, value i to partition
// parts[i].
func produceTo(t *testing.T, cl *kgo.Client, topic string, parts []int32, values []string) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: parts[i], Value: []byte(v)}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// job is a Run in a goroutine, cancelled and waited for by t.Cleanup.
type job struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, set before done is closed
}

func startJob(t *testing.T, cfg runtime.Config) *job {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	j := &job{cancel: cancel, done: make(chan struct{})}
	go func() {
		j.err = runtime.Run(ctx, cfg)
		close(j.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-j.done
	})
	return j
}

// stop cancels the job and returns Run's result, failing t if Run takes
// longer than 5 s to return.
func (j *job) stop(t *testing.T) error {
	t.Helper()
	j.cancel()
	select {
	case <-j.done:
		return j.err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
		return nil
	}
}

// exited reports whether Run returned, and its result.
func (j *job) exited() (bool, error) {
	select {
	case <-j.done:
		return true, j.err
	default:
		return false, nil
	}
}

// TestKafkaToKafka runs kafka_source (3 partitions, 2 subtasks) → filter →
// map → rebalance → kafka_sink (keyed by id) and checks the sink topic
// holds exactly the expected rows, each once, with the expected keys.
func TestKafkaToKafka(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "orders"), testkit.WithTopics(2, "big"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "k2k", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			kafkaSourceVertex("src", 2, k, "orders", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_UNSPECIFIED,
				column("id", sabotv1.ColumnType_COLUMN_TYPE_INT64),
				column("name", sabotv1.ColumnType_COLUMN_TYPE_STRING),
				column("amount", sabotv1.ColumnType_COLUMN_TYPE_FLOAT64)),
			filterVertex("big", 2, "amount > 10"),
			mapVertex("shape", 2, "id", "id", "who", "name", "doubled", "amount * 2"),
			kafkaSinkVertex("out", 2, k, "big", "id"),
		},
		Edges: []*sabotv1.Edge{edge("src", "big", forward), edge("big", "shape", forward), edge("shape", "out", rebalance)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	j := startJob(t, runtime.Config{Graph: g, Allocator: checked(t), Logger: testkit.Logger(t, slog.LevelWarn), BatchSize: 16})

	const n = 300
	want := map[int64]float64{} // id → doubled
	var parts []int32
	var values []string
	for id := int64(1); id <= n; id++ {
		amount := float64(id%20) + 0.5
		parts = append(parts, int32(id%3))
		values = append(values, fmt.Sprintf(`{"id":%d,"name":"n%d","amount":%g}`, id, id, amount))
		if amount > 10 {
			want[id] = amount * 2
		}
	}
	// In two steps, so that the second arrives while the job runs.
	produceTo(t, cl, "orders", parts[:n/2], values[:n/2])
	produceTo(t, cl, "orders", parts[n/2:], values[n/2:])

	consumer := k.Client(t, kgo.ConsumeTopics("big"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	testkit.Eventually(t, 20*time.Second, func() error {
		if exited, err := j.exited(); exited {
			t.Fatalf("Run returned early: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		fs := consumer.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if len(got) < len(want) {
			return fmt.Errorf("%d records in the sink topic, want %d", len(got), len(want))
		}
		return nil
	})
	if err := j.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}

	seen := map[int64]int{}
	for _, r := range got {
		var row struct {
			ID      int64   `json:"id"`
			Who     string  `json:"who"`
			Doubled float64 `json:"doubled"`
		}
		if err := json.Unmarshal(r.Value, &row); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		seen[row.ID]++
		d, ok := want[row.ID]
		switch {
		case !ok:
			t.Errorf("row %s should have been filtered out", r.Value)
		case row.Doubled != d || row.Who != "n"+strconv.FormatInt(row.ID, 10):
			t.Errorf("row %s, want doubled %g and who n%d", r.Value, d, row.ID)
		}
		if string(r.Key) != strconv.FormatInt(row.ID, 10) {
			t.Errorf("row %s has key %q, want its id", r.Value, r.Key)
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("id %d written %d times, want once", id, seen[id])
		}
	}
}

// TestKafkaSkipsMalformedRecords: under bad_records SKIP a record that is
// not JSON is dropped with a log line naming topic, partition and offset;
// the records around it arrive and the job keeps running.
func TestKafkaSkipsMalformedRecords(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(2, "in"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	g := graph(t, 0, []*sabotv1.Vertex{
		kafkaSourceVertex("src", 1, k, "in", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_SKIP,
			column("id", sabotv1.ColumnType_COLUMN_TYPE_INT64)),
		printVertex("out", 1, ""),
	}, edge("src", "out", forward))
	var out, logs lines
	j := startJob(t, runtime.Config{
		Graph: g, Allocator: checked(t), PrintOut: &out,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	printedIDs := func() map[int64]int {
		ids := map[int64]int{}
		for _, l := range out.all() {
			ids[intOf(t, parsePrinted(t, l).row["id"])]++
		}
		return ids
	}
	waitFor := func(want ...int64) {
		t.Helper()
		testkit.Eventually(t, 10*time.Second, func() error {
			ids := printedIDs()
			for _, id := range want {
				if ids[id] != 1 {
					return fmt.Errorf("printed %v, want each of %v once", ids, want)
				}
			}
			return nil
		})
	}
	// Offsets on partition 1: 0, 1 (malformed), 2.
	produceTo(t, cl, "in", []int32{1, 1, 1, 0}, []string{`{"id":1}`, `{"id": 2,`, `{"id":3}`, `{"id":4}`})
	waitFor(1, 3, 4)
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, l := range logs.all() {
			if strings.Contains(l, "skipped malformed record") &&
				strings.Contains(l, "topic=in") && strings.Contains(l, "partition=1") && strings.Contains(l, "offset=1") {
				return nil
			}
		}
		return fmt.Errorf("no log line names in/1 offset 1: %q", logs.all())
	})
	// Still running: a later record arrives too.
	produceTo(t, cl, "in", []int32{1}, []string{`{"id":5}`})
	waitFor(1, 3, 4, 5)
	if err := j.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if ids := printedIDs(); len(ids) != 4 {
		t.Errorf("printed %v, want ids 1, 3, 4, 5", ids)
	}
}

// TestKafkaMalformedRecordFailsJob: under the default policy (fail) a
// malformed record fails the source's task, naming it, and Run returns.
func TestKafkaMalformedRecordFailsJob(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	g := graph(t, 0, []*sabotv1.Vertex{
		kafkaSourceVertex("src", 1, k, "in", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_UNSPECIFIED,
			column("id", sabotv1.ColumnType_COLUMN_TYPE_INT64)),
		printVertex("out", 1, ""),
	}, edge("src", "out", forward))
	produceTo(t, cl, "in", []int32{0, 0}, []string{`{"id":1}`, `not json`})
	var out lines
	err := runWithin(t, 10*time.Second, runtime.Config{Graph: g, Allocator: checked(t), PrintOut: &out})
	var te *runtime.TaskError
	if !errors.As(err, &te) || te.Vertex != "src" || !errors.Is(err, kafka.ErrMalformed) {
		t.Fatalf("Run = %v, want a TaskError of vertex src matching kafka.ErrMalformed", err)
	}
	var re *kafka.RecordError
	if !errors.As(err, &re) || re.Topic != "in" || re.Partition != 0 || re.Offset != 1 {
		t.Errorf("Run = %v, want a RecordError for in/0 offset 1", err)
	}
}

// TestKafkaUnknownTopicFailsOpen: a topic that does not exist fails the
// job at open with kafka.ErrUnknownTopic rather than idling.
func TestKafkaUnknownTopicFailsOpen(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t)
	g := graph(t, 0, []*sabotv1.Vertex{
		kafkaSourceVertex("src", 1, k, "missing", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_UNSPECIFIED,
			column("id", sabotv1.ColumnType_COLUMN_TYPE_INT64)),
		printVertex("out", 1, ""),
	}, edge("src", "out", forward))
	err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, Allocator: checked(t), PrintOut: &lines{}})
	if !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Fatalf("Run = %v, want kafka.ErrUnknownTopic", err)
	}
}

// TestSequenceToKafkaFixedPartitioner: a bounded job into a Kafka sink
// ends with Run returning nil once the sink flushed at end of input (every
// row acknowledged, nothing left for Close to abandon); with the fixed
// partitioner subtask i writes partition i.
func TestSequenceToKafkaFixedPartitioner(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(2, "seq"))
	sink := kafkaSinkVertex("out", 2, k, "seq")
	sink.GetOperator().GetKafkaSink().Partitioner = sabotv1.KafkaPartitioner_KAFKA_PARTITIONER_FIXED
	const n = 100
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 1, ptr[int64](n), 0), sink}, edge("seq", "out", forward))
	if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, Allocator: checked(t), BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	// Run returned after Finish flushed: every record is readable now.
	consumer := k.Client(t, kgo.ConsumeTopics("seq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var values []int64
	testkit.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var row struct {
				Value int64 `json:"value"`
			}
			if err := json.Unmarshal(r.Value, &row); err != nil {
				t.Errorf("record %q: %v", r.Value, err)
				return
			}
			// The sequence splits 1..n contiguously: subtask 0 has the
			// first half.
			want := int32(0)
			if row.Value > n/2 {
				want = 1
			}
			if r.Partition != want {
				t.Errorf("value %d on partition %d, want %d", row.Value, r.Partition, want)
			}
			values = append(values, row.Value)
		})
		if len(values) < n {
			return fmt.Errorf("%d records, want %d", len(values), n)
		}
		return nil
	})
	checkExactlyOnce(t, values, 1, n)
}

// TestKafkaDeadLetter: under bad_records DEAD_LETTER the malformed record
// goes, unchanged, to the dead-letter topic and the good ones downstream.
func TestKafkaDeadLetter(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in", "dlq"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	src := kafkaSourceVertex("src", 1, k, "in", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_DEAD_LETTER,
		column("id", sabotv1.ColumnType_COLUMN_TYPE_INT64))
	src.GetOperator().GetKafkaSource().DeadLetterTopic = "dlq"
	g := graph(t, 0, []*sabotv1.Vertex{src, printVertex("out", 1, "")}, edge("src", "out", forward))
	// Produced before the job starts, so the first poll finds them well
	// before its deadline (see the report on the connector's dead-letter
	// flush under the poll deadline).
	produceTo(t, cl, "in", []int32{0, 0, 0}, []string{`{"id":1}`, `{"id":"x"}`, `{"id":3}`})
	var out lines
	j := startJob(t, runtime.Config{Graph: g, Allocator: checked(t), PrintOut: &out, PollTimeout: 5 * time.Second})
	testkit.Eventually(t, 10*time.Second, func() error {
		if exited, err := j.exited(); exited {
			t.Fatalf("Run returned early: %v", err)
		}
		if got := len(out.all()); got != 2 {
			return fmt.Errorf("%d rows printed, want 2", got)
		}
		return nil
	})
	consumer := k.Client(t, kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var dead []*kgo.Record
	testkit.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { dead = append(dead, r) })
		if len(dead) != 1 {
			return fmt.Errorf("%d dead-letter records, want 1", len(dead))
		}
		return nil
	})
	if string(dead[0].Value) != `{"id":"x"}` {
		t.Errorf("dead letter %q, want the malformed record", dead[0].Value)
	}
	if err := j.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	for _, l := range out.all() {
		if id := intOf(t, parsePrinted(t, l).row["id"]); id != 1 && id != 3 {
			t.Errorf("printed id %d, want 1 and 3", id)
		}
	}
}

// TestKafkaStartOffsets: a manifest with start: offsets begins each listed
// partition at its offset and an unlisted one at the earliest; the sink
// gets exactly the records from there on.
func TestKafkaStartOffsets(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "in"), testkit.WithTopics(1, "out"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// 10 records per partition: value p*100+i at offset i.
	var parts []int32
	var values []string
	for p := range int32(3) {
		for i := range 10 {
			parts = append(parts, p)
			values = append(values, fmt.Sprintf(`{"v":%d}`, int(p)*100+i))
		}
	}
	produceTo(t, cl, "in", parts, values)
	spec, err := manifest.Parse("offsets.yaml", []byte(fmt.Sprintf(`
name: offsets
steps:
  - id: src
    kafka_source:
      brokers: [%q]
      topics: [in]
      columns: {v: int64}
      start: offsets
      start_offsets: {in: {0: 7, 2: 3}}
  - id: out
    kafka_sink: {brokers: [%q], topic: out}
`, k.Addrs[0], k.Addrs[0])))
	if err != nil {
		t.Fatal(err)
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	j := startJob(t, runtime.Config{Graph: g, Allocator: checked(t), Logger: testkit.Logger(t, slog.LevelWarn)})
	var want []int64
	for i := 7; i < 10; i++ {
		want = append(want, int64(i)) // partition 0 from offset 7
	}
	for i := range 10 {
		want = append(want, int64(100+i)) // partition 1: not listed, from the start
	}
	for i := 3; i < 10; i++ {
		want = append(want, int64(200+i)) // partition 2 from offset 3
	}
	consumer := k.Client(t, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []int64
	testkit.Eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var row struct{ V int64 }
			if err := json.Unmarshal(r.Value, &row); err != nil {
				t.Errorf("record %q: %v", r.Value, err)
			}
			got = append(got, row.V)
		})
		if len(got) < len(want) {
			return fmt.Errorf("%d records, want %d", len(got), len(want))
		}
		return nil
	})
	// Nothing beyond: a short extra poll finds no more records.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { t.Errorf("unexpected record %s", r.Value) })
	cancel()
	if err := j.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

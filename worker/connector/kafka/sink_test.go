package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

var orderSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "paid", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// orders builds a batch of n orders with ids from first; users cycle
// through 5 names; some notes need escaping, some are null.
func orders(mem memory.Allocator, first, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, orderSchema)
	defer b.Release()
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("user-%d", i%5))
		b.Field(2).(*array.Float64Builder).Append(float64(i) * 1.25)
		b.Field(3).(*array.BooleanBuilder).Append(i%2 == 0)
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000 + int64(i)))
		if i%3 == 0 {
			b.Field(5).AppendNull()
		} else {
			b.Field(5).(*array.StringBuilder).Append(fmt.Sprintf("q\"uote\\ é\n%d", i))
		}
	}
	return b.NewRecordBatch()
}

func newSink(t *testing.T, k *testkit.Kafka, cfg kafka.SinkConfig) *kafka.Sink {
	t.Helper()
	cfg.Brokers = k.Addrs
	cfg.Logger = testkit.Logger(t, 0)
	s, err := kafka.NewSink(cfg)
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sink Close: %v", err)
		}
	})
	return s
}

// writeOrders writes batches of orders 0..n-1 and flushes; it returns the
// expected rows, by id.
func writeOrders(t *testing.T, s *kafka.Sink, n, per int) []string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var want []string
	for first := 0; first < n; first += per {
		b := orders(mem, first, per)
		want = append(want, rowStrings(b)...)
		if err := s.Write(t.Context(), b); err != nil {
			t.Fatalf("Write: %v", err)
		}
		b.Release()
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return want
}

func TestSinkSourceRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  kafka.SinkConfig
		// check inspects the partitions the rows landed in.
		check func(t *testing.T, partitionOf map[string][]int32, keys map[string]string)
	}{{
		name: "key and default partitioner",
		cfg:  kafka.SinkConfig{KeyColumns: []string{"user"}},
		check: func(t *testing.T, partitionOf map[string][]int32, keys map[string]string) {
			for user, ps := range partitionOf {
				if u := slices.Compact(slices.Sorted(slices.Values(ps))); len(u) != 1 {
					t.Errorf("user %s spread over partitions %v", user, ps)
				}
			}
			for id, key := range keys {
				if !strings.HasPrefix(key, "user-") {
					t.Errorf("row %s has key %q", id, key)
				}
			}
		},
	}, {
		name: "round-robin and two key columns",
		cfg:  kafka.SinkConfig{KeyColumns: []string{"id", "user"}, Partitioning: kafka.PartitionRoundRobin},
		check: func(t *testing.T, partitionOf map[string][]int32, keys map[string]string) {
			count := map[int32]int{}
			for _, ps := range partitionOf {
				for _, p := range ps {
					count[p]++
				}
			}
			if !cmp.Equal(count, map[int32]int{0: 20, 1: 20, 2: 20}) {
				t.Errorf("rows per partition %v, want 20 each", count)
			}
			if got := keys["7"]; got != `[7,"user-2"]` {
				t.Errorf("key of row 7 %q", got)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := testkit.StartKafka(t, testkit.WithTopics(3, "orders"))
			tc.cfg.Topic = "orders"
			want := writeOrders(t, newSink(t, k, tc.cfg), 60, 20)

			src := newSource(t, k, kafka.SourceConfig{Topics: []string{"orders"}, Schema: orderSchema})
			g := pollN(t, src, 60)
			var rows []string
			partitionOf := map[string][]int32{}
			for sp, rs := range g.rows {
				rows = append(rows, rs...)
				for _, r := range rs {
					user := strings.Fields(r)[1]
					partitionOf[user] = append(partitionOf[user], sp.Partition)
				}
			}
			byID := func(a, b string) int {
				return scanID(a, "id=%d") - scanID(b, "id=%d")
			}
			slices.SortFunc(rows, byID)
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// Keys, straight from Kafka.
			cl := k.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"orders": {
				0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart(),
			}}))
			keys := map[string]string{}
			testkit.Eventually(t, 10*time.Second, func() error {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				defer cancel()
				for _, r := range cl.PollFetches(ctx).Records() {
					keys[fmt.Sprint(scanID(string(r.Value), `{"id":%d`))] = string(r.Key)
				}
				if len(keys) < 60 {
					return fmt.Errorf("%d keys", len(keys))
				}
				return nil
			})
			tc.check(t, partitionOf, keys)
		})
	}
}

// TestSinkFlushMakesReadable: when Flush returns, every record is in the
// log: the end offsets already count them.
func TestSinkFlushMakesReadable(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "out"))
	s := newSink(t, k, kafka.SinkConfig{Topic: "out", MaxBufferedRecords: 100})
	writeOrders(t, s, 1000, 250)
	end := newSource(t, k, kafka.SourceConfig{Topics: []string{"out"}, Schema: orderSchema, Start: kafka.Start{Mode: kafka.StartLatest}})
	total := int64(0)
	for _, o := range end.Offsets()["out"] {
		total += o
	}
	if total != 1000 {
		t.Errorf("end offsets sum to %d after Flush, want 1000", total)
	}
}

func TestSinkFixedPartition(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "out"))
	s := newSink(t, k, kafka.SinkConfig{Topic: "out", Partitioning: kafka.PartitionFixed, Subtask: 4, KeyColumns: []string{"user"}})
	writeOrders(t, s, 30, 10)
	end := newSource(t, k, kafka.SourceConfig{Topics: []string{"out"}, Schema: orderSchema, Start: kafka.Start{Mode: kafka.StartLatest}})
	if got, want := end.Offsets()["out"], (map[int32]int64{0: 0, 1: 30, 2: 0}); !cmp.Equal(got, want) {
		t.Errorf("end offsets %v, want all on partition 4%%3 = 1: %v", got, want)
	}
}

// TestSinkProduceFailure: a failed record fails Flush and every later
// Write with a *ProduceError naming the topic.
func TestSinkProduceFailure(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "out"))
	s, err := kafka.NewSink(kafka.SinkConfig{
		Brokers: k.Addrs, Topic: "missing", Logger: testkit.Logger(t, 0),
		ClientOpts: []kgo.Opt{kgo.UnknownTopicRetries(0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close() //nolint:errcheck // all records failed already; nothing to report
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := orders(mem, 0, 3)
	defer b.Release()
	// Production is asynchronous: the failure may already be known when the
	// first Write returns (it reports failures seen so far), and Flush
	// reports it at the latest.
	err = s.Write(t.Context(), b)
	if err == nil {
		err = s.Flush(t.Context())
	}
	var pe *kafka.ProduceError
	if !errors.As(err, &pe) || pe.Topic != "missing" || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("Write/Flush: %v, want a *ProduceError for topic missing", err)
	}
	if err := s.Flush(t.Context()); !errors.As(err, &pe) {
		t.Errorf("Flush after failure: %v, want the *ProduceError", err)
	}
	if err := s.Write(t.Context(), b); !errors.As(err, &pe) {
		t.Errorf("Write after failure: %v, want the *ProduceError", err)
	}
}

func TestSinkBadKeyColumn(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "out"))
	s := newSink(t, k, kafka.SinkConfig{Topic: "out", KeyColumns: []string{"nope"}})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := orders(mem, 0, 1)
	defer b.Release()
	if err := s.Write(t.Context(), b); err == nil || !strings.Contains(err.Error(), `key column "nope"`) {
		t.Errorf("Write: %v, want an error naming the key column", err)
	}
}

// scanID reads the id at the start of s with format, or -1.
func scanID(s, format string) int {
	var id int
	if _, err := fmt.Sscanf(s, format, &id); err != nil {
		return -1
	}
	return id
}

package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// nexmarkBidSchema is the Nexmark bid, as a pipeline would declare it.
var nexmarkBidSchema = arrow.NewSchema([]arrow.Field{
	{Name: "auction", Type: arrow.PrimitiveTypes.Int64},
	{Name: "bidder", Type: arrow.PrimitiveTypes.Int64},
	{Name: "price", Type: arrow.PrimitiveTypes.Int64},
	{Name: "channel", Type: arrow.BinaryTypes.String},
	{Name: "url", Type: arrow.BinaryTypes.String},
	{Name: "dateTime", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "extra", Type: arrow.BinaryTypes.String},
}, nil)

const benchBids = 200_000

// seedBids produces n Nexmark-like JSON bids (fixed seed) over 3
// partitions.
func seedBids(b *testing.B, k *testkit.Kafka, n int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	channels := []string{"Google", "Facebook", "Baidu", "Apple"}
	cl := k.Client(b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.MaxBufferedRecords(n))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		v := fmt.Sprintf(`{"auction":%d,"bidder":%d,"price":%d,"channel":%q,"url":"https://www.nexmark.com/%s/item.htm?query=1&channel_id=%d","dateTime":"%s","extra":""}`,
			1000+rng.IntN(1000), 2000+rng.IntN(10000), rng.IntN(100_000), channels[i%4], channels[i%4], rng.IntN(1<<20),
			t0.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
		cl.Produce(b.Context(), &kgo.Record{Topic: "bids", Value: []byte(v)}, nil)
	}
	if err := cl.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSourceJSON reads benchBids JSON bids from a 3-partition kfake
// topic: "engine" decodes them into Arrow batches with per-row event
// time from dateTime; "franz-go" is the baseline, raw consumption of the
// same records by a kgo client with the same fetch settings (STYLE §29:
// the ratio engine/franz-go is the number to watch).
func BenchmarkSourceJSON(b *testing.B) {
	k := testkit.StartKafka(b, testkit.WithTopics(3, "bids"))
	seedBids(b, k, benchBids)
	all := map[string]map[int32]kgo.Offset{"bids": {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart(),
	}}

	b.Run("engine", func(b *testing.B) {
		b.ReportAllocs()
		var elapsed time.Duration
		for b.Loop() {
			// Startup (metadata, offset resolution) is not throughput:
			// the clock starts once the source is ready, as the
			// baseline's starts at its (cheap) client creation.
			src, err := kafka.NewSource(b.Context(), kafka.SourceConfig{
				Brokers: k.Addrs, Topics: []string{"bids"}, Schema: nexmarkBidSchema, EventTimeField: "dateTime",
			})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for n := 0; n < benchBids; {
				bs, err := src.Poll(b.Context(), 0)
				if err != nil {
					b.Fatal(err)
				}
				for _, sb := range bs {
					n += int(sb.Batch.NumRows())
					sb.Batch.Release()
				}
			}
			src.Close()
			elapsed += time.Since(start)
		}
		b.ReportMetric(float64(benchBids*b.N)/elapsed.Seconds(), "events/s")
	})

	b.Run("franz-go", func(b *testing.B) {
		b.ReportAllocs()
		var elapsed time.Duration
		for b.Loop() {
			start := time.Now()
			cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...), kgo.ConsumePartitions(all),
				kgo.FetchMaxBytes(kafka.DefaultFetchMaxBytes), kgo.FetchMaxPartitionBytes(kafka.DefaultFetchMaxPartitionBytes),
				kgo.MaxConcurrentFetches(kafka.DefaultMaxConcurrentFetches), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			if err != nil {
				b.Fatal(err)
			}
			sum := 0
			for n := 0; n < benchBids; {
				fs := cl.PollRecords(context.Background(), kafka.DefaultMaxPollRecords)
				if err := fs.Err(); err != nil {
					b.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) { sum += len(r.Value); n++ })
			}
			cl.Close()
			elapsed += time.Since(start)
			_ = sum
		}
		b.ReportMetric(float64(benchBids*b.N)/elapsed.Seconds(), "events/s")
	})
}

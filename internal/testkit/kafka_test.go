package testkit_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/testkit"
)

// consume polls cl until it has n records or ctx ends, and returns the
// values per partition in offset order.
func consume(ctx context.Context, t *testing.T, cl *kgo.Client, n int) map[int32][]string {
	t.Helper()
	got := map[int32][]string{}
	total := 0
	for total < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v (have %v)", total, n, err, got)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			total++
		})
	}
	if total != n {
		t.Fatalf("consumed %d records, want %d: %v", total, n, got)
	}
	return got
}

// TestKafkaTransactions checks the harness with a real transactional
// producer: a committed, an aborted and another committed transaction, each
// writing to every partition. A read_committed consumer must see exactly the
// committed records in order, and a read_uncommitted one must also see the
// aborted ones (so the test is not passing because nothing was written).
func TestKafkaTransactions(t *testing.T) {
	t.Parallel()
	const topic, partitions = "txn", 3
	k := testkit.StartKafka(t, testkit.WithTopics(partitions, topic))
	if len(k.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 brokers", k.Addrs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	p := k.Client(t,
		kgo.TransactionalID("testkit-txn"),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	committed := map[int32][]string{}
	all := map[int32][]string{}
	txn := func(end kgo.TransactionEndTry, prefix string, n int) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		var recs []*kgo.Record
		for i := range n {
			r := kgo.StringRecord(fmt.Sprintf("%s%d", prefix, i))
			r.Partition = int32(i % partitions)
			recs = append(recs, r)
			all[r.Partition] = append(all[r.Partition], string(r.Value))
			if end == kgo.TryCommit {
				committed[r.Partition] = append(committed[r.Partition], string(r.Value))
			}
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", prefix, err)
		}
		if err := p.EndTransaction(ctx, end); err != nil {
			t.Fatalf("EndTransaction(%s): %v", prefix, err)
		}
	}
	txn(kgo.TryCommit, "c", 9)
	txn(kgo.TryAbort, "a", 9)
	txn(kgo.TryCommit, "d", 6)

	readCommitted := k.Client(t,
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	// Every partition ends with committed records written after the abort,
	// so once those arrived, nothing aborted can still be pending.
	if got := consume(ctx, t, readCommitted, 15); !equalParts(got, committed) {
		t.Fatalf("read_committed got %v, want %v", got, committed)
	}

	readUncommitted := k.Client(t,
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if got := consume(ctx, t, readUncommitted, 24); !equalParts(got, all) {
		t.Fatalf("read_uncommitted got %v, want %v", got, all)
	}
}

// TestKafkaRestartKeepsData restarts a persisted cluster: records produced
// before are readable after, and the old producer reconnects.
func TestKafkaRestartKeepsData(t *testing.T) {
	t.Parallel()
	const topic = "durable"
	k := testkit.StartKafka(t, testkit.WithBrokers(1), testkit.WithTopics(1, topic), testkit.WithDataDir(t.TempDir()))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	p := k.Client(t, kgo.DefaultProduceTopic(topic))
	if err := p.ProduceSync(ctx, kgo.StringRecord("before")).FirstErr(); err != nil {
		t.Fatalf("produce before restart: %v", err)
	}
	k.Restart(t)
	if err := p.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	c := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consume(ctx, t, c, 2)
	if want := []string{"before", "after"}; !slices.Equal(got[0], want) {
		t.Fatalf("after restart got %v, want %v", got[0], want)
	}
}

func equalParts(a, b map[int32][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for p, vs := range a {
		if !slices.Equal(vs, b[p]) {
			return false
		}
	}
	return true
}

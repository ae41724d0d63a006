package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// txnTopic is the topic of the TxnSink tests, with txnPartitions
// partitions: rows keyed by user spread over all of them, so every
// transaction spans partitions.
const (
	txnTopic      = "out"
	txnPartitions = 3
)

func startTxnKafka(t *testing.T, opts ...testkit.KafkaOption) *testkit.Kafka {
	t.Helper()
	return testkit.StartKafka(t, append([]testkit.KafkaOption{testkit.WithTopics(txnPartitions, txnTopic)}, opts...)...)
}

// newTxnSink makes a TxnSink on k (topic txnTopic, prefix "job-sink",
// keyed by user unless cfg says otherwise), closed by t.Cleanup. It does
// not Recover.
func newTxnSink(t *testing.T, k *testkit.Kafka, cfg kafka.TxnSinkConfig) *kafka.TxnSink {
	t.Helper()
	cfg.Brokers = k.Addrs
	cfg.Logger = testkit.Logger(t, 0)
	if cfg.Topic == "" {
		cfg.Topic = txnTopic
	}
	if cfg.TransactionalIDPrefix == "" {
		cfg.TransactionalIDPrefix = "job-sink"
	}
	if cfg.KeyColumns == nil {
		cfg.KeyColumns = []string{"user"}
	}
	s, err := kafka.NewTxnSink(cfg)
	if err != nil {
		t.Fatalf("NewTxnSink: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("txn sink Close: %v", err)
		}
	})
	return s
}

// writeRows writes orders first..first+n-1 in one batch.
func writeRows(t *testing.T, s *kafka.TxnSink, first, n int) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := orders(mem, first, n)
	defer b.Release()
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatalf("Write(%d..%d): %v", first, first+n-1, err)
	}
}

// ids returns first..first+n-1 followed by the ids of more (pairs of
// first, n).
func ids(first, n int, more ...int) []int {
	var out []int
	for i := range n {
		out = append(out, first+i)
	}
	if len(more) >= 2 {
		out = append(out, ids(more[0], more[1], more[2:]...)...)
	}
	return out
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// snapshot returns s's state, failing t on error.
func snapshot(t *testing.T, s *kafka.TxnSink) []byte {
	t.Helper()
	b, err := s.Snapshot()
	must(t, "Snapshot", err)
	return b
}

// inspection is what the topic holds, by row id, as the oracle computes it
// from the whole log (read_uncommitted, with control records), and what a
// read_committed consumer reads.
type inspection struct {
	committed []int // rows of committed transactions
	aborted   []int // rows of aborted transactions
	open      []int // rows of transactions neither committed nor aborted yet
	// visible are the rows a read_committed consumer reads up to the last
	// stable offset.
	visible []int
	// lsoBehind is true while some partition's last stable offset is below
	// its high watermark: an open transaction holds read_committed
	// consumers back.
	lsoBehind bool
}

// inspect reads txnTopic twice: the whole log, with control records, to
// classify every row by its transaction's marker; and with a
// read_committed consumer (keeping control records) up to each
// partition's last stable offset. It reads until a known offset, never
// waiting for something not to arrive.
func inspect(t *testing.T, k *testkit.Kafka) inspection {
	t.Helper()
	ctx := t.Context()
	var in inspection
	consumer := func(level kgo.IsolationLevel) *kgo.Client {
		starts := map[int32]kgo.Offset{}
		for p := range int32(txnPartitions) {
			starts[p] = kgo.NewOffset().AtStart()
		}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(k.Addrs...),
			kgo.WithLogger(kgo.BasicLogger(testkit.Output(t), kgo.LogLevelWarn, nil)),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{txnTopic: starts}),
			kgo.FetchIsolationLevel(level),
			kgo.KeepControlRecords(),
		)
		must(t, "consumer", err)
		return cl
	}
	// readUntil polls until every partition delivered its offset in
	// until (-1: nothing to wait for), handing records below it to fn.
	readUntil := func(cl *kgo.Client, until map[int32]int64, fn func(*kgo.Record)) {
		t.Helper()
		left := maps.Clone(until)
		maps.DeleteFunc(left, func(_ int32, o int64) bool { return o < 0 })
		deadline := time.Now().Add(10 * time.Second)
		for len(left) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("inspect: partitions %v not read to offsets %v", slices.Sorted(maps.Keys(left)), until)
			}
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			for _, fe := range fs.Errors() {
				if !errors.Is(fe.Err, context.DeadlineExceeded) {
					t.Fatalf("inspect: fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
				}
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset > until[r.Partition] {
					return
				}
				fn(r)
				if r.Offset == until[r.Partition] {
					delete(left, r.Partition)
				}
			})
		}
	}

	hwm := listOffsets(t, k, 0)
	lso := listOffsets(t, k, 1)
	for p := range hwm {
		in.lsoBehind = in.lsoBehind || lso[p] != hwm[p]
	}

	// The whole log. A data record's fate is the marker its producer
	// writes next on its partition.
	type entry struct {
		offset, pid int64
		id          int // -1 for a control record
		control     bool
	}
	logs := map[int32][]entry{}
	last := map[int32]int64{}
	for p, o := range hwm {
		last[p] = o - 1
	}
	cl := consumer(kgo.ReadUncommitted())
	readUntil(cl, last, func(r *kgo.Record) {
		logs[r.Partition] = append(logs[r.Partition], entry{
			offset: r.Offset, pid: r.ProducerID, id: scanID(string(r.Value), `{"id":%d`), control: r.Attrs.IsControl(),
		})
		if r.Attrs.IsControl() {
			var key kmsg.ControlRecordKey
			must(t, "control record key", key.ReadFrom(r.Key))
			if key.Type == kmsg.ControlRecordKeyTypeCommit {
				logs[r.Partition][len(logs[r.Partition])-1].id = -2 // commit marker
			} else {
				logs[r.Partition][len(logs[r.Partition])-1].id = -3 // abort marker
			}
		}
	})
	cl.Close()
	// lastVisible: per partition, the last offset below the LSO that
	// read_committed delivers (markers and committed rows).
	lastVisible := map[int32]int64{}
	for p, es := range logs {
		lastVisible[p] = -1
		for i, e := range es {
			fate := 0 // 0 open, 1 committed, 2 aborted
			if !e.control {
				for _, m := range es[i+1:] {
					if m.control && m.pid == e.pid {
						fate = map[bool]int{true: 1, false: 2}[m.id == -2]
						break
					}
				}
				switch fate {
				case 0:
					in.open = append(in.open, e.id)
				case 1:
					in.committed = append(in.committed, e.id)
				default:
					in.aborted = append(in.aborted, e.id)
				}
			}
			if e.offset < lso[p] && (e.control || fate == 1) {
				lastVisible[p] = e.offset
			}
		}
	}

	cl = consumer(kgo.ReadCommitted())
	readUntil(cl, lastVisible, func(r *kgo.Record) {
		if !r.Attrs.IsControl() {
			in.visible = append(in.visible, scanID(string(r.Value), `{"id":%d`))
		}
	})
	cl.Close()
	for _, s := range [][]int{in.committed, in.aborted, in.open, in.visible} {
		slices.Sort(s)
	}
	return in
}

// listOffsets lists txnTopic's end offsets: high watermarks (isolation 0)
// or last stable offsets (1).
func listOffsets(t *testing.T, k *testkit.Kafka, isolation int8) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...))
	must(t, "client", err)
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = txnTopic
	for p := range int32(txnPartitions) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	out := map[int32]int64{}
	for _, sh := range cl.RequestSharded(t.Context(), req) {
		must(t, "list offsets", sh.Err)
		for _, rt := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, rp := range rt.Partitions {
				must(t, "list offsets", kerr.ErrorForCode(rp.ErrorCode))
				out[rp.Partition] = rp.Offset
			}
		}
	}
	if len(out) != txnPartitions {
		t.Fatalf("list offsets: %v", out)
	}
	return out
}

// checkLog fails t unless the log holds exactly want (committed, and so
// visible to read_committed), wantOpen and wantAborted, each row once; it
// returns the inspection.
func checkLog(t *testing.T, k *testkit.Kafka, want, wantOpen, wantAborted []int) inspection {
	t.Helper()
	in := inspect(t, k)
	for _, c := range []struct {
		name      string
		got, want []int
	}{
		{"committed", in.committed, want},
		{"visible to read_committed", in.visible, want},
		{"open", in.open, wantOpen},
		{"aborted", in.aborted, wantAborted},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("rows %s (-want +got):\n%s", c.name, diff)
		}
	}
	if behind := len(wantOpen) > 0; in.lsoBehind != behind {
		t.Errorf("last stable offset behind high watermark: %v, want %v (open rows %v)", in.lsoBehind, behind, wantOpen)
	}
	return in
}

// awaitOpen waits until the open transaction's rows reached the log (a
// Write returns once rows are buffered, not acknowledged).
func awaitOpen(t *testing.T, k *testkit.Kafka, wantOpen []int) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		if got := inspect(t, k).open; !slices.Equal(got, wantOpen) {
			return fmt.Errorf("open rows %v, want %v", got, wantOpen)
		}
		return nil
	})
}

// TestTxnSinkExactlyOnce: rows become visible to read_committed consumers
// exactly when their checkpoint commits, each once; a checkpoint interval
// without rows costs no transaction.
func TestTxnSinkExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	s := newTxnSink(t, k, kafka.TxnSinkConfig{})
	must(t, "Recover", s.Recover(ctx, nil))

	writeRows(t, s, 0, 10)
	must(t, "PreCommit(1)", s.PreCommit(ctx, 1))
	snapshot(t, s)
	checkLog(t, k, nil, ids(0, 10), nil) // pre-committed is not committed
	must(t, "Commit(1)", s.Commit(ctx, 1))
	checkLog(t, k, ids(0, 10), nil, nil)

	// Checkpoints 2 and 3 pre-commit before either completes (Commit
	// lags behind); Commit(3) commits both.
	writeRows(t, s, 10, 5)
	writeRows(t, s, 15, 5)
	must(t, "PreCommit(2)", s.PreCommit(ctx, 2))
	snapshot(t, s)
	writeRows(t, s, 20, 10)
	must(t, "PreCommit(3)", s.PreCommit(ctx, 3))
	if _, pending, err := kafka.TxnStateOf(snapshot(t, s)); err != nil || len(pending) != 2 {
		t.Fatalf("state after PreCommit(3): pending %v, %v; want 2", pending, err)
	}
	checkLog(t, k, ids(0, 10), ids(10, 20), nil)
	must(t, "Commit(3)", s.Commit(ctx, 3))
	checkLog(t, k, ids(0, 30), nil, nil)

	// Rows after the last PreCommit are in the log but invisible until
	// their checkpoint commits.
	writeRows(t, s, 30, 10)
	awaitOpen(t, k, ids(30, 10))
	checkLog(t, k, ids(0, 30), ids(30, 10), nil)
	must(t, "PreCommit(4)", s.PreCommit(ctx, 4))
	must(t, "Commit(4)", s.Commit(ctx, 4))
	checkLog(t, k, ids(0, 40), nil, nil)

	// An interval without rows: no transaction, no id used.
	next, _, err := kafka.TxnStateOf(snapshot(t, s))
	must(t, "state", err)
	must(t, "PreCommit(5)", s.PreCommit(ctx, 5))
	next5, pending, err := kafka.TxnStateOf(snapshot(t, s))
	if err != nil || next5 != next || len(pending) != 0 {
		t.Errorf("empty checkpoint: next seq %d → %d, pending %v, %v; want unchanged, none", next, next5, pending, err)
	}
	// Commit is idempotent.
	must(t, "Commit(5)", s.Commit(ctx, 5))
	must(t, "Commit(4) again", s.Commit(ctx, 4))
	checkLog(t, k, ids(0, 40), nil, nil)
}

// kafkaVersions runs recovery both under KIP-890 transactions (EndTxn v5
// bumps the epoch on every commit: what kfake speaks by default, and Kafka
// 4 at transaction.version=2) and under the older rules (Kafka 3.9: the
// epoch stays), since what an already committed transaction looks like
// differs.
var kafkaVersions = []struct {
	name string
	opts []testkit.KafkaOption
	// endTxn is the only EndTxn version the test may see.
	endTxn int16
}{
	{"kip-890", nil, 5},
	{"kafka-3.9", []testkit.KafkaOption{testkit.WithKfakeOpts(kfake.MaxVersions(kversion.V3_9_0()))}, 4},
}

// checkEndTxnVersion fails t at its end if any EndTxn request to k had
// another version than want.
func checkEndTxnVersion(t *testing.T, k *testkit.Kafka, want int16) {
	t.Helper()
	var mu sync.Mutex
	seen := map[int16]int{}
	k.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		seen[req.GetVersion()]++
		mu.Unlock()
		return nil, nil, false
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || seen[want] == 0 {
			t.Errorf("EndTxn versions sent %v, want only v%d", seen, want)
		}
	})
}

// TestTxnSinkRecoverAfterCrash: attempt A pre-commits checkpoints 1 and 2,
// writes more, and dies; only checkpoint 1 completed. Attempt B restores
// checkpoint 1: its rows are committed, the rest aborted at once (not at
// their timeout: read_committed consumers reach the end), and B goes on.
func TestTxnSinkRecoverAfterCrash(t *testing.T) {
	t.Parallel()
	for _, v := range kafkaVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			k := startTxnKafka(t, v.opts...)
			checkEndTxnVersion(t, k, v.endTxn)

			a := newTxnSink(t, k, kafka.TxnSinkConfig{})
			must(t, "A Recover", a.Recover(ctx, nil))
			writeRows(t, a, 0, 10)
			must(t, "A PreCommit(1)", a.PreCommit(ctx, 1))
			s1 := snapshot(t, a)
			writeRows(t, a, 10, 10)
			must(t, "A PreCommit(2)", a.PreCommit(ctx, 2))
			snapshot(t, a) // checkpoint 2 never completes
			writeRows(t, a, 20, 10)
			awaitOpen(t, k, ids(0, 30))
			a.Crash()
			checkLog(t, k, nil, ids(0, 30), nil)

			b := newTxnSink(t, k, kafka.TxnSinkConfig{})
			must(t, "B Recover(checkpoint 1)", b.Recover(ctx, s1))
			checkLog(t, k, ids(0, 10), nil, ids(10, 20))

			writeRows(t, b, 30, 10)
			must(t, "B PreCommit(3)", b.PreCommit(ctx, 3))
			must(t, "B Commit(3)", b.Commit(ctx, 3))
			checkLog(t, k, ids(0, 10, 30, 10), nil, ids(10, 20))
		})
	}
}

// TestTxnSinkSnapshotWithOpenTransaction: a snapshot taken while a
// transaction is open (no PreCommit before it) does not cover that
// transaction, and a restore from it aborts it.
func TestTxnSinkSnapshotWithOpenTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	a := newTxnSink(t, k, kafka.TxnSinkConfig{})
	must(t, "A Recover", a.Recover(ctx, nil))
	writeRows(t, a, 0, 10)
	s := snapshot(t, a)
	awaitOpen(t, k, ids(0, 10))
	a.Crash()
	must(t, "B Recover", newTxnSink(t, k, kafka.TxnSinkConfig{}).Recover(ctx, s))
	checkLog(t, k, nil, nil, ids(0, 10))
}

// TestTxnSinkRecoverCommittedCheckpoint: A committed checkpoint 1 before
// it died; B's commit of it again is a no-op, not an error and not a
// duplicate.
func TestTxnSinkRecoverCommittedCheckpoint(t *testing.T) {
	t.Parallel()
	for _, v := range kafkaVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			k := startTxnKafka(t, v.opts...)
			checkEndTxnVersion(t, k, v.endTxn)

			a := newTxnSink(t, k, kafka.TxnSinkConfig{})
			must(t, "A Recover", a.Recover(ctx, nil))
			writeRows(t, a, 0, 10)
			must(t, "A PreCommit(1)", a.PreCommit(ctx, 1))
			s1 := snapshot(t, a)
			must(t, "A Commit(1)", a.Commit(ctx, 1))
			writeRows(t, a, 10, 10)
			awaitOpen(t, k, ids(10, 10))
			a.Crash()

			b := newTxnSink(t, k, kafka.TxnSinkConfig{})
			must(t, "B Recover(checkpoint 1)", b.Recover(ctx, s1))
			checkLog(t, k, ids(0, 10), nil, ids(10, 10))
			// And once more, as if B died during recovery.
			c := newTxnSink(t, k, kafka.TxnSinkConfig{})
			must(t, "C Recover(checkpoint 1)", c.Recover(ctx, s1))
			checkLog(t, k, ids(0, 10), nil, ids(10, 10))
		})
	}
}

// TestTxnSinkTransactionLost: the broker aborts a pre-committed
// transaction whose timeout elapsed before its checkpoint was committed.
// Commit and a later Recover both report the loss; nothing is visible.
func TestTxnSinkTransactionLost(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	cfg := kafka.TxnSinkConfig{TransactionTimeout: time.Second}
	a := newTxnSink(t, k, cfg)
	must(t, "Recover", a.Recover(ctx, nil))
	writeRows(t, a, 0, 10)
	must(t, "PreCommit(1)", a.PreCommit(ctx, 1))
	s1 := snapshot(t, a)
	_, pending, err := kafka.TxnStateOf(s1)
	must(t, "state", err)
	testkit.Eventually(t, 20*time.Second, func() error {
		st, err := describeTxn(t, k, pending[0])
		must(t, "describe transaction", err)
		if st == "Ongoing" {
			return fmt.Errorf("transaction %s still %s", pending[0], st)
		}
		return nil
	})

	checkLost := func(what string, err error) {
		t.Helper()
		var lost *kafka.LostTransactionError
		if !errors.Is(err, kafka.ErrTransactionLost) || !errors.As(err, &lost) {
			t.Fatalf("%s: %v, want ErrTransactionLost", what, err)
		}
		if lost.Checkpoint != 1 || lost.TransactionalID != pending[0] || !strings.Contains(err.Error(), "DATA LOSS") {
			t.Errorf("%s: %+v", what, lost)
		}
	}
	checkLost("Commit(1)", a.Commit(ctx, 1))
	// The sink is failed: the loss is not forgotten.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := orders(mem, 10, 1)
	defer b.Release()
	checkLost("Write after the loss", a.Write(ctx, b))

	checkLost("Recover(checkpoint 1)", newTxnSink(t, k, cfg).Recover(ctx, s1))
	checkLog(t, k, nil, nil, ids(0, 10))
}

// TestTxnSinkRecoverExpiredTransaction: restoring a checkpoint whose
// transaction the broker no longer knows (its transactional id expired,
// as with an old savepoint) cannot tell committed from aborted: Recover
// says so instead of guessing.
func TestTxnSinkRecoverExpiredTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t, testkit.WithKfakeOpts(kfake.BrokerConfigs(map[string]string{"transactional.id.expiration.ms": "300"})))
	a := newTxnSink(t, k, kafka.TxnSinkConfig{})
	must(t, "Recover", a.Recover(ctx, nil))
	writeRows(t, a, 0, 10)
	must(t, "PreCommit(1)", a.PreCommit(ctx, 1))
	s1 := snapshot(t, a)
	must(t, "Commit(1)", a.Commit(ctx, 1))
	must(t, "Close", a.Close())
	_, pending, err := kafka.TxnStateOf(s1)
	must(t, "state", err)
	testkit.Eventually(t, 20*time.Second, func() error {
		if _, err := describeTxn(t, k, pending[0]); !errors.Is(err, kerr.TransactionalIDNotFound) {
			return fmt.Errorf("transactional id %s: %w, want it expired", pending[0], err)
		}
		return nil
	})
	err = newTxnSink(t, k, kafka.TxnSinkConfig{}).Recover(ctx, s1)
	var lost *kafka.LostTransactionError
	if !errors.As(err, &lost) || !lost.Unknown || !errors.Is(err, kerr.InvalidProducerIDMapping) ||
		!strings.Contains(err.Error(), "cannot be known") {
		t.Fatalf("Recover of an expired transaction: %v, want a LostTransactionError with Unknown set", err)
	}
	checkLog(t, k, ids(0, 10), nil, nil)
}

// describeTxn returns the coordinator's state of transactional id, or
// the error it answered.
func describeTxn(t *testing.T, k *testkit.Kafka, id string) (string, error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...))
	must(t, "client", err)
	defer cl.Close()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp, err := req.RequestWith(t.Context(), cl)
	must(t, "describe transactions", err)
	if len(resp.TransactionStates) != 1 {
		t.Fatalf("describe transactions: %+v", resp)
	}
	st := resp.TransactionStates[0]
	return st.State, kerr.ErrorForCode(st.ErrorCode)
}

// TestTxnSinkCommitAsksAgainWithEndTxnV4: under KIP-890 rules (EndTxn v5)
// Kafka answers INVALID_TXN_STATE to a commit retry of a transaction
// committed under the older rules, at its unchanged epoch. The sink asks
// again with EndTxn v4, whose answer tells committed from aborted. kfake
// does not give that answer by itself, so the test injects it.
func TestTxnSinkCommitAsksAgainWithEndTxnV4(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	var v5, v4 atomic.Int32
	// An observer (never handles, so stays), then a one-shot injection
	// (handling drops it): the first EndTxn v5 gets INVALID_TXN_STATE.
	k.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.GetVersion() >= 5 {
			v5.Add(1)
		} else {
			v4.Add(1)
		}
		return nil, nil, false
	})
	k.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.GetVersion() < 5 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
	s := newTxnSink(t, k, kafka.TxnSinkConfig{})
	must(t, "Recover", s.Recover(ctx, nil))
	writeRows(t, s, 0, 10)
	must(t, "PreCommit(1)", s.PreCommit(ctx, 1))
	must(t, "Commit(1)", s.Commit(ctx, 1))
	if v5.Load() != 1 || v4.Load() != 1 {
		t.Errorf("EndTxn: %d sent at v5, %d at v4; want 1 each (v5 answered INVALID_TXN_STATE, v4 committed)", v5.Load(), v4.Load())
	}
	checkLog(t, k, ids(0, 10), nil, nil)
}

// TestTxnSinkTimeoutRefused: a transaction timeout above the broker's
// transaction.max.timeout.ms fails Recover with an error that names both.
func TestTxnSinkTimeoutRefused(t *testing.T) {
	t.Parallel()
	k := startTxnKafka(t, testkit.WithKfakeOpts(kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": "60000"})))
	s := newTxnSink(t, k, kafka.TxnSinkConfig{TransactionTimeout: 2 * time.Minute})
	if m, err := s.TransactionMaxTimeout(t.Context()); err != nil || m != time.Minute {
		t.Errorf("TransactionMaxTimeout: %v, %v; want 1m0s", m, err)
	}
	err := s.Recover(t.Context(), nil)
	if !errors.Is(err, kerr.InvalidTransactionTimeout) ||
		!strings.Contains(err.Error(), "transaction_timeout_ms=120000") || !strings.Contains(err.Error(), "transaction.max.timeout.ms, 1m0s") {
		t.Fatalf("Recover: %v, want INVALID_TRANSACTION_TIMEOUT naming transaction_timeout_ms and the 1m limit", err)
	}
}

// TestTxnSinkPendingBound: PreCommit blocks while MaxPendingTransactions
// are pending, until a Commit frees one.
func TestTxnSinkPendingBound(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	s := newTxnSink(t, k, kafka.TxnSinkConfig{MaxPendingTransactions: 1})
	must(t, "Recover", s.Recover(ctx, nil))
	writeRows(t, s, 0, 10)
	must(t, "PreCommit(1)", s.PreCommit(ctx, 1))
	writeRows(t, s, 10, 10)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.PreCommit(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PreCommit(2) with one pending of one: %v, want it to block until its deadline", err)
	}
	must(t, "Commit(1)", s.Commit(ctx, 1))
	must(t, "PreCommit(2)", s.PreCommit(ctx, 2))
	must(t, "Commit(2)", s.Commit(ctx, 2))
	checkLog(t, k, ids(0, 20), nil, nil)
}

// TestTxnSinkCommitConcurrentWithWrite: the runtime commits from its own
// goroutine while the task writes and pre-commits the next checkpoints
// (run with -race); with two pending slots the task also waits for it.
func TestTxnSinkCommitConcurrentWithWrite(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	k := startTxnKafka(t)
	s := newTxnSink(t, k, kafka.TxnSinkConfig{MaxPendingTransactions: 2})
	must(t, "Recover", s.Recover(ctx, nil))

	const checkpoints, per = 20, 10
	completed := make(chan int64, checkpoints)
	commitErrs := make(chan error, checkpoints)
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := range completed {
			if err := s.Commit(ctx, n); err != nil {
				commitErrs <- fmt.Errorf("Commit(%d): %w", n, err)
			}
		}
	})
	for c := range int64(checkpoints) {
		writeRows(t, s, int(c)*per, per/2)
		writeRows(t, s, int(c)*per+per/2, per/2)
		must(t, "PreCommit", s.PreCommit(ctx, c+1))
		snapshot(t, s)
		completed <- c + 1
	}
	close(completed)
	wg.Wait()
	close(commitErrs)
	for err := range commitErrs {
		t.Error(err)
	}
	checkLog(t, k, ids(0, checkpoints*per), nil, nil)
}

// TestTxnSinkCloseAbortsOpen: Close aborts the open transaction, so
// read_committed consumers need not wait for its timeout.
func TestTxnSinkCloseAbortsOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	s := newTxnSink(t, k, kafka.TxnSinkConfig{})
	must(t, "Recover", s.Recover(ctx, nil))
	writeRows(t, s, 0, 10)
	must(t, "PreCommit(1)", s.PreCommit(ctx, 1))
	must(t, "Commit(1)", s.Commit(ctx, 1))
	writeRows(t, s, 10, 10)
	awaitOpen(t, k, ids(10, 10))
	must(t, "Close", s.Close())
	checkLog(t, k, ids(0, 10), nil, ids(10, 10))
	if err := s.Commit(ctx, 2); !errors.Is(err, kafka.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
}

// TestTxnSinkCallOrder: the task goroutine's calls need Recover first;
// Recover runs once; checkpoint ids increase.
func TestTxnSinkCallOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := startTxnKafka(t)
	s := newTxnSink(t, k, kafka.TxnSinkConfig{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := orders(mem, 0, 2)
	defer b.Release()
	if err := s.Write(ctx, b); err == nil || !strings.Contains(err.Error(), "Recover must be called") {
		t.Errorf("Write before Recover: %v", err)
	}
	if _, err := s.Snapshot(); err == nil {
		t.Error("Snapshot before Recover: no error")
	}
	must(t, "Recover", s.Recover(ctx, nil))
	if err := s.Recover(ctx, nil); err == nil {
		t.Error("second Recover: no error")
	}
	if err := s.Recover(ctx, []byte("{")); err == nil {
		t.Error("Recover of garbage: no error")
	}
	other := newTxnSink(t, k, kafka.TxnSinkConfig{SinkConfig: kafka.SinkConfig{Subtask: 1}})
	if err := other.Recover(ctx, snapshot(t, s)); err == nil || !strings.Contains(err.Error(), "each subtask must recover its own state") {
		t.Errorf("Recover of another subtask's state: %v", err)
	}
	must(t, "Write", s.Write(ctx, b))
	must(t, "PreCommit(5)", s.PreCommit(ctx, 5))
	must(t, "Write", s.Write(ctx, b))
	if err := s.PreCommit(ctx, 5); err == nil || !strings.Contains(err.Error(), "must increase") {
		t.Errorf("PreCommit(5) twice: %v", err)
	}
}

func TestTxnSinkConfigValidate(t *testing.T) {
	t.Parallel()
	base := kafka.SinkConfig{Brokers: []string{"b:9092"}, Topic: "out"}
	for _, tc := range []struct {
		name string
		cfg  kafka.TxnSinkConfig
		want string // substring of the error; empty: valid
	}{
		{"valid", kafka.TxnSinkConfig{SinkConfig: base, TransactionalIDPrefix: "p"}, ""},
		{"no prefix", kafka.TxnSinkConfig{SinkConfig: base}, "no transactional id prefix"},
		{"sink config", kafka.TxnSinkConfig{TransactionalIDPrefix: "p"}, "no brokers"},
		{"negative subtask", kafka.TxnSinkConfig{SinkConfig: kafka.SinkConfig{Brokers: base.Brokers, Topic: "out", Subtask: -1}, TransactionalIDPrefix: "p"}, "negative subtask"},
		{"negative timeout", kafka.TxnSinkConfig{SinkConfig: base, TransactionalIDPrefix: "p", TransactionTimeout: -time.Second}, "transaction timeout"},
		{"sub-millisecond timeout", kafka.TxnSinkConfig{SinkConfig: base, TransactionalIDPrefix: "p", TransactionTimeout: time.Microsecond}, "transaction timeout"},
		{"negative pending", kafka.TxnSinkConfig{SinkConfig: base, TransactionalIDPrefix: "p", MaxPendingTransactions: -1}, "max pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckTransactionTimeout(t *testing.T) {
	t.Parallel()
	const m = time.Minute
	for _, tc := range []struct {
		name                               string
		tx, brokerMax, interval, allowance time.Duration
		want                               []string // substrings of the error; none: nil
	}{
		{name: "fits", tx: 15 * m, brokerMax: 15 * m, interval: m, allowance: 5 * m},
		{name: "just above the need", tx: 6*m + time.Millisecond, brokerMax: 15 * m, interval: m, allowance: 5 * m},
		{name: "equal to the need", tx: 6 * m, brokerMax: 15 * m, interval: m, allowance: 5 * m,
			want: []string{"must exceed the checkpoint interval 1m0s plus the recovery allowance 5m0s", "aborts one that outlives its timeout"}},
		{name: "below the interval", tx: 30 * time.Second, brokerMax: 15 * m, interval: m, allowance: 0,
			want: []string{"must exceed"}},
		{name: "above the broker maximum", tx: 20 * m, brokerMax: 15 * m, interval: m, allowance: 5 * m,
			want: []string{"exceeds the broker's transaction.max.timeout.ms 15m0s", "INVALID_TRANSACTION_TIMEOUT"}},
		{name: "both", tx: 20 * m, brokerMax: 15 * m, interval: 10 * m, allowance: 10 * m,
			want: []string{"must exceed", "exceeds the broker's"}},
		{name: "zero interval", tx: 20 * m, brokerMax: 15 * m, want: []string{"need positive durations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := kafka.CheckTransactionTimeout(tc.tx, tc.brokerMax, tc.interval, tc.allowance)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("CheckTransactionTimeout: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckTransactionTimeout: nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckTransactionTimeout: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"
)

// recordWriter turns the rows of record batches into kgo records and
// produces them: the encoder, key and acknowledgement code that Sink and
// TxnSink share. Only the client differs: Sink has one idempotent client,
// TxnSink one transactional client per transaction.
//
// write runs on the owner's task goroutine; onAck runs on kgo goroutines.
type recordWriter struct {
	topic      string
	keyColumns []string
	// ctx is the lifetime of produced records (kgo cancels a buffered
	// batch whose first record's context ends): the owner's lifetime, which
	// ends with its Close, not the context of the Write that produced them.
	ctx context.Context

	// Used by write only (one goroutine).
	enc    *jsonrow.Encoder
	keyIdx []int

	// pool recycles records and their key and value buffers: a record
	// returns to it when its promise has run, so a steady stream of rows
	// allocates nothing per row.
	pool    sync.Pool
	promise func(*kgo.Record, error)

	err struct {
		sync.Mutex
		err error // first failure, sticky
	}
	failed atomic.Bool
}

// init prepares w; w must not be copied afterwards.
func (w *recordWriter) init(ctx context.Context, topic string, keyColumns []string) {
	w.ctx, w.topic, w.keyColumns = ctx, topic, keyColumns
	w.pool.New = func() any { return new(kgo.Record) }
	w.promise = w.onAck
}

// onAck runs on a kgo goroutine when r is acknowledged or failed.
func (w *recordWriter) onAck(r *kgo.Record, err error) {
	if err != nil {
		w.fail(&ProduceError{Topic: r.Topic, Partition: r.Partition, Err: err})
	}
	*r = kgo.Record{Key: r.Key[:0], Value: r.Value[:0]}
	w.pool.Put(r)
}

// fail records err as the writer's failure unless one is recorded already.
func (w *recordWriter) fail(err error) {
	w.err.Lock()
	if w.err.err == nil {
		w.err.err = err
	}
	w.err.Unlock()
	w.failed.Store(true)
}

func (w *recordWriter) firstErr() error {
	w.err.Lock()
	defer w.err.Unlock()
	return w.err.err
}

// bind prepares the encoder for schema (once per distinct schema).
func (w *recordWriter) bind(schema *arrow.Schema) error {
	if w.enc != nil && (w.enc.Schema() == schema || w.enc.Schema().Equal(schema)) {
		return nil
	}
	idx := make([]int, 0, len(w.keyColumns))
	for _, k := range w.keyColumns {
		fi := schema.FieldIndices(k)
		if len(fi) == 0 {
			return fmt.Errorf("kafka: sink: key column %q is not in the batch schema", k)
		}
		idx = append(idx, fi[0])
	}
	w.enc, w.keyIdx = jsonrow.NewEncoder(schema), idx
	return nil
}

// write produces every row of batch through cl as one record (JSON value,
// key from the key columns) and returns once they are buffered in the
// client, blocking while the client's buffer limits are reached or until
// ctx ends. It returns the first failure seen so far, if any.
func (w *recordWriter) write(ctx context.Context, cl *kgo.Client, batch arrow.RecordBatch) error {
	if err := w.bind(batch.Schema()); err != nil {
		return err
	}
	w.enc.Reset(batch)
	cols := batch.Columns()
	for i := range int(batch.NumRows()) {
		r := w.pool.Get().(*kgo.Record)
		r.Value = w.enc.AppendRow(r.Value[:0], i)
		r.Key = w.appendKey(r.Key[:0], cols, i)
		r.Topic = w.topic
		r.Context = w.ctx
		cl.Produce(ctx, r, w.promise)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.failed.Load() {
		return w.firstErr()
	}
	return nil
}

// appendKey returns row i's key appended to b, or nil for no key.
func (w *recordWriter) appendKey(b []byte, cols []arrow.Array, i int) []byte {
	switch len(w.keyIdx) {
	case 0:
		return nil
	case 1:
		k, ok := appendKeyValue(b, cols[w.keyIdx[0]], i)
		if !ok {
			return nil
		}
		return k
	default:
		b = append(b, '[')
		for j, c := range w.keyIdx {
			if j > 0 {
				b = append(b, ',')
			}
			b = jsonrow.AppendValue(b, cols[c], i)
		}
		return append(b, ']')
	}
}

// producerOpts returns the kgo options of a sink's producer: cfg's
// brokers, topic, buffer limits and partitioner with acks=all, then extra,
// then cfg.ClientOpts (last, so they win).
func producerOpts(cfg SinkConfig, extra ...kgo.Opt) []kgo.Opt {
	opts := baseOpts(cfg.Brokers, cfg.Logger)
	opts = append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence (kgo's default) and transactions require it
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		// As Kafka's Java producer: a missing topic is created when the
		// broker allows it (auto.create.topics.enable).
		kgo.AllowAutoTopicCreation(),
	)
	switch cfg.Partitioning {
	case PartitionRoundRobin:
		opts = append(opts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	case PartitionFixed:
		opts = append(opts, kgo.RecordPartitioner(fixedPartitioner{subtask: cfg.Subtask}))
	default: // PartitionDefault
		opts = append(opts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	}
	opts = append(opts, extra...)
	return append(opts, cfg.ClientOpts...)
}

// fixedPartitioner sends every record to partition subtask % n (Flink's
// FlinkFixedPartitioner).
type fixedPartitioner struct{ subtask int }

func (p fixedPartitioner) ForTopic(string) kgo.TopicPartitioner { return p }

// RequiresConsistency is true: the partition is fixed even while it is
// unavailable.
func (fixedPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p fixedPartitioner) Partition(_ *kgo.Record, n int) int { return p.subtask % n }

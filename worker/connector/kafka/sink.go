package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sink writes the rows of Arrow record batches to one Kafka topic, one
// record per row, at least once: Write produces asynchronously, Flush
// waits for every acknowledgement. See the package doc for the
// concurrency contract and the transactional variant.
type Sink struct {
	cfg SinkConfig
	cl  *kgo.Client
	// ctx is the lifetime of produced records (kgo cancels a buffered
	// batch whose first record's context ends): it ends with Close, not
	// with the context of the Write that produced them.
	ctx    context.Context
	cancel context.CancelFunc

	// Used by Write only (one goroutine).
	enc    *jsonrow.Encoder
	keyIdx []int

	// pool recycles records and their key and value buffers: a record
	// returns to it when its promise has run, so a steady stream of rows
	// allocates nothing per row.
	pool    sync.Pool
	promise func(*kgo.Record, error)

	err struct {
		sync.Mutex
		err error // first produce failure, sticky
	}
	failed    atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewSink validates cfg and starts an idempotent producer (acks=all)
// for cfg.Topic. The broker connection is made lazily, by the first Write.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := baseOpts(cfg.Brokers, cfg.Logger)
	opts = append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence (kgo's default) requires it
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
	)
	switch cfg.Partitioning {
	case PartitionRoundRobin:
		opts = append(opts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	case PartitionFixed:
		opts = append(opts, kgo.RecordPartitioner(fixedPartitioner{subtask: cfg.Subtask}))
	default: // PartitionDefault
		opts = append(opts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	}
	opts = append(opts, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: sink client: %w", err)
	}
	s := &Sink{cfg: cfg, cl: cl}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pool.New = func() any { return new(kgo.Record) }
	s.promise = s.onAck
	return s, nil
}

// onAck runs on a kgo goroutine when r is acknowledged or failed.
func (s *Sink) onAck(r *kgo.Record, err error) {
	if err != nil {
		s.err.Lock()
		if s.err.err == nil {
			s.err.err = &ProduceError{Topic: r.Topic, Partition: r.Partition, Err: err}
		}
		s.err.Unlock()
		s.failed.Store(true)
	}
	*r = kgo.Record{Key: r.Key[:0], Value: r.Value[:0]}
	s.pool.Put(r)
}

func (s *Sink) firstErr() error {
	s.err.Lock()
	defer s.err.Unlock()
	return s.err.err
}

// bind prepares the encoder for schema (once per distinct schema).
func (s *Sink) bind(schema *arrow.Schema) error {
	if s.enc != nil && (s.enc.Schema() == schema || s.enc.Schema().Equal(schema)) {
		return nil
	}
	idx := make([]int, 0, len(s.cfg.KeyColumns))
	for _, k := range s.cfg.KeyColumns {
		fi := schema.FieldIndices(k)
		if len(fi) == 0 {
			return fmt.Errorf("kafka: sink: key column %q is not in the batch schema", k)
		}
		idx = append(idx, fi[0])
	}
	s.enc, s.keyIdx = jsonrow.NewEncoder(schema), idx
	return nil
}

// Write produces every row of batch as one record (JSON value, key from
// KeyColumns) and returns once they are buffered in the client, blocking
// while MaxBufferedRecords or MaxBufferedBytes unacknowledged records are
// outstanding (backpressure) or until ctx ends. It does not wait for
// acknowledgements; Flush does. The batch is only read, not retained.
// After a produce failure Write returns that *ProduceError.
func (s *Sink) Write(ctx context.Context, batch arrow.RecordBatch) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.failed.Load() {
		return s.firstErr()
	}
	if err := s.bind(batch.Schema()); err != nil {
		return err
	}
	s.enc.Reset(batch)
	cols := batch.Columns()
	for i := range int(batch.NumRows()) {
		r := s.pool.Get().(*kgo.Record)
		r.Value = s.enc.AppendRow(r.Value[:0], i)
		r.Key = s.appendKey(r.Key[:0], cols, i)
		r.Topic = s.cfg.Topic
		r.Context = s.ctx
		s.cl.Produce(ctx, r, s.promise)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.failed.Load() {
		return s.firstErr()
	}
	return nil
}

// appendKey returns row i's key appended to b, or nil for no key.
func (s *Sink) appendKey(b []byte, cols []arrow.Array, i int) []byte {
	switch len(s.keyIdx) {
	case 0:
		return nil
	case 1:
		k, ok := appendKeyValue(b, cols[s.keyIdx[0]], i)
		if !ok {
			return nil
		}
		return k
	default:
		b = append(b, '[')
		for j, c := range s.keyIdx {
			if j > 0 {
				b = append(b, ',')
			}
			b = jsonrow.AppendValue(b, cols[c], i)
		}
		return append(b, ']')
	}
}

// Flush waits until every record written so far is acknowledged by all
// in-sync replicas (and so readable by consumers) or has failed, and
// returns the first failure, or ctx's error if it ends first. The runtime
// calls it when a checkpoint barrier passes and at end of input; only a
// nil return makes the written rows part of the checkpoint.
func (s *Sink) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: sink flush: %w", err)
	}
	return s.firstErr()
}

// Close is a hard stop: records not yet acknowledged are abandoned (Flush
// first for a graceful stop), and Close reports how many. Idempotent.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		// Stop intake, then fail what is buffered (cancel), then close
		// the connections.
		s.closed.Store(true)
		n := s.cl.BufferedProduceRecords()
		s.cancel()
		s.cl.Close()
		if n > 0 {
			s.closeErr = fmt.Errorf("kafka: sink closed with %d records unacknowledged", n)
		}
	})
	return s.closeErr
}

// fixedPartitioner sends every record to partition subtask % n (Flink's
// FlinkFixedPartitioner).
type fixedPartitioner struct{ subtask int }

func (p fixedPartitioner) ForTopic(string) kgo.TopicPartitioner { return p }

// RequiresConsistency is true: the partition is fixed even while it is
// unavailable.
func (fixedPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p fixedPartitioner) Partition(_ *kgo.Record, n int) int { return p.subtask % n }

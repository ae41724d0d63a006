package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sink writes the rows of Arrow record batches to one Kafka topic, one
// record per row, at least once: Write produces asynchronously, Flush
// waits for every acknowledgement. See the package doc for the
// concurrency contract, and TxnSink for the exactly-once variant.
type Sink struct {
	cfg SinkConfig
	cl  *kgo.Client
	// ctx is the lifetime of produced records (see recordWriter.ctx).
	ctx    context.Context
	cancel context.CancelFunc

	w recordWriter

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
	cl, err := kgo.NewClient(producerOpts(cfg)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: sink client: %w", err)
	}
	s := &Sink{cfg: cfg, cl: cl}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.w.init(s.ctx, cfg.Topic, cfg.KeyColumns)
	return s, nil
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
	if s.w.failed.Load() {
		return s.w.firstErr()
	}
	return s.w.write(ctx, s.cl, batch)
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
	return s.w.firstErr()
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

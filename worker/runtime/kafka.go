package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/connector/kafka"
	"github.com/sabotdev/sabot/worker/eventtime"
)

// kafkaSource is the KafkaSource: subtask i of p reads its share of the
// topics' partitions (the connector's Flink-compatible split assignment)
// and emits each polled split batch as one batch.
//
// Event time: with a watermark strategy, each split (partition) has its
// own generator fed with the split's event times (the Kafka timestamp or
// event_time.timestamp_field); the subtask's watermark is the minimum over
// active splits, emitted when it advances, periodically on Config.Clock
// (and at once after a batch whose punctuated marker or return from
// idleness raised it). A split without records for idle_timeout_ms is idle
// and does not hold the watermark back. Without a strategy the source emits
// no watermarks (Flink's noWatermarks).
//
// Watermark status: when every split is idle, or the subtask was assigned
// no partition at all (more subtasks than partitions), the source sends
// IDLE (Output.EmitIdle), so downstream tasks leave it out of their
// watermark minimum; it sends ACTIVE again before its next batch or
// watermark. A subtask without partitions is idle from its first Next.
//
// Next polls with a deadline of Config.PollTimeout (real time): with
// nothing to read it returns empty-handed, so the task regains control and
// periodic emission and idleness detection run even on a silent topic.
// The source is unbounded: Next never reports done (bounded reading up to
// given offsets is a later feature), so a job with a Kafka source runs
// until it is cancelled or fails.
type kafkaSource struct {
	cfg         kafka.SourceConfig
	pollTimeout time.Duration
	batchSize   int

	src      *kafka.Source
	live     atomic.Pointer[kafka.Source]     // src once open, for lag from other goroutines
	noSplits bool                             // src was assigned no partition
	wms      *splitWatermarks                 // nil: no watermarks
	splits   map[kafka.Split]*eventtime.Split // with wms: every split of src
	idle     bool                             // watermark status last sent
	waited   time.Duration                    // in Poll since takeIdle (Metrics); task goroutine only
}

func newKafkaSource(spec *sabotv1.KafkaSource, v *jobgraph.Vertex, info TaskInfo, e *env) (*kafkaSource, error) {
	cfg := kafka.SourceConfig{
		Brokers:         spec.GetBrokers(),
		Topics:          spec.GetTopics(),
		TopicRegex:      spec.GetTopicPattern(),
		Subtask:         info.Subtask,
		Parallelism:     info.Parallelism,
		EventTimeField:  spec.GetEventTime().GetTimestampField(),
		DeadLetterTopic: spec.GetDeadLetterTopic(),
		Allocator:       e.mem,
		Logger:          e.logger.With(slog.String("vertex", v.ID), slog.Int("subtask", info.Subtask)),
		Clock:           e.clock,
	}
	switch spec.GetStart() {
	case sabotv1.KafkaStart_KAFKA_START_LATEST:
		cfg.Start.Mode = kafka.StartLatest
	case sabotv1.KafkaStart_KAFKA_START_TIMESTAMP:
		cfg.Start = kafka.Start{Mode: kafka.StartTimestamp, TimestampMillis: spec.GetStartTimestampMs()}
	case sabotv1.KafkaStart_KAFKA_START_OFFSETS:
		cfg.Start = kafka.Start{Mode: kafka.StartOffsets, Offsets: map[string]map[int32]int64{}}
		for _, o := range spec.GetStartOffsets() {
			if cfg.Start.Offsets[o.GetTopic()] == nil {
				cfg.Start.Offsets[o.GetTopic()] = map[int32]int64{}
			}
			cfg.Start.Offsets[o.GetTopic()][o.GetPartition()] = o.GetOffset()
		}
	default: // unspecified, earliest
		cfg.Start.Mode = kafka.StartEarliest
	}
	switch spec.GetFormat() {
	case sabotv1.RecordFormat_RECORD_FORMAT_RAW:
		cfg.Format = kafka.FormatRaw // fixed key/value columns: no schema
	case sabotv1.RecordFormat_RECORD_FORMAT_CSV:
		cfg.Format, cfg.Schema = kafka.FormatCSV, v.Schema
	default: // unspecified, JSON
		cfg.Format, cfg.Schema = kafka.FormatJSON, v.Schema
	}
	switch spec.GetBadRecords() {
	case sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_SKIP:
		cfg.BadRecords = kafka.PolicySkip
	case sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_DEAD_LETTER:
		cfg.BadRecords = kafka.PolicyDeadLetter
	default: // unspecified, fail
		cfg.BadRecords = kafka.PolicyFail
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	strategy, err := watermarkStrategy(spec.GetEventTime().GetWatermark())
	if err != nil {
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	return &kafkaSource{
		cfg:         cfg,
		pollTimeout: e.pollTimeout,
		batchSize:   e.batchSize,
		wms:         newSplitWatermarks(strategy, e.clock),
	}, nil
}

// Open resolves the topics to this subtask's splits and their start
// offsets, starts fetching, and registers one watermark generator per
// split.
func (s *kafkaSource) Open(ctx context.Context) error {
	src, err := kafka.NewSource(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	s.src = src
	s.live.Store(src)
	splits := src.Splits()
	s.noSplits = len(splits) == 0
	if s.wms == nil {
		return nil
	}
	s.splits = make(map[kafka.Split]*eventtime.Split, len(splits))
	for _, sp := range splits {
		h, err := s.wms.addSplit(sp.String())
		if err != nil {
			return fmt.Errorf("kafka source: %w", err)
		}
		s.splits[sp] = h
	}
	s.wms.start()
	return nil
}

func (s *kafkaSource) Next(ctx context.Context, out Output) (bool, error) {
	// A subtask without partitions is idle from the start, so that it
	// does not hold back the watermark downstream.
	if err := s.emitStatus(ctx, out); err != nil {
		return false, err
	}
	// Known limit: under the dead-letter policy the connector flushes
	// dead-letter records with this same context, so a deadline that
	// strikes mid-flush fails the source for good (the connector should
	// flush without the poll's deadline).
	pctx, cancel := context.WithTimeout(ctx, s.pollTimeout)
	pollStart := time.Now()
	batches, err := s.src.Poll(pctx, s.batchSize)
	cancel()
	if rows := polledRows(batches); rows < s.batchSize {
		// Poll returned before a full batch was buffered: it waited for
		// input (Metrics: idle time, not processing).
		s.waited += time.Since(pollStart)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		// Nothing to read now: still run the periodic step below.
	default:
		return false, fmt.Errorf("kafka source: %w", err)
	}
	for i := range batches {
		if err := s.emit(ctx, &batches[i], out); err != nil {
			for _, b := range batches[i+1:] {
				b.Batch.Release()
			}
			return false, err
		}
	}
	if s.wms != nil {
		wm, ok := s.wms.tick()
		if err := s.emitWatermark(ctx, out, wm, ok); err != nil {
			return false, err
		}
	}
	return false, nil
}

// idleNow reports the source's watermark status: idle when it has no
// splits, or when every split is idle (the multiplexer's status).
func (s *kafkaSource) idleNow() bool {
	return s.noSplits || (s.wms != nil && s.wms.mux.Idle())
}

// emitStatus sends the source's watermark status if it changed.
func (s *kafkaSource) emitStatus(ctx context.Context, out Output) error {
	idle := s.idleNow()
	if idle == s.idle {
		return nil
	}
	s.idle = idle
	return out.EmitIdle(ctx, idle)
}

// emitWatermark sends wm if advanced, and a status change: an active
// status before the watermark, an idle one after it.
func (s *kafkaSource) emitWatermark(ctx context.Context, out Output, wm int64, advanced bool) error {
	idle := s.idleNow()
	if !idle {
		if err := s.emitStatus(ctx, out); err != nil {
			return err
		}
	}
	if advanced {
		if err := out.EmitWatermark(ctx, wm); err != nil {
			return err
		}
	}
	if idle {
		return s.emitStatus(ctx, out)
	}
	return nil
}

// emit sends one split batch downstream, after feeding its event times to
// the split's generator, and then the watermark if that raised it.
// It releases the batch.
func (s *kafkaSource) emit(ctx context.Context, b *kafka.SplitBatch, out Output) error {
	defer b.Batch.Release()
	var wm int64
	var advanced bool
	if s.wms != nil {
		h := s.splits[b.Split]
		if h == nil {
			return fmt.Errorf("kafka source: batch of split %s, which is not assigned to this subtask", b.Split)
		}
		var err error
		if wm, advanced, err = h.OnBatch(b.Batch, b.EventTime); err != nil {
			return fmt.Errorf("kafka source: %w", err)
		}
	}
	if b.Batch.NumRows() > 0 {
		// Records make their split, and so the source, active: say so
		// before sending them.
		if err := s.emitStatus(ctx, out); err != nil {
			return err
		}
		if err := out.Emit(ctx, b.Batch); err != nil {
			return err
		}
	}
	return s.emitWatermark(ctx, out, wm, advanced)
}

// Close stops fetching and frees the source. Idempotent.
func (s *kafkaSource) Close() error {
	if s.src != nil {
		s.src.Close()
	}
	return nil
}

// Flush cadence of the Kafka sink while there are no checkpoints.
const (
	kafkaSinkFlushBatches  = 64
	kafkaSinkFlushInterval = time.Second
)

// kafkaSink is the KafkaSink: it writes every row as one JSON record,
// at least once. The connector produces asynchronously; Flush waits for
// every acknowledgement and surfaces a produce failure, which fails the
// task.
//
// Until checkpoints exist there is no barrier to flush on, so the sink
// flushes after every kafkaSinkFlushBatches batches, when
// kafkaSinkFlushInterval (on Config.Clock) has passed since the last
// flush (checked on each batch and watermark), and at end of input
// (Finish). Records are sent as they are written either way; flushing
// bounds how long a produce failure goes unnoticed and how much is
// unacknowledged. A cancelled or failed task abandons unacknowledged
// records: they may or may not be in Kafka. Checkpoints will make the
// barrier the flush point (at least once across restarts), and the
// transactional variant exactly once.
type kafkaSink struct {
	cfg   kafka.SinkConfig
	clock clockwork.Clock

	sink      *kafka.Sink
	unflushed int // batches written since the last flush
	lastFlush time.Time
}

func newKafkaSink(spec *sabotv1.KafkaSink, v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	cfg := kafka.SinkConfig{
		Brokers:    spec.GetBrokers(),
		Topic:      spec.GetTopic(),
		Format:     kafka.FormatJSON, // the only sink format (the contract allows JSON only)
		KeyColumns: spec.GetKeyFields(),
		Subtask:    info.Subtask,
		Logger:     e.logger.With(slog.String("vertex", v.ID), slog.Int("subtask", info.Subtask)),
	}
	switch spec.GetPartitioner() {
	case sabotv1.KafkaPartitioner_KAFKA_PARTITIONER_ROUND_ROBIN:
		cfg.Partitioning = kafka.PartitionRoundRobin
	case sabotv1.KafkaPartitioner_KAFKA_PARTITIONER_FIXED:
		cfg.Partitioning = kafka.PartitionFixed
	default: // unspecified, hash
		cfg.Partitioning = kafka.PartitionDefault
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if spec.GetDelivery() == sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE {
		return newKafkaTxnSink(spec, cfg, v, info, e)
	}
	return &kafkaSink{cfg: cfg, clock: e.clock}, nil
}

// Open starts the producer (it connects on the first write).
func (s *kafkaSink) Open(context.Context) error {
	sink, err := kafka.NewSink(s.cfg)
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	s.sink = sink
	s.lastFlush = s.clock.Now()
	return nil
}

func (s *kafkaSink) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, _ Output) error {
	if err := s.sink.Write(ctx, rec); err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	s.unflushed++
	return s.maybeFlush(ctx)
}

func (s *kafkaSink) ProcessWatermark(ctx context.Context, _ int64, _ Output) error {
	return s.maybeFlush(ctx)
}

func (s *kafkaSink) maybeFlush(ctx context.Context) error {
	if s.unflushed == 0 {
		return nil
	}
	if s.unflushed < kafkaSinkFlushBatches && s.clock.Since(s.lastFlush) < kafkaSinkFlushInterval {
		return nil
	}
	return s.flush(ctx)
}

func (s *kafkaSink) flush(ctx context.Context) error {
	if err := s.sink.Flush(ctx); err != nil {
		return err // already says "kafka: sink flush"
	}
	s.unflushed = 0
	s.lastFlush = s.clock.Now()
	return nil
}

// Finish waits until every record is acknowledged.
func (s *kafkaSink) Finish(ctx context.Context, _ Output) error {
	return s.flush(ctx)
}

// Close closes the producer; after a cancel or failure it abandons
// unacknowledged records and reports how many. Idempotent.
func (s *kafkaSink) Close() error {
	if s.sink == nil {
		return nil
	}
	err := s.sink.Close()
	s.sink = nil
	return err
}

// polledRows counts the rows of a Poll's batches.
func polledRows(bs []kafka.SplitBatch) int {
	n := 0
	for i := range bs {
		n += int(bs[i].Batch.NumRows())
	}
	return n
}

// takeIdle returns the time spent waiting for input since the last call
// (Metrics); called by the task between Next calls.
func (s *kafkaSource) takeIdle() time.Duration {
	d := s.waited
	s.waited = 0
	return d
}

// lag is the records waiting in the source's partitions (Metrics); -1
// when not known yet.
func (s *kafkaSource) lag() int64 {
	src := s.live.Load()
	if src == nil {
		return -1
	}
	return src.Lag()
}

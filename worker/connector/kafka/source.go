package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Split is one partition of one topic: the unit a source reads, tracks an
// offset for, and generates watermarks for.
type Split struct {
	Topic     string
	Partition int32
}

// String is "topic/partition".
func (s Split) String() string { return s.Topic + "/" + strconv.Itoa(int(s.Partition)) }

// SplitBatch is the rows one Poll read from one split, in offset order.
type SplitBatch struct {
	Split Split
	// Batch has the source's Schema. The caller owns one reference and
	// releases it.
	Batch arrow.RecordBatch
	// EventTime holds each row's event time in milliseconds since the
	// epoch: the Kafka timestamp, or EventTimeField's value. It is valid
	// until the next Poll (its memory is reused).
	EventTime []int64
	// LastOffset is the offset of the last record this batch consumed
	// from the split (a skipped or dead-lettered record after the last
	// row counts); the split's next offset is LastOffset+1.
	LastOffset int64
}

// SourceStats are a source's counters since NewSource.
type SourceStats struct {
	Records      int64 // records returned as rows
	Skipped      int64 // bad records dropped under PolicySkip
	DeadLettered int64 // bad records acknowledged by the dead-letter topic
}

// Source reads Kafka partitions (splits) into Arrow record batches. See the
// package doc for the split and offset model and the concurrency contract.
type Source struct {
	cfg    SourceConfig
	cl     *kgo.Client
	schema *arrow.Schema
	splits []Split
	log    *slog.Logger

	// Guarded by pollMu: the decoding state, used by one Poll at a time.
	pollMu   sync.Mutex
	rb       *array.RecordBuilder
	dec      *decoder
	raw      [2]*array.BinaryBuilder // key, value for FormatRaw
	meta     []metaColumn
	evField  int // column of EventTimeField, or -1 for the Kafka timestamp
	times    []int64
	spans    [][2]int // EventTime range per out entry
	out      []SplitBatch
	pending  []Split // splits advanced by this Poll, with pendNext
	pendNext []int64
	dlqSent  int64
	failed   error // sticky: the source lost its position
	logLast  time.Time
	logQuiet int64 // bad records not logged since logLast

	mu struct {
		sync.Mutex
		next map[Split]int64 // next offset to read per split
		hw   map[Split]int64 // high watermark per split, as of the last fetch
	}
	dlqErr struct {
		sync.Mutex
		err error
	}
	dlqPromise func(*kgo.Record, error)

	records, skipped, deadLettered atomic.Int64
	closeOnce                      sync.Once
	closed                         atomic.Bool
}

type metaColumn struct {
	name string
	b    array.Builder
}

// NewSource resolves the configured topics to splits, assigns this
// subtask's splits, resolves their start positions to exact offsets (so
// Offsets is complete before the first record) and starts a kgo client
// fetching them. ctx bounds the resolution only; the source's lifetime
// ends with Close. It fails with ErrUnknownTopic if a topic is missing or
// the regex matches none.
func NewSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Source{cfg: cfg, log: cfg.Logger, evField: -1}
	s.schema = outputSchema(cfg)

	splits, starts, err := resolve(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.splits = splits
	s.mu.next = make(map[Split]int64, len(splits))
	assign := make(map[string]map[int32]kgo.Offset)
	for i, sp := range splits {
		s.mu.next[sp] = starts[i]
		if assign[sp.Topic] == nil {
			assign[sp.Topic] = make(map[int32]kgo.Offset)
		}
		assign[sp.Topic][sp.Partition] = kgo.NewOffset().At(starts[i])
	}

	opts := baseOpts(cfg.Brokers, cfg.Logger)
	opts = append(opts,
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(cfg.FetchMaxPartitionBytes),
		kgo.MaxConcurrentFetches(cfg.MaxConcurrentFetches),
		// A checkpointed offset that retention has since deleted: start
		// at the earliest record still there (Flink's default), and
		// report ErrDataLoss through Poll, which fails the job.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if !cfg.ReadUncommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if len(assign) > 0 {
		opts = append(opts, kgo.ConsumePartitions(assign))
	}
	opts = append(opts, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: source client: %w", err)
	}
	s.cl = cl

	s.rb = array.NewRecordBuilder(cfg.Allocator, s.schema)
	nUser := 0
	switch cfg.Format {
	case FormatRaw:
		s.raw = [2]*array.BinaryBuilder{s.rb.Field(0).(*array.BinaryBuilder), s.rb.Field(1).(*array.BinaryBuilder)}
		nUser = 2
	case FormatJSON, FormatCSV:
		nUser = cfg.Schema.NumFields()
		if cfg.EventTimeField != "" {
			s.evField = cfg.Schema.FieldIndices(cfg.EventTimeField)[0]
		}
	}
	s.dec = newDecoder(cfg.Format, cfg.Schema, s.rb.Fields()[:nUser])
	for i, name := range cfg.MetadataColumns {
		s.meta = append(s.meta, metaColumn{name: name, b: s.rb.Field(nUser + i)})
	}
	s.dlqPromise = func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		s.dlqErr.Lock()
		defer s.dlqErr.Unlock()
		if s.dlqErr.err == nil {
			s.dlqErr.err = &ProduceError{Topic: r.Topic, Partition: r.Partition, Err: err}
		}
	}
	return s, nil
}

// outputSchema is the user schema (or key/value for raw), all nullable,
// plus the metadata columns.
func outputSchema(cfg SourceConfig) *arrow.Schema {
	var fields []arrow.Field
	if cfg.Format == FormatRaw {
		fields = []arrow.Field{
			{Name: "key", Type: arrow.BinaryTypes.Binary, Nullable: true},
			{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
		}
	} else {
		for _, f := range cfg.Schema.Fields() {
			f.Nullable = true
			fields = append(fields, f)
		}
	}
	for _, m := range cfg.MetadataColumns {
		var t arrow.DataType
		switch m {
		case ColumnTopic:
			t = arrow.BinaryTypes.String
		case ColumnPartition:
			t = arrow.PrimitiveTypes.Int32
		case ColumnOffset:
			t = arrow.PrimitiveTypes.Int64
		default: // ColumnTimestamp (validated)
			t = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
		}
		fields = append(fields, arrow.Field{Name: m, Type: t, Nullable: false})
	}
	return arrow.NewSchema(fields, nil)
}

// Schema is the schema of every batch Poll returns.
func (s *Source) Schema() *arrow.Schema { return s.schema }

// Splits are this subtask's splits, sorted by topic and partition. A
// subtask with none (parallelism above the partition count) is idle for
// good: Poll only waits.
func (s *Source) Splits() []Split { return append([]Split(nil), s.splits...) }

// Offsets returns the next offset to read per split (topic → partition →
// offset): the checkpointable position, as of the last Poll that returned
// without error. Pass it as Start.Offsets to resume. Safe to call from any
// goroutine, concurrently with Poll.
func (s *Source) Offsets() map[string]map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[int32]int64)
	for sp, o := range s.mu.next {
		if out[sp.Topic] == nil {
			out[sp.Topic] = make(map[int32]int64)
		}
		out[sp.Topic][sp.Partition] = o
	}
	return out
}

// Lag returns the records available in the source's splits but not yet
// read: the partitions' high watermarks as of the latest fetches minus
// the next offsets, summed; -1 before any fetch reported a high
// watermark. Safe from any goroutine.
func (s *Source) Lag() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.hw) == 0 {
		return -1
	}
	var lag int64
	for sp, hw := range s.mu.hw {
		if next, ok := s.mu.next[sp]; ok && hw > next {
			lag += hw - next
		}
	}
	return lag
}

// Stats returns the source's counters. Safe from any goroutine.
func (s *Source) Stats() SourceStats {
	return SourceStats{Records: s.records.Load(), Skipped: s.skipped.Load(), DeadLettered: s.deadLettered.Load()}
}

// Poll returns the records buffered by the client, at most maxRows (and
// at most MaxPollRecords; maxRows ≤ 0 means MaxPollRecords), decoded into
// one SplitBatch per split and fetch, in offset order per split. A split
// may appear more than once in one result. Splits whose records were all
// skipped or dead-lettered appear only in Offsets.
//
// If nothing is buffered, Poll waits until something is or ctx is done,
// and then returns ctx's error: a task loop that must also serve barriers
// and timers polls with a deadline and treats context.DeadlineExceeded as
// "idle". Other errors (a *RecordError under PolicyFail, a *FetchError, a
// dead-letter *ProduceError) fail the source: nothing of that Poll is
// returned, Offsets stays where it was, and every later Poll returns the
// same error; restart from a checkpoint. After Close, Poll returns
// ErrClosed.
//
// The returned slice and each EventTime are reused by the next Poll; the
// batches are the caller's.
func (s *Source) Poll(ctx context.Context, maxRows int) ([]SplitBatch, error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if s.failed != nil {
		return nil, s.failed
	}
	n := s.cfg.MaxPollRecords
	if maxRows > 0 && maxRows < n {
		n = maxRows
	}
	fs := s.cl.PollRecords(ctx, n)
	if fs.IsClientClosed() {
		return nil, ErrClosed
	}
	var ferr error
	records := 0
	for i := range fs {
		for j := range fs[i].Topics {
			t := &fs[i].Topics[j]
			for k := range t.Partitions {
				p := &t.Partitions[k]
				records += len(p.Records)
				if p.Err != nil && ferr == nil {
					ferr = p.Err
					if !errors.Is(p.Err, context.Canceled) && !errors.Is(p.Err, context.DeadlineExceeded) {
						ferr = &FetchError{Topic: t.Topic, Partition: p.Partition, Err: p.Err}
					}
				}
			}
		}
	}
	if ferr != nil {
		var fe *FetchError
		if !errors.As(ferr, &fe) {
			if records == 0 {
				return nil, ferr // the poll's context ended: idle, not failed
			}
		} else {
			return nil, s.fail(ferr)
		}
	}

	s.out, s.spans, s.times = s.out[:0], s.spans[:0], s.times[:0]
	s.pending, s.pendNext, s.dlqSent = s.pending[:0], s.pendNext[:0], 0
	for i := range fs {
		for j := range fs[i].Topics {
			t := &fs[i].Topics[j]
			for k := range t.Partitions {
				if p := &t.Partitions[k]; len(p.Records) > 0 {
					if err := s.decodePartition(ctx, t.Topic, p); err != nil {
						return nil, s.fail(err)
					}
				}
			}
		}
	}
	if s.dlqSent > 0 {
		// The dead-letter records must be durable before Offsets moves
		// past their origin: a checkpoint may be taken right after. The
		// flush outlives the poll's deadline (a caller polling with a short
		// deadline must not fail the source by it) but not a cancellation,
		// and is bounded by dlqFlushTimeout.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dlqFlushTimeout)
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.Canceled) {
				cancel()
			}
		})
		err := s.cl.Flush(fctx)
		stop()
		cancel()
		if err != nil {
			return nil, s.fail(fmt.Errorf("kafka: flush dead-letter records: %w", err))
		}
		s.dlqErr.Lock()
		err = s.dlqErr.err
		s.dlqErr.Unlock()
		if err != nil {
			return nil, s.fail(err)
		}
		s.deadLettered.Add(s.dlqSent)
	}
	for i := range s.out {
		s.out[i].EventTime = s.times[s.spans[i][0]:s.spans[i][1]:s.spans[i][1]]
	}
	s.mu.Lock()
	for i, sp := range s.pending {
		s.mu.next[sp] = s.pendNext[i]
	}
	if s.mu.hw == nil {
		s.mu.hw = map[Split]int64{}
	}
	for i := range fs {
		for j := range fs[i].Topics {
			t := &fs[i].Topics[j]
			for k := range t.Partitions {
				if p := &t.Partitions[k]; p.HighWatermark >= 0 && p.Err == nil {
					s.mu.hw[Split{Topic: t.Topic, Partition: p.Partition}] = p.HighWatermark
				}
			}
		}
	}
	s.mu.Unlock()
	return s.out, nil
}

// fail makes err sticky and releases the batches built by the failed
// Poll. pollMu must be held.
func (s *Source) fail(err error) error {
	for _, b := range s.out {
		b.Batch.Release()
	}
	s.out = s.out[:0]
	// Drop rows half-built when the error struck.
	s.rb.NewRecordBatch().Release()
	s.failed = err
	return err
}

// decodePartition appends one fetch's records of one split as a batch.
// pollMu must be held.
func (s *Source) decodePartition(ctx context.Context, topic string, p *kgo.FetchPartition) error {
	split := Split{Topic: topic, Partition: p.Partition}
	lo, rows := len(s.times), 0
	var topicBytes []byte
	for _, r := range p.Records {
		ts, err := s.decodeRecord(r)
		if err != nil {
			if err := s.badRecord(ctx, r, err); err != nil {
				return err
			}
			continue
		}
		for _, m := range s.meta {
			switch m.name {
			case ColumnTopic:
				if topicBytes == nil {
					topicBytes = []byte(topic)
				}
				m.b.(*array.StringBuilder).BinaryBuilder.Append(topicBytes)
			case ColumnPartition:
				m.b.(*array.Int32Builder).Append(r.Partition)
			case ColumnOffset:
				m.b.(*array.Int64Builder).Append(r.Offset)
			default: // ColumnTimestamp
				m.b.(*array.TimestampBuilder).Append(arrow.Timestamp(r.Timestamp.UnixMilli()))
			}
		}
		s.times = append(s.times, ts)
		rows++
	}
	last := p.Records[len(p.Records)-1].Offset
	if rows > 0 {
		s.out = append(s.out, SplitBatch{Split: split, Batch: s.rb.NewRecordBatch(), LastOffset: last})
		s.spans = append(s.spans, [2]int{lo, len(s.times)})
		s.records.Add(int64(rows))
	}
	s.pending = append(s.pending, split)
	s.pendNext = append(s.pendNext, last+1)
	return nil
}

// decodeRecord appends r's user columns (all or nothing) and returns its
// event time.
func (s *Source) decodeRecord(r *kgo.Record) (int64, error) {
	if s.cfg.Format == FormatRaw {
		if r.Key == nil {
			s.raw[0].AppendNull()
		} else {
			s.raw[0].Append(r.Key)
		}
		if r.Value == nil {
			s.raw[1].AppendNull()
		} else {
			s.raw[1].Append(r.Value)
		}
		return r.Timestamp.UnixMilli(), nil
	}
	if r.Value == nil {
		return 0, malformedf("null value (tombstone)")
	}
	if err := s.dec.stage(r.Value); err != nil {
		return 0, err
	}
	ts := r.Timestamp.UnixMilli()
	if s.evField >= 0 {
		var err error
		if ts, err = s.dec.eventTimeMillis(s.evField); err != nil {
			return 0, err
		}
	}
	s.dec.commit()
	return ts, nil
}

// badRecord applies the policy to r, which failed to decode with err.
func (s *Source) badRecord(ctx context.Context, r *kgo.Record, err error) error {
	switch s.cfg.BadRecords {
	case PolicySkip:
		s.skipped.Add(1)
		now := s.cfg.Clock.Now()
		if !s.logLast.IsZero() && now.Sub(s.logLast) < s.cfg.BadRecordLogInterval {
			s.logQuiet++
			return nil
		}
		s.log.Warn("kafka: skipped malformed record",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"error", err, "skipped_unlogged", s.logQuiet)
		s.logLast, s.logQuiet = now, 0
		return nil
	case PolicyDeadLetter:
		headers := make([]kgo.RecordHeader, 0, len(r.Headers)+4)
		headers = append(headers, r.Headers...)
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
			kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		)
		dl := &kgo.Record{
			Topic:     s.cfg.DeadLetterTopic,
			Key:       r.Key,
			Value:     r.Value,
			Headers:   headers,
			Timestamp: r.Timestamp,
			// Records outlive this Poll's ctx while they are flushed.
			Context: context.WithoutCancel(ctx),
		}
		s.cl.Produce(ctx, dl, s.dlqPromise)
		s.dlqSent++
		return nil
	default: // PolicyFail
		return &RecordError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
}

// Close stops fetching and releases the source's memory. A Poll blocked
// concurrently returns ErrClosed. Batches already returned stay valid.
// Dead-letter records not yet acknowledged are abandoned (their origin
// offsets were never reported by Offsets). Idempotent.
func (s *Source) Close() {
	s.closeOnce.Do(func() {
		// Stop intake first: closing the client wakes a blocked Poll,
		// which then sees the client closed and returns.
		s.closed.Store(true)
		s.cl.Close()
		// Then wait for that Poll before freeing what it uses.
		s.pollMu.Lock()
		defer s.pollMu.Unlock()
		s.rb.Release()
	})
}

// dlqFlushTimeout bounds the wait for dead-letter records to be
// acknowledged at the end of a Poll.
const dlqFlushTimeout = 30 * time.Second

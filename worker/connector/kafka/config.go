package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of SourceConfig and SinkConfig, applied to zero fields.
const (
	DefaultMaxPollRecords         = 4096
	DefaultFetchMaxBytes          = 4 << 20
	DefaultFetchMaxPartitionBytes = 1 << 20
	DefaultMaxConcurrentFetches   = 4
	DefaultBadRecordLogInterval   = 10 * time.Second
	DefaultMaxBufferedRecords     = 10000
	DefaultMaxBufferedBytes       = 32 << 20
	// DefaultTransactionTimeout is Kafka's default broker maximum
	// (transaction.max.timeout.ms, 15 minutes): the longest a TxnSink
	// transaction may stay open that an unconfigured broker accepts.
	DefaultTransactionTimeout = 15 * time.Minute
	// DefaultMaxPendingTransactions bounds a TxnSink's pre-committed
	// transactions waiting for their checkpoint to complete.
	DefaultMaxPendingTransactions = 8
)

// Metadata column names a Source can append to its output (MetadataColumns).
const (
	ColumnTopic     = "_topic"     // utf8: the record's topic
	ColumnPartition = "_partition" // int32: the record's partition
	ColumnOffset    = "_offset"    // int64: the record's offset
	ColumnTimestamp = "_timestamp" // timestamp[ms, UTC]: the record's Kafka timestamp
)

// Format is how record values are decoded (Source) or encoded (Sink).
type Format uint8

const (
	// FormatJSON is one JSON object per record value. Source: fields by
	// name into the schema's columns; a missing field or JSON null is
	// null; fields not in the schema are ignored. Sink: one object per
	// row, a key per column.
	FormatJSON Format = iota
	// FormatCSV is one CSV line per record value (RFC 4180 quoting, comma
	// separated), its fields the schema's columns in order. An empty
	// unquoted field is null; "" (quoted) is the empty string. Source only.
	FormatCSV
	// FormatRaw puts the record's key and value bytes, unparsed, into
	// binary columns "key" and "value" (a null key stays null). The
	// schema must be nil. Source only; raw records never fail to decode.
	FormatRaw
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatCSV:
		return "csv"
	case FormatRaw:
		return "raw"
	default:
		return fmt.Sprintf("Format(%d)", uint8(f))
	}
}

// StartMode says where a source's splits begin.
type StartMode uint8

const (
	// StartEarliest begins every split at its log start offset.
	StartEarliest StartMode = iota
	// StartLatest begins every split at its end (the last stable offset
	// under read_committed), as resolved when NewSource runs.
	StartLatest
	// StartTimestamp begins every split at its first record whose
	// timestamp is at or after Start.TimestampMillis, or at its end if
	// there is none.
	StartTimestamp
	// StartOffsets begins each split at Start.Offsets[topic][partition]
	// (the next offset to read, as returned by Source.Offsets): the
	// restore path from a checkpoint. Splits not in the map (partitions
	// added since) begin at their log start offset, as Flink's.
	StartOffsets
)

func (m StartMode) String() string {
	switch m {
	case StartEarliest:
		return "earliest"
	case StartLatest:
		return "latest"
	case StartTimestamp:
		return "timestamp"
	case StartOffsets:
		return "offsets"
	default:
		return fmt.Sprintf("StartMode(%d)", uint8(m))
	}
}

// Start is a source's starting position.
type Start struct {
	Mode StartMode
	// TimestampMillis is the start time for StartTimestamp, in
	// milliseconds since the epoch.
	TimestampMillis int64
	// Offsets holds the next offset to read per topic and partition for
	// StartOffsets.
	Offsets map[string]map[int32]int64
}

// BadRecordPolicy says what a Source does with a record it cannot decode.
type BadRecordPolicy uint8

const (
	// PolicyFail (the default) makes Poll return a *RecordError naming the
	// topic, partition, offset and the problem. Nothing of that Poll is
	// returned and Offsets does not advance past it: the job fails and
	// restarts from its last checkpoint, where it fails again until the
	// record or the policy is changed.
	PolicyFail BadRecordPolicy = iota
	// PolicySkip drops the record, counts it (SourceStats.Skipped) and logs
	// it (topic, partition, offset, error) at most once per
	// BadRecordLogInterval, with the number of records not logged since.
	PolicySkip
	// PolicyDeadLetter produces the record, unchanged (key, value,
	// timestamp, headers), to DeadLetterTopic with headers naming the
	// error and the origin (see HeaderError and friends), and counts it.
	// Poll returns only after the dead-letter records it wrote are
	// acknowledged, so a checkpoint of Offsets never covers a bad record
	// that is not durably in the dead-letter topic.
	PolicyDeadLetter
)

func (p BadRecordPolicy) String() string {
	switch p {
	case PolicyFail:
		return "fail"
	case PolicySkip:
		return "skip"
	case PolicyDeadLetter:
		return "dead-letter"
	default:
		return fmt.Sprintf("BadRecordPolicy(%d)", uint8(p))
	}
}

// Headers a Source adds to a dead-letter record.
const (
	HeaderError     = "sabot.error"     // the decode error text
	HeaderTopic     = "sabot.topic"     // origin topic
	HeaderPartition = "sabot.partition" // origin partition (decimal)
	HeaderOffset    = "sabot.offset"    // origin offset (decimal)
)

// SourceConfig configures a Source. Zero fields take the documented
// defaults; Validate rejects contradictions.
type SourceConfig struct {
	// Brokers are the seed brokers ("host:port"). Required.
	Brokers []string
	// Topics to read; exactly one of Topics and TopicRegex is set.
	Topics []string
	// TopicRegex selects every non-internal topic whose name it matches
	// (Go regexp syntax, anchored as written). Topics are resolved once,
	// in NewSource; later topics are not discovered (see the package doc).
	TopicRegex string

	// Subtask and Parallelism select this reader's splits among
	// Parallelism readers, as Flink's KafkaSourceEnumerator assigns them:
	// split (topic, p) goes to (hash(topic)*31 & 0x7fffffff + p) %
	// Parallelism, hash being Java's String.hashCode. Default 0 of 1: every
	// split.
	Subtask     int
	Parallelism int

	// Start is where the splits begin (default StartEarliest). Positions
	// are resolved to exact offsets in NewSource, so Offsets is complete
	// from the start and a checkpoint taken before the first record still
	// restores to the same place.
	Start Start

	// Format of record values (default FormatJSON).
	Format Format
	// Schema is the user schema for FormatJSON and FormatCSV (required
	// there; nil for FormatRaw). Supported column types: int8–64,
	// uint8–64, float32/64, bool, utf8, large_utf8, binary, large_binary
	// (base64 in JSON, raw in CSV), timestamp (any unit; a JSON number or a
	// CSV integer is a count of that unit since the epoch, a string is RFC
	// 3339 or "2006-01-02 15:04:05[.fff]" in UTC), date32 ("2006-01-02").
	// Every column is nullable in the output.
	Schema *arrow.Schema
	// MetadataColumns appends, in the given order, any of ColumnTopic,
	// ColumnPartition, ColumnOffset and ColumnTimestamp to the output.
	MetadataColumns []string
	// EventTimeField names a timestamp or int64 (milliseconds) column of
	// Schema whose value is each row's event time; a row where it is null
	// is malformed. Empty (the default): the Kafka record timestamp.
	EventTimeField string

	// BadRecords is the policy for records that do not decode (default
	// PolicyFail).
	BadRecords BadRecordPolicy
	// DeadLetterTopic receives bad records under PolicyDeadLetter; it must
	// be set then, and only then.
	DeadLetterTopic string
	// BadRecordLogInterval bounds PolicySkip's logging to one line per
	// interval (default DefaultBadRecordLogInterval).
	BadRecordLogInterval time.Duration

	// MaxPollRecords caps the records one Poll takes from the client
	// (default DefaultMaxPollRecords); Poll's maxRows can only lower it.
	MaxPollRecords int
	// FetchMaxBytes, FetchMaxPartitionBytes and MaxConcurrentFetches bound
	// what the client buffers ahead of Poll: at most MaxConcurrentFetches
	// fetches of at most FetchMaxBytes each (defaults 4 MiB, 1 MiB, 4; a
	// single record batch larger than the limits is still fetched whole so
	// that consumption progresses).
	FetchMaxBytes          int32
	FetchMaxPartitionBytes int32
	MaxConcurrentFetches   int
	// ReadUncommitted reads records of open and aborted transactions too.
	// Default false: read_committed, so the output of Sabot's (future)
	// transactional sinks is read exactly once.
	ReadUncommitted bool

	// GroupID, when set, is the consumer group CommitGroupOffsets commits
	// to, for monitoring lag with ordinary Kafka tools. Offsets are never
	// read back from it: a source's position lives in checkpoints. Default
	// empty: no group.
	GroupID string

	// Allocator for output batches (default memory.DefaultAllocator).
	Allocator memory.Allocator
	// Logger for rate-limited bad-record lines and warnings (default: a
	// logger that discards).
	Logger *slog.Logger
	// Clock paces bad-record logging (default the real clock).
	Clock clockwork.Clock
	// ClientOpts are appended to the kgo options the source builds (after
	// them, so they win): TLS, SASL, a dialer or a kgo logger. Options that
	// change what is consumed (ConsumeTopics, ConsumerGroup...) break the
	// split model and must not be passed.
	ClientOpts []kgo.Opt
}

// withDefaults returns c with zero fields defaulted.
func (c SourceConfig) withDefaults() SourceConfig {
	if c.Parallelism == 0 {
		c.Parallelism = 1
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.FetchMaxPartitionBytes == 0 {
		c.FetchMaxPartitionBytes = DefaultFetchMaxPartitionBytes
	}
	if c.MaxConcurrentFetches == 0 {
		c.MaxConcurrentFetches = DefaultMaxConcurrentFetches
	}
	if c.BadRecordLogInterval == 0 {
		c.BadRecordLogInterval = DefaultBadRecordLogInterval
	}
	if c.Allocator == nil {
		c.Allocator = memory.DefaultAllocator
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return c
}

// Validate reports every contradiction in c (after defaults), joined.
func (c SourceConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kafka: source config: "+format, args...))
	}
	if len(c.Brokers) == 0 {
		bad("no brokers")
	}
	switch {
	case len(c.Topics) == 0 && c.TopicRegex == "":
		bad("no topics: set Topics or TopicRegex")
	case len(c.Topics) > 0 && c.TopicRegex != "":
		bad("both Topics and TopicRegex are set")
	case c.TopicRegex != "":
		if _, err := regexp.Compile(c.TopicRegex); err != nil {
			bad("topic regex: %v", err)
		}
	}
	for _, t := range c.Topics {
		if t == "" {
			bad("empty topic name")
		}
	}
	if c.Parallelism < 1 || c.Subtask < 0 || c.Subtask >= c.Parallelism {
		bad("subtask %d of parallelism %d", c.Subtask, c.Parallelism)
	}
	switch c.Start.Mode {
	case StartEarliest, StartLatest:
	case StartTimestamp:
		if c.Start.TimestampMillis < 0 {
			bad("start timestamp %d is negative", c.Start.TimestampMillis)
		}
	case StartOffsets:
		for t, ps := range c.Start.Offsets {
			for p, o := range ps {
				if o < 0 {
					bad("start offset %d for %s/%d is negative", o, t, p)
				}
			}
		}
	default:
		bad("unknown start mode %v", c.Start.Mode)
	}
	if c.Start.Mode != StartOffsets && len(c.Start.Offsets) > 0 {
		bad("start offsets given with start mode %v", c.Start.Mode)
	}
	var names []string // output column names so far
	switch c.Format {
	case FormatJSON, FormatCSV:
		if c.Schema == nil || c.Schema.NumFields() == 0 {
			bad("format %v needs a schema with at least one field", c.Format)
			break
		}
		for _, f := range c.Schema.Fields() {
			if _, ok := kindOf(f.Type); !ok {
				bad("column %q: unsupported type %v", f.Name, f.Type)
			}
			names = append(names, f.Name)
		}
	case FormatRaw:
		if c.Schema != nil {
			bad("format raw takes no schema (its columns are key and value)")
		}
		if c.EventTimeField != "" {
			bad("format raw has no event-time field; leave EventTimeField empty for the Kafka timestamp")
		}
		names = append(names, "key", "value")
	default:
		bad("unknown format %v", c.Format)
	}
	for _, m := range c.MetadataColumns {
		switch m {
		case ColumnTopic, ColumnPartition, ColumnOffset, ColumnTimestamp:
		default:
			bad("unknown metadata column %q (want %s, %s, %s or %s)", m, ColumnTopic, ColumnPartition, ColumnOffset, ColumnTimestamp)
		}
		names = append(names, m)
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			bad("duplicate output column %q", n)
		}
		seen[n] = true
	}
	if c.EventTimeField != "" && c.Schema != nil {
		idx := c.Schema.FieldIndices(c.EventTimeField)
		if len(idx) == 0 {
			bad("event-time field %q is not in the schema", c.EventTimeField)
		} else if id := c.Schema.Field(idx[0]).Type.ID(); id != arrow.TIMESTAMP && id != arrow.INT64 {
			bad("event-time field %q has type %v, want timestamp or int64 (ms)", c.EventTimeField, c.Schema.Field(idx[0]).Type)
		}
	}
	switch c.BadRecords {
	case PolicyFail, PolicySkip:
		if c.DeadLetterTopic != "" {
			bad("dead-letter topic %q set with policy %v", c.DeadLetterTopic, c.BadRecords)
		}
	case PolicyDeadLetter:
		if c.DeadLetterTopic == "" {
			bad("policy dead-letter needs DeadLetterTopic")
		}
	default:
		bad("unknown bad-record policy %v", c.BadRecords)
	}
	if c.MaxPollRecords < 0 || c.FetchMaxBytes < 0 || c.FetchMaxPartitionBytes < 0 || c.MaxConcurrentFetches < 0 || c.BadRecordLogInterval < 0 {
		bad("negative limit")
	}
	return errors.Join(errs...)
}

// String describes c without ClientOpts (which may hold credentials).
func (c SourceConfig) String() string {
	topics := strings.Join(c.Topics, ",")
	if c.TopicRegex != "" {
		topics = "/" + c.TopicRegex + "/"
	}
	return fmt.Sprintf("kafka source{brokers=%s topics=%s subtask=%d/%d start=%v format=%v policy=%v}",
		strings.Join(c.Brokers, ","), topics, c.Subtask, c.Parallelism, c.Start.Mode, c.Format, c.BadRecords)
}

// Partitioning says how a Sink picks a record's partition.
type Partitioning uint8

const (
	// PartitionDefault hashes the key as Kafka's Java client does
	// (murmur2), so a key always lands on the same partition; records
	// without a key stick to one partition per batch (kgo's sticky
	// partitioner).
	PartitionDefault Partitioning = iota
	// PartitionRoundRobin spreads records over partitions in turn,
	// ignoring the key.
	PartitionRoundRobin
	// PartitionFixed writes every record of this subtask to partition
	// Subtask % partitions (Flink's FlinkFixedPartitioner).
	PartitionFixed
)

func (p Partitioning) String() string {
	switch p {
	case PartitionDefault:
		return "default"
	case PartitionRoundRobin:
		return "round-robin"
	case PartitionFixed:
		return "fixed"
	default:
		return fmt.Sprintf("Partitioning(%d)", uint8(p))
	}
}

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// Topic receives every record. Required.
	Topic string
	// Format of record values; only FormatJSON (the default) is supported.
	Format Format
	// KeyColumns make the record key: one column gives its value's bytes
	// (a string's UTF-8, a binary's bytes, anything else its JSON text);
	// several give a JSON array of their values. A null single key is no
	// key. Default none: records without keys.
	KeyColumns []string
	// Partitioning (default PartitionDefault).
	Partitioning Partitioning
	// Subtask is this writer's subtask index, for PartitionFixed.
	Subtask int
	// MaxBufferedRecords and MaxBufferedBytes bound records produced but
	// not yet acknowledged; Write blocks (backpressure) while they are
	// reached. Defaults DefaultMaxBufferedRecords, DefaultMaxBufferedBytes.
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// Logger (default discards).
	Logger *slog.Logger
	// ClientOpts are appended to the kgo options the sink builds.
	ClientOpts []kgo.Opt
}

func (c SinkConfig) withDefaults() SinkConfig {
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every contradiction in c, joined.
func (c SinkConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kafka: sink config: "+format, args...))
	}
	if len(c.Brokers) == 0 {
		bad("no brokers")
	}
	if c.Topic == "" {
		bad("no topic")
	}
	if c.Format != FormatJSON {
		bad("format %v is not supported by the sink (json only)", c.Format)
	}
	seen := map[string]bool{}
	for _, k := range c.KeyColumns {
		if seen[k] {
			bad("duplicate key column %q", k)
		}
		seen[k] = true
	}
	switch c.Partitioning {
	case PartitionDefault, PartitionRoundRobin:
	case PartitionFixed:
		if c.Subtask < 0 {
			bad("negative subtask %d", c.Subtask)
		}
	default:
		bad("unknown partitioning %v", c.Partitioning)
	}
	if c.MaxBufferedRecords < 0 || c.MaxBufferedBytes < 0 {
		bad("negative buffer limit")
	}
	return errors.Join(errs...)
}

// String describes c without ClientOpts.
func (c SinkConfig) String() string {
	return fmt.Sprintf("kafka sink{brokers=%s topic=%s format=%v key=%v partitioning=%v}",
		strings.Join(c.Brokers, ","), c.Topic, c.Format, c.KeyColumns, c.Partitioning)
}

// TxnSinkConfig configures a TxnSink: a SinkConfig (its Subtask also
// names the transactional ids, whatever the partitioning; its ClientOpts
// go to every client the sink makes and must not set a transactional id
// or transaction timeout) and the transaction settings.
type TxnSinkConfig struct {
	SinkConfig

	// TransactionalIDPrefix names this sink's transactions: transaction
	// number seq of subtask i is "<prefix>-<i>-<seq>". Required. It must be
	// unique to the job and sink (no other producer may use ids under it)
	// and stable across restarts of the job, since recovery looks for the
	// transactions a crashed attempt left open under it; a job started
	// afresh (no restored state) should get a new prefix, or recovery
	// walks every id an earlier run of the prefix used.
	TransactionalIDPrefix string
	// TransactionTimeout is the transaction timeout the broker enforces
	// (transaction_timeout_ms; default DefaultTransactionTimeout). A
	// transaction stays open from the first row after a checkpoint until
	// the next checkpoint completes and is committed, or, after a crash,
	// until the next attempt recovers it: the broker aborts one that
	// outlives the timeout, and the rows of a completed checkpoint are then
	// lost (ErrTransactionLost). It must not exceed the broker's
	// transaction.max.timeout.ms, or the broker refuses every transaction.
	// CheckTransactionTimeout checks both bounds.
	TransactionTimeout time.Duration
	// MaxPendingTransactions bounds the transactions pre-committed and not
	// yet committed (default DefaultMaxPendingTransactions); PreCommit
	// blocks while it is reached.
	MaxPendingTransactions int
}

func (c TxnSinkConfig) withDefaults() TxnSinkConfig {
	c.SinkConfig = c.SinkConfig.withDefaults()
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.MaxPendingTransactions == 0 {
		c.MaxPendingTransactions = DefaultMaxPendingTransactions
	}
	return c
}

// Validate reports every contradiction in c, joined.
func (c TxnSinkConfig) Validate() error {
	errs := []error{c.SinkConfig.Validate()}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kafka: txn sink config: "+format, args...))
	}
	if c.TransactionalIDPrefix == "" {
		bad("no transactional id prefix")
	}
	if c.Subtask < 0 {
		bad("negative subtask %d", c.Subtask)
	}
	if c.TransactionTimeout < 0 || (c.TransactionTimeout > 0 && c.TransactionTimeout < time.Millisecond) ||
		c.TransactionTimeout.Milliseconds() > math.MaxInt32 {
		bad("transaction timeout %v out of range (1ms to %v)", c.TransactionTimeout, time.Duration(math.MaxInt32)*time.Millisecond)
	}
	if c.MaxPendingTransactions < 0 {
		bad("negative max pending transactions %d", c.MaxPendingTransactions)
	}
	return errors.Join(errs...)
}

// String describes c without ClientOpts.
func (c TxnSinkConfig) String() string {
	return fmt.Sprintf("kafka txn sink{brokers=%s topic=%s format=%v key=%v partitioning=%v transactional_id_prefix=%s subtask=%d transaction_timeout=%v}",
		strings.Join(c.Brokers, ","), c.Topic, c.Format, c.KeyColumns, c.Partitioning, c.TransactionalIDPrefix, c.Subtask, c.withDefaults().TransactionTimeout)
}

// CheckTransactionTimeout reports whether a TxnSink's transaction timeout
// txTimeout is safe for a job that checkpoints every checkpointInterval,
// on brokers whose transaction.max.timeout.ms is brokerMax.
// recoveryAllowance is the longest the job may take, beyond one interval,
// to complete and commit a checkpoint or, after a crash, to restart and
// recover (failure detection, rescheduling, state download).
//
// Both bounds are traps that lose no time on a healthy day:
//
//   - txTimeout must exceed checkpointInterval + recoveryAllowance. A
//     transaction is open from the first row after one checkpoint until
//     the next checkpoint is committed, or until the next attempt recovers
//     it after a crash. The broker aborts a transaction that outlives its
//     timeout, even one its checkpoint has already covered: those rows are
//     lost, and the sink reports ErrTransactionLost only when it tries to
//     commit.
//   - txTimeout must not exceed brokerMax: the broker refuses it at
//     InitProducerID (INVALID_TRANSACTION_TIMEOUT), so no transaction ever
//     starts.
//
// The returned error explains each violated bound; nil means both hold.
func CheckTransactionTimeout(txTimeout, brokerMax, checkpointInterval, recoveryAllowance time.Duration) error {
	var errs []error
	if txTimeout <= 0 || brokerMax <= 0 || checkpointInterval <= 0 || recoveryAllowance < 0 {
		return fmt.Errorf("kafka: transaction timeout check: need positive durations, got transaction timeout %v, broker maximum %v, checkpoint interval %v, recovery allowance %v",
			txTimeout, brokerMax, checkpointInterval, recoveryAllowance)
	}
	if need := checkpointInterval + recoveryAllowance; txTimeout <= need {
		errs = append(errs, fmt.Errorf("kafka: transaction timeout %v must exceed the checkpoint interval %v plus the recovery allowance %v (%v): "+
			"a transaction stays open until its checkpoint completes and is committed, or until a restarted job recovers it, "+
			"and the broker aborts one that outlives its timeout, losing rows of a completed checkpoint",
			txTimeout, checkpointInterval, recoveryAllowance, need))
	}
	if txTimeout > brokerMax {
		errs = append(errs, fmt.Errorf("kafka: transaction timeout %v exceeds the broker's transaction.max.timeout.ms %v: "+
			"the broker refuses it at InitProducerID (INVALID_TRANSACTION_TIMEOUT) and no transaction can start; "+
			"raise transaction.max.timeout.ms on the brokers or lower transaction_timeout_ms",
			txTimeout, brokerMax))
	}
	return errors.Join(errs...)
}

// Package kafka is Sabot's Kafka connector: a Source that reads partitions
// into Arrow record batches and an at-least-once Sink that writes the rows
// of record batches as records, both on franz-go (kgo). It owns decoding
// (JSON, CSV, raw) and encoding (JSON), split assignment and offset
// tracking, the bad-record policies, and the kgo clients' limits. It does
// not own watermark generation, checkpoint storage or the task loop: the
// runtime (worker/runtime) drives a Source and a Sink from a task and
// stores what Offsets returns in its checkpoints.
//
// # Splits and offsets
//
// A split is one partition of one topic. NewSource resolves Topics (or
// TopicRegex, once) to splits, keeps those of its subtask (Flink's
// KafkaSourceEnumerator assignment: a topic's partitions go round-robin
// from a topic-dependent subtask), and resolves the Start position of each
// to an exact offset with ListOffsets before fetching: earliest, latest,
// the first record at or after a timestamp, or given offsets (the restore
// path; splits not given start at earliest). Partitions are assigned to
// the kgo client directly (kgo.ConsumePartitions); there is no consumer
// group, no rebalance, and no committed offset is ever read.
//
// Offsets returns, per split, the next offset to read: one past the last
// record that a successful Poll consumed, whether that record became a
// row, was skipped, or was dead-lettered. It is the checkpointable
// position: a checkpoint taken between two Polls, with the batches of the
// first already emitted downstream, restores (Start{Mode: StartOffsets,
// Offsets: ...}) to exactly the next record. Because starts are resolved
// eagerly, Offsets is complete even before the first record. Group commits
// (CommitGroupOffsets, with GroupID) exist only so that ordinary Kafka
// tools can show lag; call them after a checkpoint completes.
//
// Each SplitBatch carries its split, the rows, each row's event time (ms;
// the Kafka timestamp or EventTimeField) and its last offset, so the
// runtime can run one watermark generator per split and take the minimum.
// Reads use read_committed by default.
//
// # Bad records
//
// A record that does not decode (invalid JSON, a value of the wrong type or
// out of range, a CSV line with the wrong field count, a null event time,
// a tombstone in JSON or CSV) is handled by BadRecordPolicy:
//
//   - PolicyFail: Poll returns a *RecordError naming topic, partition,
//     offset and the problem (it matches ErrMalformed); nothing of that
//     Poll is returned and Offsets stays before the record.
//   - PolicySkip: the record is dropped and counted (Stats().Skipped); a
//     Warn line names topic, partition, offset and error, at most once per
//     BadRecordLogInterval, with the count of lines suppressed since.
//   - PolicyDeadLetter: the record is produced unchanged to
//     DeadLetterTopic with headers sabot.error, sabot.topic,
//     sabot.partition and sabot.offset; Poll waits for those acks before it
//     returns, so a checkpoint never covers a bad record that is not
//     durably in the dead-letter topic.
//
// A row is appended whole or not at all: decoding stages every field and
// only then appends to the builders.
//
// # Bounded memory
//
// The kgo client buffers at most MaxConcurrentFetches fetches of at most
// FetchMaxBytes each (a record batch larger than the limit is still
// fetched whole, as Kafka requires for progress); a Poll takes at most
// MaxPollRecords of them; the Sink blocks in Write while MaxBufferedRecords
// or MaxBufferedBytes are unacknowledged.
//
// # Concurrency contract
//
// A Source and a Sink are each owned by one task goroutine: Poll, Write
// and Flush are not called concurrently with themselves. Offsets, Stats and
// Close are safe from any goroutine; Close wakes a Poll blocked waiting
// for records (it returns ErrClosed) and waits for it before freeing
// memory. Neither starts goroutines of its own besides the kgo client's,
// which Close stops. Poll blocks until records are buffered or its ctx
// ends: a task loop that must also serve barriers and timers polls with a
// deadline and treats context.DeadlineExceeded as idle.
//
// # Sink and the transactional variant
//
// Sink.Write encodes each row into a pooled kgo.Record (its value and key
// buffers are reused once the record is acknowledged, so steady writing
// allocates nothing per row) and produces asynchronously with an
// idempotent producer (acks=all). Flush waits for every ack and returns
// the first failure; a failure is sticky, since at-least-once output cannot
// continue past a lost record. The runtime calls Flush when a checkpoint
// barrier passes (and at end of input): the checkpoint covers only rows
// that Flush saw acknowledged, so after a restore they may be written
// again (at least once), never lost.
//
// The exactly-once (two-phase commit) variant, next milestone, reuses the
// encoder, key and partitioner code unchanged and differs in the client
// and its lifecycle: one kgo client per subtask with
// kgo.TransactionalID(job/vertex/subtask/n), so a restarted subtask fences
// its zombie; BeginTransaction when the first row after a checkpoint is
// written; on the barrier, Flush and keep the transaction open
// (pre-commit), recording (transactional id, producer id, epoch) in the
// snapshot; on checkpoint complete, EndTransaction(TryCommit); on restore,
// commit what the restored snapshot lists and abort anything newer. A
// kgo client holds one open transaction, so rows after a barrier whose
// checkpoint is not yet complete go to a second client from a small pool
// of transactional ids, as Flink's KafkaWriter does.
//
// # Deferred
//
//   - Discovery of partitions and topics created after NewSource.
//   - Avro and Protobuf formats, schema registry, nested JSON types
//     (lists, structs, maps), decimals; a sink format other than JSON and
//     a record timestamp taken from a column (the sink lets kgo stamp the
//     produce time).
//   - Per-split pause/resume (kgo.PauseFetchPartitions) for watermark
//     alignment, and idleness detection (the runtime's job).
//   - Metrics export beyond Stats.
package kafka

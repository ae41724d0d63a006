// Package kafka is Sabot's Kafka connector: a Source that reads partitions
// into Arrow record batches, an at-least-once Sink and an exactly-once
// TxnSink that write the rows of record batches as records, all on
// franz-go (kgo). It owns decoding (JSON, CSV, raw) and encoding (JSON),
// split assignment and offset tracking, the bad-record policies, the
// Kafka side of the transactional sink's two-phase commit, and the kgo
// clients' limits. It does not own watermark generation, checkpoint
// storage or the task loop: the runtime (worker/runtime) drives a Source
// and a sink from a task, stores what Offsets and TxnSink.Snapshot return
// in its checkpoints, and tells a TxnSink when a checkpoint completes.
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
// A TxnSink's Recover, Write, PreCommit, Snapshot and Close belong to the
// task goroutine (Close may also come after it stopped); Commit may come
// from any goroutine, concurrently with them, and Close ends a Commit in
// flight before closing the clients.
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
// TxnSink is the exactly-once variant: Flink's two-phase commit sink over
// Kafka transactions. It reuses Sink's encoder, key and partitioner code
// (recordWriter, producerOpts) and differs in its clients and their
// lifecycle. Every transaction gets its own transactional id,
// "<prefix>-<subtask>-<seq>" with seq counting the subtask's transactions,
// and its own kgo client (kgo.TransactionalID is fixed per client, and a
// client holds one open transaction, while rows after a barrier must not
// wait for the previous checkpoint to complete). The runtime drives it:
//
//   - Recover(ctx, state), once, before the first Write: state is the
//     sink's state in the restored checkpoint, or nil. It commits every
//     transaction the state lists as pending (the checkpoint completed, so
//     they must be visible; committing one the crashed attempt already
//     committed is a no-op), then sends InitProducerID for each of the
//     subtask's ids from the state's next seq on, until one the broker did
//     not know: that aborts what the crashed attempt left open and fences
//     its clients.
//   - Write: the first Write after a PreCommit begins a transaction (the
//     new client's InitProducerID is the round trip); an interval without
//     rows begins none.
//   - PreCommit(ctx, n) when barrier n reaches the sink: flush (every
//     record acknowledged) and keep the transaction open as pending under
//     n. At most MaxPendingTransactions are pending; PreCommit blocks for
//     a free one (backpressure on a slow checkpoint coordinator).
//   - Snapshot(), right after: the pending transactions (checkpoint,
//     transactional id, producer id, epoch) and the next seq, as JSON.
//   - Commit(ctx, n) once checkpoint n is complete (its metadata durable),
//     from any goroutine: commit every pending transaction up to n, oldest
//     first, and close its client. Idempotent.
//   - Close: abort the open transaction, close the clients, and leave
//     pending ones open for the next attempt's Recover.
//
// Commits, in Commit and in Recover alike, are raw EndTxn requests that
// name the transaction's producer id and epoch, sent from the sink's own
// plain client (kgo routes them to the transaction coordinator): the same
// path commits this attempt's transactions and a crashed attempt's. A
// commit retry's answer depends on the EndTxn version (KIP-890 bumps the
// epoch at every commit under v5): see TxnSink.commit. A transaction the
// broker aborted before its checkpoint could commit it, typically because
// its timeout elapsed, is data loss: Commit and Recover return a
// *LostTransactionError, matching ErrTransactionLost, naming the
// transactional id and the checkpoint, and the sink fails; it is never
// silently skipped.
//
// Consumers of the topic see the rows exactly once only if they read with
// isolation.level=read_committed (kgo.FetchIsolationLevel(kgo.ReadCommitted()),
// this package's Source by default): a read_uncommitted consumer also sees
// rows of open and aborted transactions. Rows become visible when their
// checkpoint completes and Commit runs, so end-to-end latency is about a
// checkpoint interval, and an open or pending transaction holds
// read_committed consumers at its first offset (the last stable offset)
// until it ends.
//
// The timeout trap. The broker aborts a transaction that stays open longer
// than its transaction timeout (TxnSinkConfig.TransactionTimeout, sent as
// transaction_timeout_ms), even one whose checkpoint has completed but is
// not yet committed, for example while a crashed job restarts. The timeout
// must therefore exceed the checkpoint interval plus the time to complete
// a checkpoint or to recover from a crash. It must also not exceed the
// brokers' transaction.max.timeout.ms (15 minutes by default), or the
// broker refuses every transaction at InitProducerID
// (INVALID_TRANSACTION_TIMEOUT; Recover and Write then fail with an error
// naming both values). CheckTransactionTimeout checks both bounds, and
// TxnSink.TransactionMaxTimeout reads the brokers' limit; the runtime
// should call them when it starts a job.
//
// Limits: the transactional id prefix must be unique to the job and sink
// and stable across its restarts (a job started afresh, with no state,
// should use a new one); each subtask must recover its own state. A
// replaced attempt that is still alive cannot write into the ids its
// successor's Recover fenced, but the runtime must never let it Commit
// after that Recover (its checkpoints must not complete).
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
//   - Rescaling a job with a TxnSink (a subtask recovering several
//     subtasks' states), and transactional ids that expired
//     (transactional.id.expiration.ms) between a checkpoint and its
//     recovery: a pending one then reads as lost.
package kafka

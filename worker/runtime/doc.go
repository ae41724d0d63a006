// Package runtime runs a job's dataflow on one worker: it turns a resolved
// jobgraph.Graph into tasks, runs them as goroutines it owns, moves Arrow
// record batches and in-band control events between them through bounded
// queues, and returns when the job finished, failed or was cancelled.
//
// It owns: the task/goroutine model, operator chaining, the local exchange
// and its partitioners (forward, rebalance, broadcast, hash by key group),
// the element protocol, watermark merging, and the built-in operators of
// the contract (sequence and Kafka sources, map, filter, print, file and
// Kafka sinks). It does not own scheduling (scheduler/), the worker
// service and its reporting (worker/), or expression evaluation
// (sql/expr).
//
// # Tasks and goroutines
//
// A task is one goroutine running a chain of operators for one subtask.
// Forward edges into a vertex with a single input (jobgraph.Edge.Chained)
// are chained: the downstream operator is called directly from the
// upstream one's Output, with no queue and no copy. A chain is a tree when
// a vertex has several chained outputs. Every other edge goes through the
// Exchange: the receiving task reads one input Gate that merges every
// channel (sending subtask) of every input edge.
//
// Run starts one goroutine per (chain head, subtask) through a task group
// that labels it for pprof (job, vertex, subtask), cancels every task when
// one fails, and waits for all of them; no goroutine outlives Run. Every
// blocking wait (queue send and receive, a paced source's timer) selects on
// the task context, so cancel is prompt with full queues. After the tasks
// stopped, Run releases whatever is still queued.
//
// Operator lifecycle per task: Open (tail of the chain first) →
// ProcessBatch/ProcessWatermark → Finish (head first, once every input
// ended) → Close (always). Operators are called from their task's goroutine
// only and need no locks.
//
// # Elements
//
// An Element on a channel is a batch (arrow.RecordBatch, owning one
// reference), a Watermark (ms), or EndOfInput; KindBarrier is reserved for
// checkpoint barriers. A channel's elements arrive in the order sent.
//
//   - Batches: an Output borrows the batch it is given; whatever keeps it
//     (a queue, each receiver of a broadcast) retains its own reference, and
//     whoever takes a batch off a queue releases it once. Hash partitioning
//     builds new per-receiver batches (arrow take) unless all rows go to
//     one receiver.
//   - Watermarks: a gate's output watermark is the minimum over its
//     channels that have not ended; it only advances. The head operator
//     sees it in ProcessWatermark and the task forwards it down the chain
//     and to every receiver of every output edge. A bounded source sends
//     MaxWatermark before its end-of-input.
//   - EndOfInput: sent to every receiver of every output edge when a task
//     finishes; a task finishes when all its channels ended.
//
// Queues are bounded: each receiving subtask's gate holds QueueCapacity
// elements, shared by its senders; a full gate blocks the senders
// (backpressure), so the memory of a job is bounded by roughly
// QueueCapacity batches per receiving subtask plus one batch in flight per
// task.
//
// # Decisions
//
//   - Rebalance is round robin per batch, not per row (see partition.go).
//   - Hash partitioning: murmur3 x86 32-bit over the key columns' values
//     (hash.go documents the byte encoding), key group = hash mod
//     max_parallelism, subtask = jobgraph.SubtaskForKeyGroup.
//   - The sequence source splits a bounded range contiguously and an
//     unbounded one by stride; rows_per_second is the total over subtasks
//     (source.go).
//   - The file sink truncates its part file on open, so a job restarted
//     from scratch rewrites its output instead of duplicating it.
//   - Print lines are `<prefix>> [<subtask>] <json>`, subtasks from 0.
//
// # Kafka operators and event time at sources
//
// The Kafka source (kafka.go, on worker/connector/kafka) reads, in subtask
// i of p, the connector's Flink-compatible share of the topics'
// partitions, each partition a split. Next polls with a deadline of
// Config.PollTimeout (real time, default 100 ms) and at most BatchSize
// records, emits one batch per split and fetch, and returns empty-handed
// when nothing came, so the task regains control on a silent topic. The
// source is unbounded: Next never reports done (bounded reading is a later
// feature). Bad records follow the manifest's policy (fail the task; skip
// with a rate-limited Warn on Config.Logger naming topic, partition and
// offset; or dead-letter). With checkpoints, the next offset per partition
// is the source's snapshot; a restore starts each partition there (the
// union over all restored subtasks, so partitions may move between
// subtasks when the parallelism changes).
//
// Event time (eventtime.go, on worker/eventtime): with a watermark
// strategy each split gets its own generator, fed with the split's event
// times (the Kafka timestamp or event_time.timestamp_field) before its
// batch is emitted; the subtask's watermark is the minimum over active
// splits and only advances (eventtime.Multiplexer). It is emitted after
// the batch that raised it (punctuated markers, a split returning from
// idleness) and by the periodic step, which runs on the Next call due on
// Config.Clock at the strategy's interval (default 200 ms) and is where
// idleness is detected: a split without records for idle_timeout_ms no
// longer holds the watermark back. Without a strategy the source emits no
// watermarks (Flink's noWatermarks).
//
// Watermark status travels between tasks as Flink's WatermarkStatus: a
// source subtask whose splits are all idle, or that has none (parallelism
// above the partition count), sends IDLE (KindWatermarkStatus, broadcast
// on every exchange edge like a watermark) and ACTIVE again before its
// next batch or watermark. A task merges its input channels with
// eventtime.InputMerger (Flink's StatusWatermarkValve): idle channels are
// left out of the watermark minimum, a channel returning behind the output
// rejoins once it has caught up (the output never goes back), and when
// every channel is idle the task forwards IDLE down its chain and edges,
// then ACTIVE when one returns. Operators see only watermarks.
//
// The Kafka sink writes each row as one JSON record, at least once: it
// flushes (waits for every acknowledgement, failing the task on a produce
// error) at every checkpoint barrier, every 64 batches, when a second has
// passed on Config.Clock since the last flush, and at end of input. With
// delivery exactly_once it is a two-phase commit over Kafka transactions
// (kafka_txn.go; see Checkpoints).
//
// # Keyed operators
//
// keyed_aggregate and process read exactly one hash edge. Each subtask owns
// the key groups [TaskInfo.KeyGroupStart, KeyGroupEnd] and one state
// backend for them (worker/state; JobSpec.state_backend: heap by default,
// or pebble in a directory per subtask under Config.StateDir, emptied on
// Open and removed on Close: state outlives a task only through
// checkpoints; an empty StateDir is a temporary directory Run removes).
// Per input row the operator recomputes the key group exactly as the
// sending hash partitioner did (HashKeys, KeyGroup) and fails the task with
// state.ErrKeyGroupOutOfRange if the row does not belong to it; the key's
// state bytes are the encoding documented in keyed.go (decodable, as Key).
//
// KeyedAggregate is Flink's non-windowed GROUP BY as an upsert stream: per
// input batch, the rows are grouped by key in the batch, each distinct
// key's accumulators (one ValueState) are read and written once, and one
// batch is emitted with a row per distinct key of the batch: the key
// columns, then each aggregate after the batch. COUNT() counts rows,
// COUNT(f) non-null values; SUM, MIN, MAX and AVG skip nulls and are null
// until a non-null value arrived. Integer sums wrap, as Java's long.
//
// Process functions are Go values registered by name (Config.Functions,
// ProcessFunction, ProcessFunctionFactory); user-deployed functions run
// in function processes through function steps (function.go, reached via
// Config.FunctionHost; see docs/functions.md). The process operator calls ProcessElement per row, in order,
// with the row's key current; ProcessContext gives the key, the watermark,
// the element's event time (the input column named by the config key
// timestamp_field, a timestamp or an int64 of ms, else the first timestamp
// column), keyed state (ctx.Keyed()) and event- and processing-time
// timers. What a call collects (Collector) is emitted in batches of at
// most BatchSize rows when it returns. A watermark fires the event-time
// timers up to it, with the key set, before the task forwards it; end of
// input fires every remaining event-time timer (Flink's final
// MaxWatermark). Processing-time timers fire when a batch or watermark
// arrives or at end of input, once Config.Clock has reached them: an idle
// task does not wake up for them yet, and timers still in the future at
// end of input are dropped.
//
// Built-in functions (a declared output column that is not listed is
// left null):
//
//   - "count-per-key": per element, emits key and count (int64), the
//     number of elements of that key so far.
//   - "event-time-alert": per key, counts elements and registers an
//     event-time timer at each element's timestamp + config delay_ms
//     (default 0); elements with a null timestamp are skipped. When a
//     timer fires and elements were counted since the last firing, it
//     emits key, count (int64) and fired_at (timestamp: the timer's time)
//     and resets the count.
//
// For both, the key column is a string (the key rendered by Key.String:
// values joined by ",", a single string key as it is) or, when the key is
// one integer column, an int64.
//
// # Checkpoints
//
// With JobSpec.checkpointing and Config.Checkpoints (blob store,
// committer, what to restore), Run starts a coordinator (checkpoint.go)
// and two upload goroutines next to the tasks. The coordinator triggers a
// checkpoint every interval (min pause, max concurrent, timeout,
// tolerable failures as Flink names them); each running source task takes
// the trigger between Next calls and injects a barrier (KindBarrier)
// after its current position. A task with several input channels aligns
// in exactly-once mode (a channel whose barrier arrived is blocked in the
// gate, its elements held within its credits, until every open channel
// delivered the barrier), or does not block in at-least-once mode
// (snapshot at the last barrier). Unaligned checkpoints (unaligned.go)
// send barriers ahead of buffered elements and store what they overtook.
// At the barrier every operator of the chain snapshots synchronously what
// must be consistent — a heap copy, a pebble checkpoint (hard links), a
// source's offsets, a sink's pre-committed transaction — and forwards the
// barrier; uploads run asynchronously (snapshot.go). Once every subtask
// acked, the coordinator writes _metadata, commits the pointer through the
// CheckpointCommitter (the worker's: an etcd compare-and-swap fenced by
// the attempt's assignment), then tells sinks to commit and keyed
// operators which pebble files later snapshots may reuse. Completed
// checkpoints beyond `retained` are deleted, and shared files no retained
// checkpoint references are collected when no checkpoint is in flight
// (and everything else of the job at start: what a crashed attempt left).
//
// Restore (Config.Checkpoints.Restore): keyed state by key group (any
// parallelism and either backend from canonical snapshots; a pebble
// checkpoint is downloaded and cut to the subtask's range), sources from
// their offsets, two-phase-commit sinks commit what the checkpoint lists
// and abort what a failed attempt left open, unaligned channel state is
// processed before new input. Savepoints (Control.Savepoint) are aligned
// checkpoints in the canonical format under savepoints/<name>/, with stop
// (sources stop at the barrier, Run returns nil) and drain.
//
// Limits: the heap snapshot is a synchronous copy (no copy-on-write);
// watermarks restart from the sources after a restore; sources other than
// Kafka and sequence refuse checkpointing; the sequence source and the
// Kafka exactly-once sink restore at their checkpointed parallelism; a
// bounded job's sinks commit their last output at end of input rather than
// on a final checkpoint; aligned_timeout_ms (switching from aligned to
// unaligned) is not implemented — unaligned checkpoints are unaligned from
// the start.
//
// # Next milestone
//
// Network exchange between workers (a second Exchange implementation:
// Arrow IPC, credit-based flow control; Config.Subtasks may then be a
// part of the graph — today Run returns ErrRemoteExchange); the
// coordinator moves to the scheduler when jobs span workers.
//
// # Network exchange
//
// When an attempt's subtasks are spread over workers, each worker's share
// uses a netExchange (netexchange.go) from the process's Network, whose
// Handler the worker mounts on its h2c server. Gates exist for the
// receiving subtasks that run here; a channel whose sender runs elsewhere
// is a remote channel of the same localGate, so alignment, Buffered and
// unaligned checkpoints treat it like any other. A sender to a local
// subtask is the in-process localSender; a sender to a remote one opens,
// on its first Send, one HTTP/2 stream to the receiving worker — all
// streams to a peer share one connection — and writes the channel's
// elements as frames: Arrow IPC messages (the schema once per stream)
// with the batch's origin, and in-band control frames (watermark,
// watermark status, barrier with savepoint name and unaligned flag, end
// of input). Flow control is per channel and credit-based: the receiver
// grants the gate's per-channel capacity and returns a credit whenever
// the gate hands an element of the channel out, so no queue grows on
// either side; unaligned barriers go without a credit into the priority
// lane, numbered as the local exchange numbers them. A stream that breaks
// before end of input fails both the sender's Send and the receiver's
// Recv with an error naming job, attempt, both subtasks and the peer.
package runtime

// Package runtime runs a job's dataflow on one worker: it turns a resolved
// jobgraph.Graph into tasks, runs them as goroutines it owns, moves Arrow
// record batches and in-band control events between them through bounded
// queues, and returns when the job finished, failed or was cancelled.
//
// It owns: the task/goroutine model, operator chaining, the local exchange
// and its partitioners (forward, rebalance, broadcast, hash by key group),
// the element protocol, watermark merging, and the built-in operators of
// the contract (sequence source, map, filter, print and file sinks). It does
// not own scheduling (scheduler/), the worker service and its reporting
// (worker/), or expression evaluation (sql/expr).
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
// # Next milestone
//
// Network exchange between workers (a second Exchange implementation:
// Arrow IPC, credit-based flow control; Config.Subtasks may then be a
// part of the graph — today Run returns ErrRemoteExchange), checkpoint
// barriers (KindBarrier, alignment in the gate, injection between
// Source.Next calls), keyed state and timers (a richer context given to
// Operator.Open, with the subtask's key-group range from TaskInfo),
// watermark generation and idleness, and two-phase-commit file output.
package runtime

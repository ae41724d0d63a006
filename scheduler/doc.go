// Package scheduler decides where jobs run and tracks how they are doing.
//
// Several schedulers may run; one is leader, elected through etcd
// (client/v3/concurrency). Only the leader acts, and every write it makes is
// a transaction that also compares the leader key's create revision, so a
// scheduler that lost leadership without noticing cannot change anything.
//
// The leader reconciles: on any change under /sabot/v1/ (and at least every
// ReconcileInterval) it reads jobs, live workers, assignments and worker
// reports, and moves each job one step towards where it should be:
//
//	CREATED/RESTARTING, not placed  → spread its slots over the live workers
//	                                  (attempt+1), one assignment per worker used;
//	                                  a RESTARTING job first waits for its restart_at
//	                                  and for the failed attempt's workers to stop
//	placed, every worker running    → RUNNING
//	placed, a worker's lease gone   → a failure: judged by the restart strategy
//	a worker reports a failed task  → a failure: judged by the restart strategy
//	every worker reports finished   → FINISHED (or, for a rescale, RESTARTING at
//	                                  the new parallelism: rescale.go)
//	CANCELING                       → remove the assignments; CANCELED when the
//	                                  workers confirm or are gone
//
// Failures (restart.go) follow Flink's restart strategies. The job's
// restart_strategy decides — none, fixed_delay, exponential_delay or
// failure_rate; unset, fixed delay (unlimited, 1 s) when the job
// checkpoints and none when it does not — between RESTARTING, with the
// restart due after the strategy's delay and a message saying why and when
// ("task failed: boom; restarting in 1s (restart 3 of 10)"), and FAILED
// with a message naming the exhausted strategy. One exception keeps the
// behaviour from before checkpoints: a lost worker of a job with neither
// checkpointing nor restart_strategy restarts it at once, from scratch.
// A failure the worker reports as unrecoverable (TaskReport.unrecoverable:
// the error matched worker/runtime.ErrUnrecoverable, such as a Kafka
// transaction the broker aborted, which lost data) fails the job whatever
// its strategy, with a message naming the error and saying it is not
// restarted: a restart could not repair it and would hide the loss.
// Either way the failed attempt's assignment is removed in the same
// transaction. The strategy's bookkeeping (restarts, restart_at,
// backoff_ms, failure_times) lives in the job's status, so a new leader
// continues it; while a restart waits, the leader arms a timer for the
// earliest restart_at, which wakes the reconcile loop when it is due.
//
// Placement: a job needs as many slots as its widest vertex (slot sharing,
// as in Flink); they are spread over the workers (see DESIGN.md). A job
// that fits nowhere stays CREATED with a message saying so. The autoscaler
// (autoscaler.go, package autoscale) rescales jobs that enable it and asks
// Config.Provisioner for workers.
//
// Ownership: Start starts one goroutine (campaign, then lead) and, while
// leading, one watch goroutine; Close cancels and waits for both. The
// reconcile ticker and the restart timer belong to the lead goroutine and
// run on Config.Clock.
package scheduler

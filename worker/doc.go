// Package worker is the worker service: it registers with the cluster under
// an etcd lease, watches the assignments the scheduler writes for it, runs
// each assigned job attempt with the dataflow runtime (worker/runtime), and
// reports task states back through etcd.
//
// Lifecycle of one worker process:
//
//	Start ─▶ grant lease, put /sabot/v1/workers/<id> ─▶ watch /sabot/v1/assignments/<id>/
//	  assignment put     ─▶ start (or restart, if the attempt changed) that job's tasks
//	  assignment deleted ─▶ cancel that job's tasks, report them CANCELED
//	  lease lost         ─▶ cancel every task (the scheduler has declared us dead and
//	                        placed our jobs elsewhere), register again with a new lease
//	Close ─▶ stop watching, cancel every task, revoke the lease (registration and
//	         reports disappear at once, so the scheduler reschedules without waiting
//	         for the TTL)
//
// Reports live under the worker's lease, so a dead worker's reports vanish
// with it and can never be mistaken for a live one's.
//
// Ownership: a worker owns one session goroutine (register, watch, dispatch),
// one reporter goroutine per session, and one goroutine per running job
// attempt (which in turn owns the runtime's task goroutines). Close stops
// them all and waits.
package worker

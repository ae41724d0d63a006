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
//	CREATED/RESTARTING, not placed  → place on the live worker with the most
//	                                  free slots (attempt+1), write the assignment
//	placed, worker reports running  → RUNNING
//	placed, worker lease gone       → RESTARTING (assignment removed; placed again)
//	worker reports all finished     → FINISHED
//	worker reports a failed task    → FAILED (restart strategies come with checkpoints)
//	CANCELING                       → remove the assignment; CANCELED when the
//	                                  worker confirms or is gone
//
// Placement: until the network exchange exists a job runs whole on one
// worker; it needs as many slots as its widest vertex (slot sharing, as in
// Flink). A job that fits nowhere stays CREATED with a message saying so.
//
// Ownership: Start starts one goroutine (campaign, then lead) and, while
// leading, one watch goroutine; Close cancels and waits for both.
package scheduler

// Package cluster is the layout of Sabot's records in etcd and the typed
// reads and writes the gateway, scheduler and workers share. It owns no
// goroutines; every call takes the caller's context and client.
//
// Layout (all values are binary protobuf):
//
//	/sabot/v1/jobs/<job>                 sabot.v1.Job          gateway creates; scheduler and gateway update with compare-and-swap
//	/sabot/v1/workers/<worker>           cluster.v1.Worker     the worker, under its lease
//	/sabot/v1/assignments/<worker>/<job> cluster.v1.Assignment the scheduler (fenced by leadership); the worker watches its prefix
//	/sabot/v1/reports/<job>/<worker>     cluster.v1.TaskReport the worker, under its lease (task states, metrics)
//	/sabot/v1/checkpoints/<job>/latest   cluster.v1.LatestCheckpoint the attempt's coordinator, compare-and-swap fenced by its assignment
//	/sabot/v1/checkpoints/<job>/history  cluster.v1.CheckpointHistory the coordinator
//	/sabot/v1/savepoints/<job>/<request> sabot.v1.SavepointRequest gateway or scheduler (rescale) create; the coordinator records the outcome
//	/sabot/v1/autoscaler/<job>           cluster.v1.ScalingHistory the scheduler's autoscaler (fenced by leadership)
//	/sabot/v1/functions/<name>           sabot.v1.Function     the gateway (DeployFunction: version+1, compare-and-swap, with the redeploy of the jobs running it)
//	/sabot/v1/scheduler/election/…       leader election (client/v3/concurrency)
//
// Job ids sort by creation time (a hex millisecond timestamp followed by
// random hex), so a descending key range lists the newest jobs first.
//
// Who changes a job's state:
//
//	gateway:   (new) → CREATED; CREATED → CANCELED; RUNNING/RESTARTING → CANCELING
//	scheduler: CREATED/RESTARTING → RUNNING (when every worker of the attempt reports running),
//	           RUNNING → RESTARTING (a worker lost, a task failed, or a rescale's savepoint done),
//	           → FINISHED/FAILED (workers' reports), CANCELING → CANCELED (workers confirmed or gone)
//
// Every state change is a transaction conditioned on the job key's mod
// revision, so concurrent writers never overwrite each other's decision.
package cluster

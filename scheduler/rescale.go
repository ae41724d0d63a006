package scheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Rescaling (JobStatus.rescale, set by RescaleJob or the autoscaler).
//
// A rescale goes through a savepoint, so nothing is lost or duplicated
// and every subtask restores exactly its new key groups:
//
//  1. the scheduler records a stop-with-savepoint request for the running
//     attempt (and its id in status.rescale, in the same transaction);
//  2. the attempt's coordinator takes it: sources stop at the barrier,
//     sinks commit, the savepoint becomes the job's latest recovery
//     point, and every share of the attempt ends FINISHED;
//  3. the scheduler then rewrites the spec's parallelism, clears
//     status.rescale, records status.last_rescale and moves the job to
//     RESTARTING with its assignments removed; the next pass places the
//     new attempt, which restores the savepoint (canonical format: any
//     parallelism, either backend) by key-group range.
//
// A savepoint that fails clears the rescale (the message says why); the
// stopped attempt then fails and restarts from its latest checkpoint at
// the old parallelism. The new spec is cluster.RescaledSpec's (a job-level
// parallelism is the new default, vertex_parallelism sets single
// vertices), the same the gateway checked the request with.

// stepRescale moves a running job's rescale one step. It reports whether
// it handled the pass (the normal handling must not run: an attempt
// stopped for a rescale is not a finished job).
func (r *reconciler) stepRescale(ctx context.Context, sn *snapshot, job *sabotv1.Job, a agg) (bool, error) {
	rs := job.GetStatus().GetRescale()
	if rs == nil || a.failed {
		return false, nil
	}
	if rs.GetSavepointRequestId() == "" || rs.GetAttempt() != job.GetStatus().GetAttempt() {
		// Not asked yet, or the attempt asked to stop failed instead and
		// the job restarted: ask the running attempt.
		if !a.running || job.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
			return false, nil // asked while starting: taken once running
		}
		return true, r.requestRescaleSavepoint(ctx, job)
	}
	sp, err := cluster.Get(ctx, r.kv, cluster.SavepointKey(job.GetId(), rs.GetSavepointRequestId()), cluster.NewSavepointRequest)
	if err != nil {
		return true, err
	}
	switch sp.Value.GetStatus() {
	case sabotv1.SavepointStatus_SAVEPOINT_STATUS_FAILED:
		msg := "rescale failed: " + sp.Value.GetFailureReason()
		return true, r.clearRescale(ctx, job, msg)
	case sabotv1.SavepointStatus_SAVEPOINT_STATUS_COMPLETED:
		if !a.finished {
			return true, nil // the attempt is still stopping
		}
		return true, r.applyRescale(ctx, sn, job, sp.Value)
	default:
		return a.finished, nil // an attempt that finished waits for the outcome
	}
}

// requestRescaleSavepoint records the stop-with-savepoint request.
func (r *reconciler) requestRescaleSavepoint(ctx context.Context, job *sabotv1.Job) error {
	now := r.cfg.Clock.Now()
	sp := &sabotv1.SavepointRequest{
		JobId: job.GetId(), RequestId: "rescale-" + cluster.NewJobID(now), Stop: true,
		Status: sabotv1.SavepointStatus_SAVEPOINT_STATUS_PENDING, CreatedAt: timestamppb.New(now),
	}
	_, err := cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		rs := j.GetStatus().GetRescale()
		if rs == nil || (rs.GetSavepointRequestId() != "" && rs.GetAttempt() == j.GetStatus().GetAttempt()) ||
			j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
			return false, nil
		}
		rs.SavepointRequestId, rs.Attempt = sp.GetRequestId(), j.GetStatus().GetAttempt()
		j.Status.Message = "rescaling: taking a savepoint"
		return true, nil
	}, []clientv3.Cmp{r.fence}, func(*sabotv1.Job) []clientv3.Op {
		return []clientv3.Op{clientv3.OpPut(cluster.SavepointKey(job.GetId(), sp.GetRequestId()), cluster.Marshal(sp))}
	})
	if err == nil {
		r.cfg.Logger.Info("rescale: stopping the job with a savepoint", "job", job.GetId(), "request", sp.GetRequestId(), "cause", job.GetStatus().GetRescale().GetCause())
	}
	return err
}

// clearRescale drops a rescale that cannot go on.
func (r *reconciler) clearRescale(ctx context.Context, job *sabotv1.Job, msg string) error {
	_, err := cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		if j.GetStatus().GetRescale() == nil {
			return false, nil
		}
		j.Status.Rescale = nil
		j.Status.Message = msg
		return true, nil
	}, []clientv3.Cmp{r.fence}, nil)
	if err == nil {
		r.cfg.Logger.Warn("rescale abandoned", "job", job.GetId(), "reason", msg)
	}
	return err
}

// applyRescale writes the new parallelism and restarts the job from the
// savepoint.
func (r *reconciler) applyRescale(ctx context.Context, sn *snapshot, job *sabotv1.Job, sp *sabotv1.SavepointRequest) error {
	rs := job.GetStatus().GetRescale()
	spec := cluster.RescaledSpec(job.GetSpec(), rs)
	from, err := parallelismOf(job.GetSpec())
	if err != nil {
		return err
	}
	to, err := parallelismOf(spec)
	if err != nil {
		return r.clearRescale(ctx, job, "rescale refused: "+err.Error())
	}
	ops := deletes(sn.assignments[job.GetId()])
	now := r.cfg.Clock.Now()
	_, err = cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		st := j.GetStatus()
		if st.GetRescale().GetSavepointRequestId() != sp.GetRequestId() || st.GetAttempt() != job.GetStatus().GetAttempt() {
			return false, nil
		}
		j.Spec = spec
		st.State = sabotv1.JobState_JOB_STATE_RESTARTING
		st.Message = "rescaling: restarting from savepoint " + sp.GetLocation()
		st.Rescale = nil
		st.RestartAt = nil
		st.LastRescale = &sabotv1.RescaleOutcome{
			From: from, To: to, Cause: rs.GetCause(), RequestedAt: rs.GetRequestedAt(),
			StoppedAt: sp.GetCompletedAt(), Savepoint: sp.GetLocation(),
		}
		st.UpdatedAt = timestamppb.New(now)
		return true, nil
	}, []clientv3.Cmp{r.fence}, func(*sabotv1.Job) []clientv3.Op { return ops })
	if err != nil {
		return err
	}
	delete(sn.assignments, job.GetId())
	r.cfg.Logger.Info("rescale: restarting at the new parallelism", "job", job.GetId(), "from", describeParallelism(from), "to", describeParallelism(to), "savepoint", sp.GetLocation())
	return nil
}

// noteRunning completes a rescale's outcome with the time its new attempt
// had every task running.
func (r *reconciler) noteRunning(ctx context.Context, job *sabotv1.Job) error {
	lr := job.GetStatus().GetLastRescale()
	if lr == nil || lr.GetRunningAt() != nil || lr.GetStoppedAt() == nil {
		return nil
	}
	now := r.cfg.Clock.Now()
	_, err := cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		lr := j.GetStatus().GetLastRescale()
		if lr == nil || lr.GetRunningAt() != nil {
			return false, nil
		}
		lr.RunningAt = timestamppb.New(now)
		return true, nil
	}, []clientv3.Cmp{r.fence}, nil)
	if err == nil {
		r.cfg.Logger.Info("rescale: new attempt running", "job", job.GetId(), "to", describeParallelism(lr.GetTo()),
			"pause", now.Sub(lr.GetStoppedAt().AsTime()).Round(time.Millisecond))
	}
	return err
}

// parallelismOf resolves spec and returns each vertex's parallelism.
func parallelismOf(spec *sabotv1.JobSpec) (map[string]int32, error) {
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int32, len(g.Vertices))
	for _, v := range g.Vertices {
		out[v.ID] = int32(v.Parallelism)
	}
	return out, nil
}

// describeParallelism renders a parallelism map for logs, sorted.
func describeParallelism(m map[string]int32) string {
	s := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", k, m[k])
	}
	return s
}

// runningMessage is a running job's status message: a rescale in
// progress says so, otherwise none.
func runningMessage(job *sabotv1.Job) string {
	if job.GetStatus().GetRescale().GetSavepointRequestId() != "" {
		return job.GetStatus().GetMessage()
	}
	return ""
}

package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// reconciler makes one pass over the cluster's records. It is used by the
// leader's loop only, so it needs no lock.
type reconciler struct {
	cfg   Config
	kv    clientv3.KV
	fence clientv3.Cmp

	// as is the autoscaler's state for this term of leadership.
	as *autoscaler

	// wake is the earliest time a job waits for (a delayed restart), found
	// by the last pass; zero when none. The leader's loop arms a timer for
	// it, so a restart is placed when due rather than at the next tick.
	wake time.Time
}

// noteWake records that a job needs a pass at t.
func (r *reconciler) noteWake(t time.Time) {
	if r.wake.IsZero() || t.Before(r.wake) {
		r.wake = t
	}
}

// snapshot is what one reconcile pass reads.
type snapshot struct {
	workers     map[string]*clusterv1.Worker
	assignments map[string][]cluster.Versioned[*clusterv1.Assignment] // by job: one per worker of its attempt
	reports     map[string]map[string]*clusterv1.TaskReport           // by job, worker
	slotsUsed   map[string]int                                        // by worker
}

func (r *reconciler) read(ctx context.Context) (*snapshot, []cluster.Versioned[*sabotv1.Job], error) {
	sn := &snapshot{
		workers:     map[string]*clusterv1.Worker{},
		assignments: map[string][]cluster.Versioned[*clusterv1.Assignment]{},
		reports:     map[string]map[string]*clusterv1.TaskReport{},
		slotsUsed:   map[string]int{},
	}
	workers, _, err := cluster.List(ctx, r.kv, cluster.WorkersPrefix, cluster.NewWorker, cluster.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, w := range workers {
		sn.workers[w.Value.GetId()] = w.Value
	}
	asgs, _, err := cluster.List(ctx, r.kv, cluster.AssignmentsPrefix, cluster.NewAssignment, cluster.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, a := range asgs {
		sn.assignments[a.Value.GetJobId()] = append(sn.assignments[a.Value.GetJobId()], a)
		sn.slotsUsed[a.Value.GetWorkerId()] += cluster.SlotsUsed(a.Value)
	}
	reps, _, err := cluster.List(ctx, r.kv, cluster.ReportsPrefix, cluster.NewReport, cluster.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, rep := range reps {
		m := sn.reports[rep.Value.GetJobId()]
		if m == nil {
			m = map[string]*clusterv1.TaskReport{}
			sn.reports[rep.Value.GetJobId()] = m
		}
		m[rep.Value.GetWorkerId()] = rep.Value
	}
	jobs, _, err := cluster.List(ctx, r.kv, cluster.JobsPrefix, cluster.NewJob, cluster.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	return sn, jobs, nil
}

// reconcile moves every job one step. Errors on one job do not stop the
// others; the first is returned (a lost fence first of all).
func (r *reconciler) reconcile(ctx context.Context) error {
	r.wake = time.Time{}
	sn, jobs, err := r.read(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range jobs {
		if err := r.step(ctx, sn, j.Value); err != nil {
			if errors.Is(err, cluster.ErrPrecondition) {
				return err
			}
			errs = append(errs, fmt.Errorf("job %s: %w", j.Value.GetId(), err))
		}
	}
	if err := r.autoscale(ctx, sn, jobs); err != nil {
		if errors.Is(err, cluster.ErrPrecondition) {
			return err
		}
		errs = append(errs, fmt.Errorf("autoscaler: %w", err))
	}
	// Assignments whose job record is gone (never expected, but cheap to
	// clean) are removed so workers stop their tasks.
	known := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		known[j.Value.GetId()] = true
	}
	for jobID, as := range sn.assignments {
		if !known[jobID] {
			if err := r.txn(ctx, deletes(as)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// step decides what to do with one job.
func (r *reconciler) step(ctx context.Context, sn *snapshot, job *sabotv1.Job) error {
	id := job.GetId()
	state := job.GetStatus().GetState()
	asgs := sn.assignments[id]
	placed := len(asgs) > 0

	if cluster.IsTerminal(state) {
		return r.cleanup(ctx, sn, job)
	}

	// A placed attempt: what do its workers say?
	var (
		reps []*clusterv1.TaskReport
		lost string // a worker of the attempt that is gone
	)
	for _, a := range asgs {
		wid := a.Value.GetWorkerId()
		if _, alive := sn.workers[wid]; !alive && lost == "" {
			lost = wid
		}
		if rp := sn.reports[id][wid]; rp.GetAttempt() == a.Value.GetAttempt() {
			reps = append(reps, rp)
		} else {
			reps = append(reps, nil) // not reported yet
		}
	}
	agg := aggregateAll(reps)
	workerAlive := lost == ""
	switch state {
	case sabotv1.JobState_JOB_STATE_CANCELING:
		if placed && workerAlive && !agg.terminal() {
			// Removing the assignments tells the workers to stop; they
			// confirm through their reports, which a later pass reads.
			return r.txn(ctx, deletes(asgs)...)
		}
		cur := currentReports(sn, job)
		for _, rep := range cur {
			if !aggregate(rep).terminal() {
				return nil // a worker is still stopping its tasks
			}
		}
		return r.finish(ctx, sn, job, sabotv1.JobState_JOB_STATE_CANCELED, "canceled on request", tasksOfAll(cur))

	case sabotv1.JobState_JOB_STATE_CREATED, sabotv1.JobState_JOB_STATE_RESTARTING, sabotv1.JobState_JOB_STATE_RUNNING:
		if !placed {
			if state == sabotv1.JobState_JOB_STATE_RUNNING {
				return r.setState(ctx, job, sabotv1.JobState_JOB_STATE_RESTARTING, "assignment missing; placing again", nil)
			}
			// A delayed restart waits for its time; the leader's timer
			// brings the pass that places it.
			if at := job.GetStatus().GetRestartAt(); state == sabotv1.JobState_JOB_STATE_RESTARTING && at != nil && r.cfg.Clock.Now().Before(at.AsTime()) {
				r.noteWake(at.AsTime())
				return nil
			}
			if state == sabotv1.JobState_JOB_STATE_RESTARTING && r.stillStopping(sn, job) {
				return nil // a report or a lease expiry brings the next pass
			}
			return r.place(ctx, sn, job)
		}
		if !workerAlive {
			return r.fail(ctx, sn, job, failure{reason: fmt.Sprintf("worker %s lost", lost), lostWorker: true}, nil)
		}
		if handled, err := r.stepRescale(ctx, sn, job, agg); handled || err != nil {
			return err
		}
		switch {
		case agg.failed:
			rep := failedReport(reps)
			return r.fail(ctx, sn, job, failure{reason: failureReason(rep), unrecoverable: rep.GetUnrecoverable()}, tasksOfAll(reps))
		case agg.finished:
			return r.finish(ctx, sn, job, sabotv1.JobState_JOB_STATE_FINISHED, "", tasksOfAll(reps))
		case agg.running:
			if err := r.setState(ctx, job, sabotv1.JobState_JOB_STATE_RUNNING, runningMessage(job), tasksOfAll(reps)); err != nil {
				return err
			}
			return r.noteRunning(ctx, job)
		}
		return nil
	default:
		return nil
	}
}

// fail judges a failure of the job's placed attempt by its restart
// strategy and writes the verdict: RESTARTING with the restart due after
// the strategy's delay, or FAILED. Either way the failed attempt's
// assignment is removed in the same transaction, so its worker stops what
// still runs of it before the next attempt is placed.
func (r *reconciler) fail(ctx context.Context, sn *snapshot, job *sabotv1.Job, f failure, tasks []*sabotv1.TaskStatus) error {
	id := job.GetId()
	now := r.cfg.Clock.Now()
	ops := deletes(sn.assignments[id])
	var v verdict
	changed := false
	_, err := cluster.UpdateJob(ctx, r.kv, id, func(j *sabotv1.Job) (bool, error) {
		st := j.GetStatus()
		changed = false
		if st.GetState() != job.GetStatus().GetState() || st.GetAttempt() != job.GetStatus().GetAttempt() {
			return false, nil // moved under us (a cancel); the next pass decides
		}
		// Judged on the record as stored, so a retried update counts the
		// failure once.
		v = judge(j.GetSpec(), st, f, now)
		switch {
		case v.legacy:
			st.State = sabotv1.JobState_JOB_STATE_RESTARTING
		case v.restart:
			st.State = sabotv1.JobState_JOB_STATE_RESTARTING
			st.Restarts = v.restarts
			st.BackoffMs = v.backoff.Milliseconds()
			st.FailureTimes = v.failureTimes
			st.RestartAt = timestamppb.New(now.Add(v.delay))
		default:
			st.State = sabotv1.JobState_JOB_STATE_FAILED
		}
		st.Message = v.msg
		if tasks != nil {
			st.Tasks = tasks
		}
		st.UpdatedAt = timestamppb.New(now)
		changed = true
		return true, nil
	}, []clientv3.Cmp{r.fence}, func(*sabotv1.Job) []clientv3.Op { return ops })
	if err != nil || !changed {
		return err
	}
	delete(sn.assignments, id)
	if v.restart && v.delay > 0 {
		r.noteWake(now.Add(v.delay))
	}
	if f.unrecoverable {
		r.cfg.Logger.Error("job failed unrecoverably; not restarting", "job", id, "attempt", job.GetStatus().GetAttempt(), "message", v.msg)
		return nil
	}
	r.cfg.Logger.Info("job failure", "job", id, "attempt", job.GetStatus().GetAttempt(), "restart", v.restart, "delay", v.delay, "message", v.msg)
	return nil
}

// failureReason describes a failed report: the worker's first error, or
// the first failed task.
func failureReason(rep *clusterv1.TaskReport) string {
	if e := rep.GetError(); e != "" {
		return "task failed: " + e
	}
	for _, t := range tasksOf(rep) {
		if t.GetState() == sabotv1.TaskState_TASK_STATE_FAILED {
			return fmt.Sprintf("task %s/%d failed", t.GetVertexId(), t.GetSubtask())
		}
	}
	return "task failed"
}

// stopWait bounds how long a restart waits for the failed attempt's
// workers to stop (stillStopping).
const stopWait = 10 * time.Second

// stillStopping reports whether a live worker still runs the failed
// attempt: its report on it is not terminal yet. The restart waits for
// those (their assignments are gone, so they are stopping) — at most
// stopWait after the restart was due — so that a worker that died
// without its lease having expired yet, and whose share still reads
// RUNNING, is not chosen again: once it has expired it is no candidate.
// (Flink likewise waits for every task of the failed region to be
// cancelled before restarting it.)
func (r *reconciler) stillStopping(sn *snapshot, job *sabotv1.Job) bool {
	since := job.GetStatus().GetUpdatedAt().AsTime()
	if at := job.GetStatus().GetRestartAt(); at != nil {
		since = at.AsTime()
	}
	deadline := since.Add(stopWait)
	if !r.cfg.Clock.Now().Before(deadline) {
		return false
	}
	for _, rep := range currentReports(sn, job) {
		if !aggregate(rep).terminal() {
			r.noteWake(deadline)
			return true
		}
	}
	return false
}

// currentReports returns the reports on the job's current attempt from
// live workers.
func currentReports(sn *snapshot, job *sabotv1.Job) []*clusterv1.TaskReport {
	var out []*clusterv1.TaskReport
	for wid, rep := range sn.reports[job.GetId()] {
		if _, alive := sn.workers[wid]; alive && rep.GetAttempt() == job.GetStatus().GetAttempt() {
			out = append(out, rep)
		}
	}
	return out
}

// place writes the assignments of the job's next attempt: its subtasks
// spread over the live workers' free slots (placement), one assignment
// per worker used, in one transaction with the job's new attempt.
func (r *reconciler) place(ctx context.Context, sn *snapshot, job *sabotv1.Job) error {
	g, err := jobgraph.Resolve(job.GetSpec())
	if err != nil {
		// The gateway resolved it at deploy; a spec that no longer resolves
		// was written by a newer or broken version. Fail it visibly.
		return r.finish(ctx, sn, job, sabotv1.JobState_JOB_STATE_FAILED, "job graph no longer valid: "+err.Error(), nil)
	}
	need := 0
	for _, v := range g.Vertices {
		need = max(need, v.Parallelism)
	}
	slots, free := spreadSlots(sn, need)
	if slots == nil {
		msg := fmt.Sprintf("waiting for %d free slots (free: %d over %d live workers)", need, free, len(sn.workers))
		if job.GetStatus().GetMessage() == msg {
			return nil
		}
		return r.setState(ctx, job, job.GetStatus().GetState(), msg, nil)
	}
	attempt := job.GetStatus().GetAttempt() + 1
	asgs := placement(job, g, attempt, slots, sn.workers)
	var tasks []*sabotv1.TaskStatus
	var ops []clientv3.Op
	workers := make([]string, 0, len(asgs))
	for _, a := range asgs {
		for _, st := range a.GetSubtasks() {
			tasks = append(tasks, &sabotv1.TaskStatus{VertexId: st.GetVertexId(), Subtask: st.GetSubtask(), WorkerId: a.GetWorkerId(), State: sabotv1.TaskState_TASK_STATE_DEPLOYING})
		}
		ops = append(ops, clientv3.OpPut(cluster.AssignmentKey(a.GetWorkerId(), job.GetId()), cluster.Marshal(a)))
		workers = append(workers, a.GetWorkerId())
	}
	_, err = cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		if j.GetStatus().GetState() != job.GetStatus().GetState() || j.GetStatus().GetAttempt() != job.GetStatus().GetAttempt() {
			return false, nil // changed under us (e.g. cancelled); the next pass decides
		}
		j.Status.Attempt = attempt
		j.Status.Message = ""
		j.Status.Tasks = tasks
		j.Status.UpdatedAt = timestamppb.New(r.cfg.Clock.Now())
		return true, nil
	}, []clientv3.Cmp{r.fence}, func(*sabotv1.Job) []clientv3.Op { return ops })
	if err != nil {
		return err
	}
	for _, a := range asgs {
		sn.slotsUsed[a.GetWorkerId()] += cluster.SlotsUsed(a)
	}
	r.cfg.Logger.Info("job placed", "job", job.GetId(), "attempt", attempt, "workers", workers, "slots", need)
	return nil
}

// spreadSlots picks a worker for each of need slots, spreading them over
// the live workers (balanced: each next slot goes to the worker with the
// most free slots left, ties to the longest running, then the smaller id,
// so placement is deterministic). It returns nil and the total free slots if they are not
// enough.
func spreadSlots(sn *snapshot, need int) ([]string, int) {
	ids := make([]string, 0, len(sn.workers))
	free := map[string]int{}
	total := 0
	for id, w := range sn.workers {
		ids = append(ids, id)
		free[id] = max(int(w.GetSlots())-sn.slotsUsed[id], 0)
		total += free[id]
	}
	if total < need {
		return nil, total
	}
	// Older workers first on ties: a provisioner scaling down removes the
	// newest, which then run nothing.
	sort.Slice(ids, func(i, j int) bool {
		a, b := sn.workers[ids[i]].GetStartedAt().AsTime(), sn.workers[ids[j]].GetStartedAt().AsTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return ids[i] < ids[j]
	})
	slots := make([]string, need)
	for i := range slots {
		best := ""
		for _, id := range ids {
			if free[id] > 0 && (best == "" || free[id] > free[best]) {
				best = id
			}
		}
		slots[i] = best
		free[best]--
	}
	return slots, total
}

// placement builds one assignment per worker used: slot i runs subtask i
// of every vertex that has one (slot sharing, as in Flink, which also
// keeps a chain's subtasks together), and every assignment carries the
// whole placement and the coordinator (the worker of slot 0, which runs
// subtask 0 of every vertex, the sinks' included).
func placement(job *sabotv1.Job, g *jobgraph.Graph, attempt int64, slots []string, workers map[string]*clusterv1.Worker) []*clusterv1.Assignment {
	by := map[string]*clusterv1.Assignment{}
	var order []string
	var all []*clusterv1.Placement
	for _, v := range g.Vertices {
		for i := range v.Parallelism {
			wid := slots[i]
			a := by[wid]
			if a == nil {
				a = &clusterv1.Assignment{JobId: job.GetId(), Attempt: attempt, WorkerId: wid, Spec: job.GetSpec(), Coordinator: slots[0]}
				by[wid] = a
				order = append(order, wid)
			}
			start, end := jobgraph.KeyGroupRange(g.MaxParallelism, v.Parallelism, i)
			a.Subtasks = append(a.Subtasks, &clusterv1.SubtaskRef{
				VertexId: v.ID, Subtask: int32(i), Parallelism: int32(v.Parallelism),
				KeyGroupStart: int32(start), KeyGroupEnd: int32(end),
			})
			all = append(all, &clusterv1.Placement{VertexId: v.ID, Subtask: int32(i), WorkerId: wid, Address: workers[wid].GetAddress()})
		}
	}
	out := make([]*clusterv1.Assignment, 0, len(order))
	for _, wid := range order {
		a := by[wid]
		if len(order) > 1 {
			a.Placement = all
		} else {
			a.Coordinator = "" // the whole attempt runs on one worker
		}
		out = append(out, a)
	}
	return out
}

// deletes returns the operations removing assignments.
func deletes(as []cluster.Versioned[*clusterv1.Assignment]) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(as))
	for _, a := range as {
		ops = append(ops, clientv3.OpDelete(a.Key))
	}
	return ops
}

// setState writes a non-terminal state (and tasks, if given) when it differs
// from what is stored, together with extra operations.
func (r *reconciler) setState(ctx context.Context, job *sabotv1.Job, state sabotv1.JobState, msg string, tasks []*sabotv1.TaskStatus, ops ...clientv3.Op) error {
	_, err := cluster.UpdateJob(ctx, r.kv, job.GetId(), func(j *sabotv1.Job) (bool, error) {
		st := j.GetStatus()
		if st.GetState() != job.GetStatus().GetState() {
			return false, nil // someone else moved it (a cancel); next pass
		}
		if st.GetState() == state && st.GetMessage() == msg && (tasks == nil || sameTasks(st.GetTasks(), tasks)) && len(ops) == 0 {
			return false, nil
		}
		st.State = state
		st.Message = msg
		if tasks != nil {
			st.Tasks = tasks
		}
		st.UpdatedAt = timestamppb.New(r.cfg.Clock.Now())
		return true, nil
	}, []clientv3.Cmp{r.fence}, func(*sabotv1.Job) []clientv3.Op { return ops })
	if err == nil && state != job.GetStatus().GetState() {
		r.cfg.Logger.Info("job state", "job", job.GetId(), "from", job.GetStatus().GetState(), "to", state, "message", msg)
	}
	return err
}

// finish moves a job to a terminal state and removes its assignment.
func (r *reconciler) finish(ctx context.Context, sn *snapshot, job *sabotv1.Job, state sabotv1.JobState, msg string, tasks []*sabotv1.TaskStatus) error {
	ops := deletes(sn.assignments[job.GetId()])
	if err := r.setState(ctx, job, state, msg, tasks, ops...); err != nil {
		return err
	}
	delete(sn.assignments, job.GetId())
	return nil
}

// cleanup removes what a terminal job left behind: its assignment and its
// workers' reports.
func (r *reconciler) cleanup(ctx context.Context, sn *snapshot, job *sabotv1.Job) error {
	ops := deletes(sn.assignments[job.GetId()])
	for wid, rep := range sn.reports[job.GetId()] {
		// Keep a report whose worker still runs tasks for this job: it
		// removes nothing we rely on and tells the worker's state.
		if _, alive := sn.workers[wid]; alive && !aggregate(rep).terminal() {
			continue
		}
		ops = append(ops, clientv3.OpDelete(cluster.ReportKey(job.GetId(), wid)))
	}
	if len(ops) == 0 {
		return nil
	}
	return r.txn(ctx, ops...)
}

// txn runs ops fenced by leadership.
func (r *reconciler) txn(ctx context.Context, ops ...clientv3.Op) error {
	resp, err := r.kv.Txn(ctx).If(r.fence).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("scheduler: txn: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("scheduler: %w", cluster.ErrPrecondition)
	}
	return nil
}

// agg summarises a worker's report on an attempt.
type agg struct {
	failed, finished, canceled, running bool
}

func (a agg) terminal() bool { return a.failed || a.finished || a.canceled }

func aggregate(rep *clusterv1.TaskReport) agg {
	if rep == nil || len(rep.GetTasks()) == 0 {
		return agg{failed: rep.GetError() != ""}
	}
	counts := map[sabotv1.TaskState]int{}
	for _, t := range rep.GetTasks() {
		counts[t.GetState()]++
	}
	n := len(rep.GetTasks())
	fin, can := counts[sabotv1.TaskState_TASK_STATE_FINISHED], counts[sabotv1.TaskState_TASK_STATE_CANCELED]
	switch {
	case counts[sabotv1.TaskState_TASK_STATE_FAILED] > 0 || rep.GetError() != "":
		return agg{failed: true}
	case fin == n:
		return agg{finished: true}
	case fin+can == n:
		return agg{canceled: true}
	case counts[sabotv1.TaskState_TASK_STATE_DEPLOYING] == 0:
		return agg{running: true}
	default:
		return agg{}
	}
}

// aggregateAll summarises the reports of every worker of an attempt (nil:
// not reported yet): failed if any failed; finished, canceled or running
// only when every one is.
func aggregateAll(reps []*clusterv1.TaskReport) agg {
	if len(reps) == 0 {
		return agg{}
	}
	all := agg{finished: true, canceled: true, running: true}
	for _, rep := range reps {
		a := aggregate(rep)
		if a.failed {
			return agg{failed: true}
		}
		all.finished = all.finished && a.finished
		all.canceled = all.canceled && (a.canceled || a.finished)
		all.running = all.running && a.running
	}
	if all.finished {
		all.canceled = false
	}
	return all
}

// failedReport returns the first report that failed.
func failedReport(reps []*clusterv1.TaskReport) *clusterv1.TaskReport {
	for _, rep := range reps {
		if aggregate(rep).failed {
			return rep
		}
	}
	return nil
}

// tasksOfAll merges the tasks of several reports, sorted.
func tasksOfAll(reps []*clusterv1.TaskReport) []*sabotv1.TaskStatus {
	merged := &clusterv1.TaskReport{}
	for _, rep := range reps {
		merged.Tasks = append(merged.Tasks, rep.GetTasks()...)
	}
	if len(merged.Tasks) == 0 {
		return nil
	}
	return tasksOf(merged)
}

func tasksOf(rep *clusterv1.TaskReport) []*sabotv1.TaskStatus {
	if rep == nil {
		return nil
	}
	out := make([]*sabotv1.TaskStatus, len(rep.GetTasks()))
	for i, t := range rep.GetTasks() {
		out[i] = proto.CloneOf(t)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].GetVertexId(), out[j].GetVertexId()); c != 0 {
			return c < 0
		}
		return out[i].GetSubtask() < out[j].GetSubtask()
	})
	return out
}

func sameTasks(a, b []*sabotv1.TaskStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

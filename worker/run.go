package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// session holds the jobs one registration runs. apply and stopAll are called
// from the session goroutine only; the reporter reads the runs under mu, and
// run state is shared with task goroutines under run.mu. Lock order:
// session.mu before run.mu; neither is held across I/O.
type session struct {
	w     *Worker
	lease clientv3.LeaseID
	dirty chan struct{} // capacity 1: a report is pending

	mu struct {
		sync.Mutex
		runs map[string]*run // by job id
	}
}

func (s *session) get(jobID string) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.runs[jobID]
}

func (s *session) put(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.runs[r.jobID] = r
}

func (s *session) snapshotRuns() []*run {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*run, 0, len(s.mu.runs))
	for _, r := range s.mu.runs {
		out = append(out, r)
	}
	return out
}

// run is one job attempt running on this worker.
type run struct {
	jobID   string
	attempt int64
	cancel  context.CancelFunc
	done    chan struct{}
	metrics *runtime.Metrics
	// unassigned is set under session.mu once the assignment is gone; the
	// run is forgotten after its last report is written.
	unassigned bool

	mu struct {
		sync.Mutex
		tasks map[taskKey]sabotv1.TaskState
		err   string
		// unrecoverable: err matches runtime.ErrUnrecoverable, so the
		// scheduler must fail the job rather than restart it.
		unrecoverable bool
		// finished: Run returned (finish ran); until then a FAILED task is
		// reported as RUNNING (see report).
		finished bool
		reported bool // the latest state has been written
	}
}

type taskKey struct {
	vertex  string
	subtask int32
}

// apply reacts to an assignment record: value nil means it was deleted.
func (s *session) apply(ctx context.Context, key, value []byte) {
	_, jobID, err := cluster.ParseAssignmentKey(string(key))
	if err != nil {
		s.w.cfg.Logger.Error("ignoring assignment", "err", err)
		return
	}
	cur := s.get(jobID)
	if value == nil {
		if cur != nil {
			s.w.cfg.Logger.Info("assignment removed; stopping job", "job", jobID, "attempt", cur.attempt)
			cur.cancel()
			<-cur.done
			// The reporter writes the final (CANCELED) report, which the
			// scheduler waits for, and then forgets the run.
			s.mu.Lock()
			cur.unassigned = true
			s.mu.Unlock()
			s.markDirty()
		}
		return
	}
	asg := cluster.NewAssignment()
	if err := proto.Unmarshal(value, asg); err != nil {
		s.w.cfg.Logger.Error("ignoring undecodable assignment", "job", jobID, "err", err)
		return
	}
	if cur != nil {
		if cur.attempt == asg.GetAttempt() {
			return // the same attempt, already running (or done)
		}
		cur.cancel()
		<-cur.done
	}
	s.start(ctx, asg, clientv3.Compare(clientv3.Value(string(key)), "=", string(value)))
}

// start runs one job attempt in its own goroutine.
//
// fence holds while the assignment is unchanged: checkpoint commits are
// conditioned on it, so an attempt that was replaced cannot commit.
func (s *session) start(ctx context.Context, asg *clusterv1.Assignment, fence clientv3.Cmp) {
	rctx, cancel := context.WithCancel(ctx)
	r := &run{jobID: asg.GetJobId(), attempt: asg.GetAttempt(), cancel: cancel, done: make(chan struct{}), metrics: runtime.NewMetrics()}
	r.mu.tasks = make(map[taskKey]sabotv1.TaskState, len(asg.GetSubtasks()))
	for _, st := range asg.GetSubtasks() {
		r.mu.tasks[taskKey{st.GetVertexId(), st.GetSubtask()}] = sabotv1.TaskState_TASK_STATE_DEPLOYING
	}
	s.put(r)
	s.markDirty()
	log := s.w.cfg.Logger.With("job", r.jobID, "attempt", r.attempt)
	ok := s.w.g.Go("worker.job", func(context.Context) {
		defer close(r.done)
		defer cancel()
		err := s.execute(rctx, asg, r, fence)
		r.finish(err, rctx.Err() != nil)
		s.markDirty()
		switch {
		case err == nil:
			log.Info("job attempt finished")
		case rctx.Err() != nil:
			log.Info("job attempt stopped")
		case errors.Is(err, runtime.ErrUnrecoverable):
			log.Error("job attempt failed unrecoverably; the job will not restart", "err", err)
		default:
			log.Warn("job attempt failed", "err", err)
		}
	}, "job", r.jobID, "attempt", fmt.Sprint(r.attempt))
	if !ok {
		cancel()
		close(r.done)
	}
}

func (s *session) execute(ctx context.Context, asg *clusterv1.Assignment, r *run, fence clientv3.Cmp) error {
	g, err := jobgraph.Resolve(asg.GetSpec())
	if err != nil {
		return fmt.Errorf("resolve job graph: %w", err)
	}
	cp, err := s.checkpoints(ctx, asg, g, fence)
	if err != nil {
		return err
	}
	var control *runtime.Control
	coordinates := asg.GetCoordinator() == "" || asg.GetCoordinator() == s.w.cfg.ID
	if cp != nil && coordinates {
		control = runtime.NewControl()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { // joined below, before execute returns
			defer close(done)
			s.serveSavepoints(sctx, asg.GetJobId(), control, fence)
		}()
		defer func() { stop(); <-done }()
	}
	return runtime.Run(ctx, runtime.Config{
		Checkpoints:  cp,
		Control:      control,
		StateDir:     s.w.cfg.StateDir,
		JobID:        asg.GetJobId(),
		Attempt:      asg.GetAttempt(),
		Graph:        g,
		Subtasks:     asg.GetSubtasks(),
		Metrics:      r.metrics,
		Placement:    asg.GetPlacement(),
		Self:         s.w.cfg.ID,
		Coordinator:  asg.GetCoordinator(),
		Network:      s.w.srv.net,
		Coordination: s.w.srv.coord,
		FunctionHost: functionHost{s.w.functions},
		Invocations:  s.w.invoke,
		Messenger:    messenger{s.w.router},
		Logger:       s.w.cfg.Logger.With("job", asg.GetJobId()),
		PrintOut:     s.w.cfg.PrintOut,
		OnTaskState: func(vertex string, subtask int32, state sabotv1.TaskState) {
			r.set(taskKey{vertex, subtask}, state)
			s.markDirty()
		},
	})
}

func (r *run) set(k taskKey, state sabotv1.TaskState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.tasks[k] = state
	r.mu.reported = false
}

// finish records the attempt's outcome in every task that has not ended.
func (r *run) finish(err error, canceled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.finished = true
	final := sabotv1.TaskState_TASK_STATE_FINISHED
	switch {
	case canceled:
		final = sabotv1.TaskState_TASK_STATE_CANCELED
	case err != nil:
		final = sabotv1.TaskState_TASK_STATE_FAILED
		r.mu.err = err.Error()
		r.mu.unrecoverable = errors.Is(err, runtime.ErrUnrecoverable)
	}
	for k, st := range r.mu.tasks {
		if st != sabotv1.TaskState_TASK_STATE_FINISHED && st != sabotv1.TaskState_TASK_STATE_FAILED {
			r.mu.tasks[k] = final
		}
	}
	r.mu.reported = false
}

// report builds the record for the run's current state, or nil if it has
// been written already.
func (r *run) report(workerID string, now *timestamppb.Timestamp) *clusterv1.TaskReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.reported {
		return nil
	}
	r.mu.reported = true
	rep := &clusterv1.TaskReport{JobId: r.jobID, Attempt: r.attempt, WorkerId: workerID, Error: r.mu.err,
		Unrecoverable: r.mu.unrecoverable, UpdatedAt: now}
	select {
	case <-r.done:
	default:
		rep.Metrics = r.metrics.Snapshot()
	}
	for k, st := range r.mu.tasks {
		if st == sabotv1.TaskState_TASK_STATE_FAILED && !r.mu.finished {
			// A task failed and the attempt is ending: its error comes
			// with Run's return (finish), moments later. A FAILED task
			// reported before would make the scheduler fail the job
			// without saying why.
			st = sabotv1.TaskState_TASK_STATE_RUNNING
		}
		rep.Tasks = append(rep.Tasks, &sabotv1.TaskStatus{VertexId: k.vertex, Subtask: k.subtask, WorkerId: workerID, State: st})
	}
	return rep
}

func (s *session) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// reportLoop writes the reports of runs whose state changed, latest state
// wins: a burst of task transitions costs one write per job.
func (s *session) reportLoop(ctx context.Context) {
	tick := time.NewTicker(s.w.cfg.MetricsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.dirty:
		case <-tick.C:
			// Running attempts report fresh metrics.
			for _, r := range s.snapshotRuns() {
				select {
				case <-r.done:
				default:
					r.mu.Lock()
					r.mu.reported = false
					r.mu.Unlock()
				}
			}
		}
		if err := s.writeReports(ctx); err != nil && ctx.Err() == nil {
			s.w.cfg.Logger.Warn("writing task reports failed; will retry", "err", err)
			s.markDirty()
		}
	}
}

func (s *session) writeReports(ctx context.Context) error {
	now := timestamppb.New(s.w.cfg.Now())
	for _, r := range s.snapshotRuns() {
		rep := r.report(s.w.cfg.ID, now)
		if rep == nil {
			continue
		}
		_, err := s.w.cfg.Etcd.Put(ctx, cluster.ReportKey(r.jobID, s.w.cfg.ID), cluster.Marshal(rep), clientv3.WithLease(s.lease))
		if err != nil {
			r.mu.Lock()
			r.mu.reported = false
			r.mu.Unlock()
			return fmt.Errorf("worker: report %s: %w", r.jobID, err)
		}
	}
	s.prune()
	return nil
}

// prune forgets runs that ended, were unassigned and have been reported, so
// a long-lived worker does not accumulate finished jobs.
func (s *session) prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.mu.runs {
		if !r.unassigned {
			continue
		}
		select {
		case <-r.done:
		default:
			continue
		}
		r.mu.Lock()
		reported := r.mu.reported
		r.mu.Unlock()
		if reported {
			delete(s.mu.runs, id)
		}
	}
}

// stopAll cancels every run and waits for them.
func (s *session) stopAll() {
	for _, r := range s.snapshotRuns() {
		r.cancel()
	}
	for _, r := range s.snapshotRuns() {
		<-r.done
	}
}

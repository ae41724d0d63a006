package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// RescaleJob records a rescale request on a running job (status.rescale,
// cause "user"); the scheduler performs it: it stops the job with a
// savepoint, starts the next attempt from it at the new parallelism,
// clears status.rescale and sets status.last_rescale.
//
// Refused, before anything is written:
//   - a request that names no change (InvalidArgument);
//   - an unknown job (NotFound);
//   - a job that is not RUNNING, has no checkpointing (a rescale goes
//     through a savepoint), or has a rescale in progress
//     (FailedPrecondition);
//   - a vertex id the job's graph lacks, a parallelism above the job's
//     max_parallelism, or a new graph jobgraph.Resolve rejects (a forward
//     edge between steps that would differ in parallelism)
//     (InvalidArgument naming the field);
//   - a request that leaves every vertex at its parallelism
//     (FailedPrecondition).
func (s *jobService) RescaleJob(ctx context.Context, req *connect.Request[sabotv1.RescaleJobRequest]) (*connect.Response[sabotv1.RescaleJobResponse], error) {
	id := req.Msg.GetJobId()
	if req.Msg.GetParallelism() == 0 && len(req.Msg.GetVertexParallelism()) == 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("parallelism or vertex_parallelism is required: the request changes nothing"))
	}
	now := s.cfg.Now()
	r := &sabotv1.Rescale{
		Parallelism:       req.Msg.GetParallelism(),
		VertexParallelism: req.Msg.GetVertexParallelism(),
		Cause:             "user",
		RequestedAt:       timestamppb.New(now),
	}
	// The checks run on the record the write compares against, so a job
	// that moved meanwhile (stopped, or rescaled by someone else) is judged
	// as it is, not as it was.
	job, err := cluster.UpdateJob(ctx, s.cfg.Etcd, id, func(j *sabotv1.Job) (bool, error) {
		if err := rescalable(j); err != nil {
			return false, err
		}
		if err := checkRescale(j, r); err != nil {
			return false, err
		}
		j.Status.Rescale = r
		j.Status.UpdatedAt = timestamppb.New(now)
		return true, nil
	}, nil, nil)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %s not found", id))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "RescaleJob", err)
	}
	s.cfg.Logger.Info("job rescale requested", "job", id, "parallelism", r.GetParallelism(), "vertex_parallelism", r.GetVertexParallelism())
	return connect.NewResponse(&sabotv1.RescaleJobResponse{Job: job}), nil
}

// rescalable reports, as FailedPrecondition, why job cannot be rescaled
// now, or nil.
func rescalable(job *sabotv1.Job) error {
	id, st := job.GetId(), job.GetStatus()
	if st.GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s is %s; only a running job can be rescaled",
			id, strings.TrimPrefix(st.GetState().String(), "JOB_STATE_")))
	}
	if job.GetSpec().GetCheckpointing() == nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s has no checkpointing: rescaling stops the job with a savepoint and restarts it from there, and a job without checkpointing keeps no state or positions to save", id))
	}
	if r := st.GetRescale(); r != nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s: a rescale is in progress since %s (cause: %s); wait until it completes",
			id, r.GetRequestedAt().AsTime().UTC().Format(time.RFC3339), r.GetCause()))
	}
	return nil
}

// checkRescale checks r against job's graph: every vertex it names exists,
// no vertex would exceed max_parallelism, the rescaled graph resolves, and
// some vertex changes. Errors are connect errors naming the field.
func checkRescale(job *sabotv1.Job, r *sabotv1.Rescale) error {
	invalid := func(format string, args ...any) error {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	g, err := jobgraph.Resolve(job.GetSpec())
	if err != nil {
		// A stored job resolved when it was deployed; one that no longer
		// does is our problem, not the caller's.
		return fmt.Errorf("resolve job %s: %w", job.GetId(), err)
	}
	known := make([]string, 0, len(g.Vertices))
	for _, v := range g.Vertices {
		known = append(known, v.ID)
	}
	slices.Sort(known)
	var unknown []string
	for vid := range r.GetVertexParallelism() {
		if g.Vertex(vid) == nil {
			unknown = append(unknown, fmt.Sprintf("%q", vid))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return invalid("vertex_parallelism: job %s has no vertex %s (its vertices: %s)", job.GetId(), strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	maxP := g.MaxParallelism
	if p := int(r.GetParallelism()); p > maxP {
		return invalid("parallelism: %d exceeds the job's max_parallelism %d (its number of key groups, fixed for the life of the job)", p, maxP)
	}
	for _, vid := range slices.Sorted(maps.Keys(r.GetVertexParallelism())) {
		if p := int(r.GetVertexParallelism()[vid]); p > maxP {
			return invalid("vertex_parallelism[%q]: %d exceeds the job's max_parallelism %d (its number of key groups, fixed for the life of the job)", vid, p, maxP)
		}
	}
	ng, err := jobgraph.Resolve(cluster.RescaledSpec(job.GetSpec(), r))
	if err != nil {
		return rescaleGraphError(err)
	}
	var changes []string
	for _, v := range ng.Vertices {
		if old := g.Vertex(v.ID).Parallelism; old != v.Parallelism {
			changes = append(changes, v.ID)
		}
	}
	if len(changes) == 0 {
		at := make([]string, 0, len(known))
		for _, vid := range known {
			at = append(at, fmt.Sprintf("%s %d", vid, g.Vertex(vid).Parallelism))
		}
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s already runs at that parallelism (%s): the rescale would change nothing", job.GetId(), strings.Join(at, ", ")))
	}
	return nil
}

// rescaleGraphError words jobgraph's findings on a rescaled graph: the
// rescale's numbers broke a rule of the job's graph (a forward edge needs
// equal parallelism at both ends), so the fix is in the request.
func rescaleGraphError(err error) error {
	var gerrs jobgraph.Errors
	if !errors.As(err, &gerrs) {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the rescaled job graph is invalid: %w", err))
	}
	parts := make([]string, 0, len(gerrs))
	for _, e := range gerrs {
		parts = append(parts, "spec."+e.Error())
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New("the rescaled job graph is invalid: "+strings.Join(parts, "; ")))
}

// ListWorkers lists the live workers (those whose lease holds their
// registration) by id, with the slots their assignments use and the jobs
// they run. Assignments of a worker that is gone are not shown.
func (s *jobService) ListWorkers(ctx context.Context, _ *connect.Request[sabotv1.ListWorkersRequest]) (*connect.Response[sabotv1.ListWorkersResponse], error) {
	// Key order is id order: the list comes out sorted.
	workers, _, err := cluster.List(ctx, s.cfg.Etcd, cluster.WorkersPrefix, cluster.NewWorker, cluster.ListOptions{})
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "ListWorkers", err)
	}
	assignments, _, err := cluster.List(ctx, s.cfg.Etcd, cluster.AssignmentsPrefix, cluster.NewAssignment, cluster.ListOptions{})
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "ListWorkers", err)
	}
	out := &sabotv1.ListWorkersResponse{Workers: make([]*sabotv1.WorkerInfo, 0, len(workers))}
	byID := make(map[string]*sabotv1.WorkerInfo, len(workers))
	for _, w := range workers {
		info := &sabotv1.WorkerInfo{
			Id:        w.Value.GetId(),
			Address:   w.Value.GetAddress(),
			Slots:     w.Value.GetSlots(),
			StartedAt: w.Value.GetStartedAt(),
		}
		byID[info.GetId()] = info
		out.Workers = append(out.Workers, info)
	}
	for _, a := range assignments {
		wid, jobID, err := cluster.ParseAssignmentKey(a.Key)
		if err != nil {
			// Not ours to fail the listing over; the scheduler owns these keys.
			s.cfg.Logger.Warn("skipping a malformed assignment key", "key", a.Key, "err", err)
			continue
		}
		info := byID[wid]
		if info == nil {
			continue // its worker is gone; the scheduler will place the job again
		}
		info.SlotsUsed += int32(cluster.SlotsUsed(a.Value))
		info.Jobs = append(info.Jobs, jobID)
	}
	for _, info := range out.Workers {
		// Keys under one worker come in job order already; sorting and
		// compacting keeps the promise whatever the listing order.
		slices.Sort(info.Jobs)
		info.Jobs = slices.Compact(info.Jobs)
	}
	return connect.NewResponse(out), nil
}

// GetAutoscaler returns the autoscaler's recent decisions for a job,
// newest first: none for a job whose autoscaler never decided.
func (s *jobService) GetAutoscaler(ctx context.Context, req *connect.Request[sabotv1.GetAutoscalerRequest]) (*connect.Response[sabotv1.GetAutoscalerResponse], error) {
	id := req.Msg.GetJobId()
	// The job is read first so an unknown id is NotFound rather than an
	// empty history.
	if _, err := cluster.Get(ctx, s.cfg.Etcd, cluster.JobKey(id), cluster.NewJob); err != nil {
		if cluster.IsNotFound(err) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %s not found", id))
		}
		return nil, toConnect(s.cfg.Logger, "GetAutoscaler", err)
	}
	out := &sabotv1.GetAutoscalerResponse{}
	hist, err := cluster.Get(ctx, s.cfg.Etcd, cluster.AutoscalerKey(id), cluster.NewScalingHistory)
	switch {
	case cluster.IsNotFound(err):
	case err != nil:
		return nil, toConnect(s.cfg.Logger, "GetAutoscaler", err)
	default:
		out.Decisions = hist.Value.GetDecisions() // stored newest first
	}
	return connect.NewResponse(out), nil
}

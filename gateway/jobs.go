package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// defaultPageSize is ListJobs' page size when the request sets none.
const defaultPageSize = 100

type jobService struct {
	cfg Config
}

func (s *jobService) DeployJob(ctx context.Context, req *connect.Request[sabotv1.DeployJobRequest]) (*connect.Response[sabotv1.DeployJobResponse], error) {
	spec := req.Msg.GetSpec()
	job, err := s.newJob(ctx, spec)
	if err != nil {
		return nil, err
	}
	key := cluster.JobKey(job.GetId())
	resp, err := s.cfg.Etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, cluster.Marshal(job))).
		Commit()
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "DeployJob", fmt.Errorf("store job: %w", err))
	}
	if !resp.Succeeded {
		// Random ids collide only by bad luck; the caller may simply retry.
		return nil, connect.NewError(connect.CodeAborted, errors.New("job id collision; retry"))
	}
	s.cfg.Logger.Info("job deployed", "job", job.GetId(), "name", spec.GetName(), "savepoint", spec.GetRestore().GetLocation())
	return connect.NewResponse(&sabotv1.DeployJobResponse{Job: job}), nil
}

// newJob is DeployJob's path from a valid request's spec to the record to
// store: function steps without a registration get the registry's
// (fillFunctions), the graph must resolve, and a restore must pass
// checkRestore. DeployFunction builds its function jobs through it too.
func (s *jobService) newJob(ctx context.Context, spec *sabotv1.JobSpec) (*sabotv1.Job, error) {
	if err := s.fillFunctions(ctx, spec); err != nil {
		return nil, err
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return nil, graphError(err)
	}
	if r := spec.GetRestore(); r != nil && s.cfg.Blob != nil {
		if err := s.checkRestore(ctx, g, r); err != nil {
			return nil, err
		}
	}
	now := s.cfg.Now()
	return &sabotv1.Job{
		Id:        cluster.NewJobID(now),
		Spec:      spec,
		CreatedAt: timestamppb.New(now),
		Status: &sabotv1.JobStatus{
			State:     sabotv1.JobState_JOB_STATE_CREATED,
			UpdatedAt: timestamppb.New(now),
		},
	}, nil
}

// graphError turns jobgraph's findings into InvalidArgument naming each
// field under spec.
func graphError(err error) error {
	var gerrs jobgraph.Errors
	if !errors.As(err, &gerrs) {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	parts := make([]string, 0, len(gerrs))
	for _, e := range gerrs {
		parts = append(parts, "spec."+e.Error())
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New("invalid job graph: "+strings.Join(parts, "; ")))
}

func (s *jobService) ListJobs(ctx context.Context, req *connect.Request[sabotv1.ListJobsRequest]) (*connect.Response[sabotv1.ListJobsResponse], error) {
	size := int(req.Msg.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	from := ""
	if tok := req.Msg.GetPageToken(); tok != "" {
		if strings.ContainsAny(tok, "/\x00") {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token: not a token from a previous response"))
		}
		from = cluster.JobKey(tok)
	}
	// One more than asked tells whether another page follows.
	recs, _, err := cluster.List(ctx, s.cfg.Etcd, cluster.JobsPrefix, cluster.NewJob,
		cluster.ListOptions{Limit: size + 1, Descending: true, From: from})
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "ListJobs", err)
	}
	out := &sabotv1.ListJobsResponse{}
	for i, r := range recs {
		if i == size {
			out.NextPageToken = r.Value.GetId()
			break
		}
		out.Jobs = append(out.Jobs, r.Value)
	}
	return connect.NewResponse(out), nil
}

func (s *jobService) GetJob(ctx context.Context, req *connect.Request[sabotv1.GetJobRequest]) (*connect.Response[sabotv1.GetJobResponse], error) {
	rec, err := cluster.Get(ctx, s.cfg.Etcd, cluster.JobKey(req.Msg.GetJobId()), cluster.NewJob)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %q not found", req.Msg.GetJobId()))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "GetJob", err)
	}
	return connect.NewResponse(&sabotv1.GetJobResponse{Job: rec.Value}), nil
}

func (s *jobService) CancelJob(ctx context.Context, req *connect.Request[sabotv1.CancelJobRequest]) (*connect.Response[sabotv1.CancelJobResponse], error) {
	id := req.Msg.GetJobId()
	job, err := cluster.UpdateJob(ctx, s.cfg.Etcd, id, func(j *sabotv1.Job) (bool, error) {
		st := j.GetStatus()
		switch st.GetState() {
		case sabotv1.JobState_JOB_STATE_CREATED:
			// Not placed yet: nothing runs, so it is cancelled at once. The
			// scheduler's placement compares the job's revision and loses.
			st.State = sabotv1.JobState_JOB_STATE_CANCELED
		case sabotv1.JobState_JOB_STATE_RUNNING, sabotv1.JobState_JOB_STATE_RESTARTING:
			// Tasks may run: the scheduler stops them and confirms.
			st.State = sabotv1.JobState_JOB_STATE_CANCELING
		default:
			return false, nil // already ending or ended
		}
		st.Message = "canceled on request"
		st.UpdatedAt = timestamppb.New(s.cfg.Now())
		return true, nil
	}, nil, nil)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %q not found", id))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "CancelJob", err)
	}
	s.cfg.Logger.Info("job cancel requested", "job", id, "state", job.GetStatus().GetState())
	return connect.NewResponse(&sabotv1.CancelJobResponse{Job: job}), nil
}

// ListCheckpoints returns the job's checkpoint history newest first, and
// the id of its latest completed checkpoint. Both records are written by
// the workers that take checkpoints (internal/cluster.CommitCheckpoint and
// RecordCheckpoint); a job that never checkpointed has an empty history.
func (s *jobService) ListCheckpoints(ctx context.Context, req *connect.Request[sabotv1.ListCheckpointsRequest]) (*connect.Response[sabotv1.ListCheckpointsResponse], error) {
	id := req.Msg.GetJobId()
	// The job record is read first so an unknown id is NotFound rather
	// than an empty history.
	if _, err := cluster.Get(ctx, s.cfg.Etcd, cluster.JobKey(id), cluster.NewJob); err != nil {
		if cluster.IsNotFound(err) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %q not found", id))
		}
		return nil, toConnect(s.cfg.Logger, "ListCheckpoints", err)
	}
	latest, _, err := cluster.LatestCheckpoint(ctx, s.cfg.Etcd, id)
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "ListCheckpoints", err)
	}
	out := &sabotv1.ListCheckpointsResponse{LatestCompleted: latest.GetCheckpointId()}
	hist, err := cluster.Get(ctx, s.cfg.Etcd, cluster.CheckpointHistoryKey(id), cluster.NewCheckpointHistory)
	switch {
	case cluster.IsNotFound(err):
	case err != nil:
		return nil, toConnect(s.cfg.Logger, "ListCheckpoints", err)
	default:
		// Stored oldest first; callers want the newest first.
		cps := hist.Value.GetCheckpoints()
		out.Checkpoints = make([]*sabotv1.CheckpointInfo, 0, len(cps))
		for i := len(cps) - 1; i >= 0; i-- {
			out.Checkpoints = append(out.Checkpoints, cps[i])
		}
	}
	return connect.NewResponse(out), nil
}

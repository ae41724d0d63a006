package gateway

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
)

// TriggerSavepoint records a savepoint request for a running job; the
// worker running it takes the savepoint and records the outcome.
func (s *jobService) TriggerSavepoint(ctx context.Context, req *connect.Request[sabotv1.TriggerSavepointRequest]) (*connect.Response[sabotv1.TriggerSavepointResponse], error) {
	id := req.Msg.GetJobId()
	job, err := cluster.Get(ctx, s.cfg.Etcd, cluster.JobKey(id), cluster.NewJob)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %s not found", id))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "TriggerSavepoint", err)
	}
	if st := job.Value.GetStatus().GetState(); st != sabotv1.JobState_JOB_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s is %s; savepoints are taken of running jobs", id, st))
	}
	if job.Value.GetSpec().GetCheckpointing() == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s has no checkpointing: its sources and sinks keep no positions to save", id))
	}
	if req.Msg.GetDrain() && !req.Msg.GetStop() {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("drain: only with stop"))
	}
	now := s.cfg.Now()
	sp := &sabotv1.SavepointRequest{
		JobId: id, RequestId: cluster.NewJobID(now), Stop: req.Msg.GetStop(), Drain: req.Msg.GetDrain(),
		Status: sabotv1.SavepointStatus_SAVEPOINT_STATUS_PENDING, CreatedAt: timestamppb.New(now),
	}
	key := cluster.SavepointKey(id, sp.GetRequestId())
	resp, err := s.cfg.Etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, cluster.Marshal(sp))).Commit()
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "TriggerSavepoint", err)
	}
	if !resp.Succeeded {
		return nil, connect.NewError(connect.CodeAborted, errors.New("request id collision; retry"))
	}
	return connect.NewResponse(&sabotv1.TriggerSavepointResponse{Savepoint: sp}), nil
}

// GetSavepoint returns a savepoint request as it stands.
func (s *jobService) GetSavepoint(ctx context.Context, req *connect.Request[sabotv1.GetSavepointRequest]) (*connect.Response[sabotv1.GetSavepointResponse], error) {
	sp, err := cluster.Get(ctx, s.cfg.Etcd, cluster.SavepointKey(req.Msg.GetJobId(), req.Msg.GetRequestId()), cluster.NewSavepointRequest)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no savepoint request %s of job %s", req.Msg.GetRequestId(), req.Msg.GetJobId()))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "GetSavepoint", err)
	}
	return connect.NewResponse(&sabotv1.GetSavepointResponse{Savepoint: sp.Value}), nil
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
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

// checkRestore refuses a deploy from a savepoint that could never start
// (Config.Blob must be set): the location must name a readable _metadata
// object in the blob store, and the new graph must fit it
// (jobgraph.CheckRestore: same max_parallelism, a vertex for every vertex
// with state unless allow_non_restored_state). Each problem is
// InvalidArgument naming the field, the location and the vertex; a blob
// store that cannot be reached is Internal (logged), not the caller's
// fault.
func (s *jobService) checkRestore(ctx context.Context, g *jobgraph.Graph, r *sabotv1.SavepointRestore) error {
	loc := r.GetLocation()
	invalid := func(format string, args ...any) error {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	if err := blob.CheckKey(loc); err != nil {
		return invalid("spec.restore.location: %q is not a savepoint location (the blob key `sabot savepoint` prints: savepoints/<id>/_metadata): %v", loc, err)
	}
	md, err := cluster.ReadCheckpointMetadata(ctx, s.cfg.Blob, loc)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return invalid("spec.restore.location: no savepoint at %s: the cluster's blob store has no such object (a location names the savepoint's _metadata, as `sabot savepoint` prints it)", loc)
	case errors.Is(err, blob.ErrCorrupt), errors.Is(err, proto.Error):
		return invalid("spec.restore.location: savepoint %s is unreadable: %v", loc, err)
	case err != nil:
		return toConnect(s.cfg.Logger, "DeployJob", fmt.Errorf("read savepoint %s: %w", loc, err))
	case md.GetJobId() == "":
		// Any bytes may decode as a proto message; metadata names its job.
		return invalid("spec.restore.location: %s is not a savepoint's _metadata", loc)
	}
	if err := jobgraph.CheckRestore(g, md, loc, r.GetAllowNonRestoredState()); err != nil {
		var gerrs jobgraph.Errors
		if !errors.As(err, &gerrs) {
			return invalid("spec.restore: %v", err)
		}
		parts := make([]string, 0, len(gerrs))
		for _, e := range gerrs {
			parts = append(parts, "spec."+e.Error())
		}
		return invalid("%s", strings.Join(parts, "; "))
	}
	return nil
}

package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sabotdev/sabot/gateway"
	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// startGateway runs a gateway on an embedded etcd and returns a client.
func startGateway(t *testing.T) (*testkit.Etcd, sabotv1connect.JobServiceClient) {
	t.Helper()
	etcd := testkit.StartEtcd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	g, err := gateway.Start(ctx, gateway.Config{Addr: "127.0.0.1:0", Etcd: etcd.Client, Logger: testkit.Logger(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return etcd, sabotv1connect.NewJobServiceClient(hc, "http://"+g.Addr())
}

func deploy(t *testing.T, c sabotv1connect.JobServiceClient) string {
	t.Helper()
	end := int64(10)
	resp, err := c.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: &sabotv1.JobSpec{
		Name: "ckpt",
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: &end}}}},
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
			},
			Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
		},
		Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetJob().GetId()
}

func TestListCheckpoints(t *testing.T) {
	t.Parallel()
	etcd, c := startGateway(t)
	ctx := t.Context()
	id := deploy(t, c)

	t.Run("no checkpoints yet", func(t *testing.T) {
		resp, err := c.ListCheckpoints(ctx, connect.NewRequest(&sabotv1.ListCheckpointsRequest{JobId: id}))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.Msg.GetCheckpoints()); n != 0 || resp.Msg.GetLatestCompleted() != 0 {
			t.Fatalf("got %d checkpoints, latest %d; want none", n, resp.Msg.GetLatestCompleted())
		}
	})

	// What a worker writes: checkpoint 1 completes, 2 fails, 3 is in
	// progress; the pointer names 1.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	infos := []*sabotv1.CheckpointInfo{
		{Id: 1, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED, TriggerTime: timestamppb.New(t0), DurationMs: 40, SizeBytes: 2048, IncrementalSizeBytes: 2048, Attempt: 1},
		{Id: 2, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED, TriggerTime: timestamppb.New(t0.Add(time.Second)), DurationMs: 600000, FailureReason: "checkpoint: expired", Attempt: 1},
		{Id: 3, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS, TriggerTime: timestamppb.New(t0.Add(2 * time.Second)), Attempt: 1},
	}
	for _, info := range infos {
		if err := cluster.RecordCheckpoint(ctx, etcd.Client, id, info); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.CommitCheckpoint(ctx, etcd.Client, &clusterv1.LatestCheckpoint{JobId: id, CheckpointId: 1, Attempt: 1, Retained: []int64{1}}, 0); err != nil {
		t.Fatal(err)
	}

	t.Run("newest first with the latest completed", func(t *testing.T) {
		resp, err := c.ListCheckpoints(ctx, connect.NewRequest(&sabotv1.ListCheckpointsRequest{JobId: id}))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, cp := range resp.Msg.GetCheckpoints() {
			ids = append(ids, cp.GetId())
		}
		if len(ids) != 3 || ids[0] != 3 || ids[1] != 2 || ids[2] != 1 {
			t.Fatalf("checkpoint ids %v, want [3 2 1]", ids)
		}
		if got := resp.Msg.GetLatestCompleted(); got != 1 {
			t.Fatalf("latest completed %d, want 1", got)
		}
		if r := resp.Msg.GetCheckpoints()[1].GetFailureReason(); r != "checkpoint: expired" {
			t.Fatalf("failure reason %q", r)
		}
	})

	cases := []struct {
		name  string
		jobID string
		code  connect.Code
	}{
		{"unknown job", "000000000000deadbeef", connect.CodeNotFound},
		{"empty job id", "", connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ListCheckpoints(ctx, connect.NewRequest(&sabotv1.ListCheckpointsRequest{JobId: tc.jobID}))
			var cerr *connect.Error
			if !errors.As(err, &cerr) || cerr.Code() != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
		})
	}
}

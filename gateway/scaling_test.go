package gateway_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
)

// scalingSpec is s → out and s → fwd (a forward edge: s and fwd must keep
// equal parallelism), two wide, at most 8, with checkpointing.
func scalingSpec() *sabotv1.JobSpec {
	return &sabotv1.JobSpec{
		Name: "scaling", Parallelism: 2, MaxParallelism: 8,
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{}}}},
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
				{Id: "fwd", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
			},
			Edges: []*sabotv1.Edge{
				{From: "s", To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_REBALANCE},
				{From: "s", To: "fwd", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
			},
		},
		Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
	}
}

// deployAs deploys spec and moves the job as the scheduler would: to
// state, with status.rescale set to rescale if not nil.
func deployAs(t *testing.T, c sabotv1connect.JobServiceClient, kv clientv3.KV, spec *sabotv1.JobSpec, state sabotv1.JobState, rescale *sabotv1.Rescale) string {
	t.Helper()
	resp, err := c.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Msg.GetJob().GetId()
	if _, err := cluster.UpdateJob(t.Context(), kv, id, func(j *sabotv1.Job) (bool, error) {
		j.Status.State, j.Status.Attempt, j.Status.Rescale = state, 1, rescale
		return true, nil
	}, nil, nil); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRescaleJob(t *testing.T) {
	t.Parallel()
	etcd, c := startGateway(t)
	running := sabotv1.JobState_JOB_STATE_RUNNING
	noCheckpoints := scalingSpec()
	noCheckpoints.Checkpointing = nil
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	refused := []struct {
		name    string
		spec    *sabotv1.JobSpec // nil: an unknown job
		state   sabotv1.JobState
		rescale *sabotv1.Rescale // already in progress
		req     *sabotv1.RescaleJobRequest
		code    connect.Code
		want    []string
	}{{
		name: "changes nothing", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{},
		code: connect.CodeInvalidArgument, want: []string{"parallelism", "vertex_parallelism"},
	}, {
		name: "negative parallelism", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{Parallelism: -1},
		code: connect.CodeInvalidArgument, want: []string{"parallelism"},
	}, {
		name: "vertex parallelism 0", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{VertexParallelism: map[string]int32{"out": 0}},
		code: connect.CodeInvalidArgument, want: []string{"vertex_parallelism"},
	}, {
		name: "unknown job",
		req:  &sabotv1.RescaleJobRequest{Parallelism: 4},
		code: connect.CodeNotFound, want: []string{"job 000000000000deadbeef not found"},
	}, {
		name: "not running", spec: scalingSpec(), state: sabotv1.JobState_JOB_STATE_RESTARTING,
		req:  &sabotv1.RescaleJobRequest{Parallelism: 4},
		code: connect.CodeFailedPrecondition, want: []string{"is RESTARTING", "only a running job"},
	}, {
		name: "ended", spec: scalingSpec(), state: sabotv1.JobState_JOB_STATE_FINISHED,
		req:  &sabotv1.RescaleJobRequest{Parallelism: 4},
		code: connect.CodeFailedPrecondition, want: []string{"is FINISHED"},
	}, {
		name: "no checkpointing", spec: noCheckpoints, state: running,
		req:  &sabotv1.RescaleJobRequest{Parallelism: 4},
		code: connect.CodeFailedPrecondition, want: []string{"has no checkpointing", "savepoint"},
	}, {
		name: "a rescale in progress", spec: scalingSpec(), state: running,
		rescale: &sabotv1.Rescale{Parallelism: 3, Cause: "autoscaler", RequestedAt: timestamppb.New(since)},
		req:     &sabotv1.RescaleJobRequest{Parallelism: 4},
		code:    connect.CodeFailedPrecondition, want: []string{"a rescale is in progress since 2026-01-02T03:04:05Z", "autoscaler"},
	}, {
		name: "unknown vertices", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{VertexParallelism: map[string]int32{"nope": 2, "out": 3, "also": 1}},
		code: connect.CodeInvalidArgument, want: []string{`vertex_parallelism: job `, `has no vertex "also", "nope"`, "(its vertices: fwd, out, s)"},
	}, {
		name: "parallelism above max", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{Parallelism: 9},
		code: connect.CodeInvalidArgument, want: []string{"parallelism: 9 exceeds the job's max_parallelism 8"},
	}, {
		name: "vertex parallelism above max", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{VertexParallelism: map[string]int32{"out": 3, "s": 20, "fwd": 20}},
		code: connect.CodeInvalidArgument, want: []string{`vertex_parallelism["fwd"]: 20 exceeds the job's max_parallelism 8`},
	}, {
		name: "breaks a forward edge", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{VertexParallelism: map[string]int32{"s": 4}},
		code: connect.CodeInvalidArgument, want: []string{"the rescaled job graph is invalid", "forward edge", "s has 4 and fwd has 2"},
	}, {
		name: "already at that parallelism", spec: scalingSpec(), state: running,
		req:  &sabotv1.RescaleJobRequest{Parallelism: 2, VertexParallelism: map[string]int32{"out": 2}},
		code: connect.CodeFailedPrecondition, want: []string{"already runs at that parallelism (fwd 2, out 2, s 2)", "would change nothing"},
	}}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := "000000000000deadbeef"
			if tc.spec != nil {
				id = deployAs(t, c, etcd.Client, tc.spec, tc.state, tc.rescale)
			}
			var before *sabotv1.Job
			if tc.spec != nil {
				before = getJob(t, c, id)
			}
			tc.req.JobId = id
			_, err := c.RescaleJob(t.Context(), connect.NewRequest(tc.req))
			var cerr *connect.Error
			if !errors.As(err, &cerr) || cerr.Code() != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(cerr.Message(), w) {
					t.Errorf("message %q does not mention %q", cerr.Message(), w)
				}
			}
			if before != nil {
				if diff := cmp.Diff(before, getJob(t, c, id), protocmp.Transform()); diff != "" {
					t.Errorf("a refused rescale changed the job (-before +after):\n%s", diff)
				}
			}
		})
	}

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		id := deployAs(t, c, etcd.Client, scalingSpec(), running, nil)
		start := time.Now()
		resp, err := c.RescaleJob(t.Context(), connect.NewRequest(&sabotv1.RescaleJobRequest{
			JobId: id, Parallelism: 4, VertexParallelism: map[string]int32{"out": 3},
		}))
		if err != nil {
			t.Fatal(err)
		}
		stored := getJob(t, c, id)
		if diff := cmp.Diff(stored, resp.Msg.GetJob(), protocmp.Transform()); diff != "" {
			t.Errorf("response differs from the stored job (-stored +response):\n%s", diff)
		}
		r := stored.GetStatus().GetRescale()
		want := &sabotv1.Rescale{Parallelism: 4, VertexParallelism: map[string]int32{"out": 3}, Cause: "user", RequestedAt: r.GetRequestedAt()}
		if diff := cmp.Diff(want, r, protocmp.Transform()); diff != "" {
			t.Errorf("status.rescale (-want +got):\n%s", diff)
		}
		if at := r.GetRequestedAt().AsTime(); at.Before(start.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("requested_at %v is not about now (%v)", at, start)
		}
		if st := stored.GetStatus().GetState(); st != running {
			t.Errorf("state %s, want RUNNING: the scheduler performs the rescale", st)
		}
		if p := stored.GetSpec().GetParallelism(); p != 2 {
			t.Errorf("spec parallelism %d: the gateway must leave the spec to the scheduler", p)
		}

		// A second request finds the first in progress.
		_, err = c.RescaleJob(t.Context(), connect.NewRequest(&sabotv1.RescaleJobRequest{JobId: id, Parallelism: 5}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "a rescale is in progress since") {
			t.Fatalf("second rescale: %v, want FailedPrecondition naming the one in progress", err)
		}
	})

	t.Run("one vertex, forward pair together", func(t *testing.T) {
		t.Parallel()
		id := deployAs(t, c, etcd.Client, scalingSpec(), running, nil)
		resp, err := c.RescaleJob(t.Context(), connect.NewRequest(&sabotv1.RescaleJobRequest{
			JobId: id, VertexParallelism: map[string]int32{"s": 8, "fwd": 8},
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Msg.GetJob().GetStatus().GetRescale().GetVertexParallelism(); len(got) != 2 || got["s"] != 8 || got["fwd"] != 8 {
			t.Fatalf("vertex_parallelism %v", got)
		}
	})
}

func getJob(t *testing.T, c sabotv1connect.JobServiceClient, id string) *sabotv1.Job {
	t.Helper()
	resp, err := c.GetJob(t.Context(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetJob()
}

func TestListWorkers(t *testing.T) {
	t.Parallel()
	etcd, c := startGateway(t)
	ctx := t.Context()

	resp, err := c.ListWorkers(ctx, connect.NewRequest(&sabotv1.ListWorkersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Msg.GetWorkers()); n != 0 {
		t.Fatalf("%d workers before any registered", n)
	}

	// What workers and the scheduler write.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	workers := []*clusterv1.Worker{
		{Id: "w-b", Address: "http://10.0.0.2:7000", Slots: 4, StartedAt: timestamppb.New(t0.Add(time.Minute))},
		{Id: "w-a", Address: "http://10.0.0.1:7000", Slots: 2, StartedAt: timestamppb.New(t0)},
		{Id: "w-idle", Slots: 8, StartedAt: timestamppb.New(t0)},
	}
	for _, w := range workers {
		if _, err := etcd.Client.Put(ctx, cluster.WorkerKey(w.GetId()), cluster.Marshal(w)); err != nil {
			t.Fatal(err)
		}
	}
	sub := func(v string, i int32) *clusterv1.SubtaskRef { return &clusterv1.SubtaskRef{VertexId: v, Subtask: i} }
	assignments := []*clusterv1.Assignment{
		// w-a runs all of job2 two wide (2 slots) …
		{JobId: "job2", WorkerId: "w-a", Subtasks: []*clusterv1.SubtaskRef{sub("s", 0), sub("s", 1), sub("out", 0), sub("out", 1)}},
		// … and w-b half of job1 (3 of s's 6 subtasks: 3 slots) and job3 (1).
		{JobId: "job3", WorkerId: "w-b", Subtasks: []*clusterv1.SubtaskRef{sub("s", 0)}},
		{JobId: "job1", WorkerId: "w-b", Subtasks: []*clusterv1.SubtaskRef{sub("s", 0), sub("s", 2), sub("s", 4), sub("out", 0)}},
		// A worker that is gone: not listed.
		{JobId: "job1", WorkerId: "w-gone", Subtasks: []*clusterv1.SubtaskRef{sub("s", 1), sub("s", 3), sub("s", 5)}},
	}
	for _, a := range assignments {
		if _, err := etcd.Client.Put(ctx, cluster.AssignmentKey(a.GetWorkerId(), a.GetJobId()), cluster.Marshal(a)); err != nil {
			t.Fatal(err)
		}
	}

	resp, err = c.ListWorkers(ctx, connect.NewRequest(&sabotv1.ListWorkersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	want := &sabotv1.ListWorkersResponse{Workers: []*sabotv1.WorkerInfo{
		{Id: "w-a", Address: "http://10.0.0.1:7000", Slots: 2, SlotsUsed: 2, StartedAt: timestamppb.New(t0), Jobs: []string{"job2"}},
		{Id: "w-b", Address: "http://10.0.0.2:7000", Slots: 4, SlotsUsed: 4, StartedAt: timestamppb.New(t0.Add(time.Minute)), Jobs: []string{"job1", "job3"}},
		{Id: "w-idle", Slots: 8, StartedAt: timestamppb.New(t0)},
	}}
	if diff := cmp.Diff(want, resp.Msg, protocmp.Transform()); diff != "" {
		t.Fatalf("ListWorkers (-want +got):\n%s", diff)
	}
}

func TestGetAutoscaler(t *testing.T) {
	t.Parallel()
	etcd, c := startGateway(t)
	ctx := t.Context()
	id := deployAs(t, c, etcd.Client, scalingSpec(), sabotv1.JobState_JOB_STATE_RUNNING, nil)

	resp, err := c.GetAutoscaler(ctx, connect.NewRequest(&sabotv1.GetAutoscalerRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Msg.GetDecisions()); n != 0 {
		t.Fatalf("%d decisions before any was recorded", n)
	}

	// What the scheduler's autoscaler records: a hold, then a scale-up.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hold := &sabotv1.ScalingDecision{Time: timestamppb.New(t0), Action: "hold", Reason: "within target utilization",
		Vertices: []*sabotv1.VertexScaling{{VertexId: "s", CurrentParallelism: 2, NewParallelism: 2, RecordsInPerSecond: 1000, BusyRatio: 0.6}}}
	up := &sabotv1.ScalingDecision{Time: timestamppb.New(t0.Add(time.Minute)), Action: "scale-up", Reason: "out is busy 95% of the time", WorkersRequested: 1,
		Vertices: []*sabotv1.VertexScaling{{VertexId: "out", CurrentParallelism: 2, NewParallelism: 4, RecordsInPerSecond: 5000, RecordsOutPerSecond: 5000,
			BusyRatio: 0.95, BackpressuredRatio: 0.1, TrueProcessingRate: 2600, TargetRate: 7000, Lag: 120000}}}
	for _, d := range []*sabotv1.ScalingDecision{hold, up} {
		if err := cluster.RecordScalingDecision(ctx, etcd.Client, id, d); err != nil {
			t.Fatal(err)
		}
	}
	resp, err = c.GetAutoscaler(ctx, connect.NewRequest(&sabotv1.GetAutoscalerRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	want := &sabotv1.GetAutoscalerResponse{Decisions: []*sabotv1.ScalingDecision{up, hold}}
	if diff := cmp.Diff(want, resp.Msg, protocmp.Transform()); diff != "" {
		t.Fatalf("GetAutoscaler (-want +got):\n%s", diff)
	}

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
			t.Parallel()
			_, err := c.GetAutoscaler(ctx, connect.NewRequest(&sabotv1.GetAutoscalerRequest{JobId: tc.jobID}))
			if connect.CodeOf(err) != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			if tc.code == connect.CodeNotFound && !strings.Contains(err.Error(), tc.jobID) {
				t.Fatalf("error %v does not name the job", err)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sabotdev/sabot/gateway"
	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// startBareGateway runs a gateway on an embedded etcd, without scheduler or
// workers: the test plays them by writing their records.
func startBareGateway(t *testing.T) (*gateway.Gateway, *clientv3.Client) {
	t.Helper()
	etcd := testkit.StartEtcd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	gw, err := gateway.Start(ctx, gateway.Config{Addr: "127.0.0.1:0", Etcd: etcd.Client, Logger: testkit.Logger(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return gw, etcd.Client
}

// scalingJob stores a job as the scheduler leaves it: s → out, two wide,
// in state, with checkpointing.
func scalingJob(t *testing.T, kv clientv3.KV, state sabotv1.JobState) string {
	t.Helper()
	id := cluster.NewJobID(time.Now())
	putJob(t, kv, &sabotv1.Job{Id: id, CreatedAt: timestamppb.Now(),
		Spec: &sabotv1.JobSpec{Name: "scaled", Parallelism: 2,
			Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{
					{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{}}}},
					{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
				},
				Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
			},
			Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000}},
		Status: &sabotv1.JobStatus{State: state, Attempt: 1}})
	return id
}

// TestRescaleFlags: bad flags are one-line errors naming the flag, found
// before anything is sent (the address is unreachable).
func TestRescaleFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to change", []string{"j"}, "sabot: rescale: nothing to change: set --parallelism N or --vertex ID=N"},
		{"no job", []string{"--parallelism", "2"}, "accepts 1 arg(s), received 0"},
		{"negative parallelism", []string{"j", "--parallelism", "-1"}, "sabot: rescale: --parallelism -1: expected 1 to 32768"},
		{"parallelism not a number", []string{"j", "--parallelism", "two"}, `invalid argument "two" for "--parallelism"`},
		{"vertex without =", []string{"j", "--vertex", "count"}, `sabot: rescale: --vertex "count": expected ID=N, e.g. --vertex count=4`},
		{"vertex without id", []string{"j", "--vertex", "=3"}, `sabot: rescale: --vertex "=3": expected ID=N`},
		{"vertex parallelism not a number", []string{"j", "--vertex", "count=x"}, `sabot: rescale: --vertex "count=x": the parallelism must be an integer from 1 to 32768`},
		{"vertex parallelism 0", []string{"j", "--vertex", "count=0"}, `--vertex "count=0": the parallelism must be an integer from 1 to 32768`},
		{"vertex twice", []string{"j", "--vertex", "count=2", "--vertex", "count=3"}, "sabot: rescale: --vertex: vertex count is given twice"},
		{"vertex twice in one flag", []string{"j", "--vertex", "count=2,count=3"}, "vertex count is given twice"},
		{"timeout", []string{"j", "--parallelism", "2", "--timeout", "0s"}, "sabot: rescale: --timeout 0s: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errLine := sabot(t, "127.0.0.1:1", append([]string{"rescale"}, tc.args...)...)
			if !strings.Contains(errLine, tc.want) || strings.Contains(errLine, "\n") {
				t.Fatalf("error %q, want one line with %q", errLine, tc.want)
			}
		})
	}
}

// TestRescale runs `sabot rescale` against a real gateway, with the test
// playing the scheduler where the case needs one.
func TestRescale(t *testing.T) {
	t.Parallel()
	gw, kv := startBareGateway(t)
	running := sabotv1.JobState_JOB_STATE_RUNNING

	t.Run("no wait", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		stdout, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4", "--vertex", "out=3", "--wait=false")
		if errLine != "" {
			t.Fatal(errLine)
		}
		if want := "rescale of job " + id + " requested (parallelism 4, vertex out 3)"; !strings.Contains(stdout, want) {
			t.Fatalf("output %q lacks %q", stdout, want)
		}
		r := storedJob(t, kv, id).GetStatus().GetRescale()
		if r.GetParallelism() != 4 || len(r.GetVertexParallelism()) != 1 || r.GetVertexParallelism()["out"] != 3 || r.GetCause() != "user" {
			t.Fatalf("stored rescale %v", r)
		}
	})

	t.Run("no wait, json", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		stdout, errLine := sabot(t, gw.Addr(), "rescale", id, "--vertex", "s=2,out=5", "--wait=false", "-o", "json")
		if errLine != "" {
			t.Fatal(errLine)
		}
		var job struct {
			ID     string `json:"id"`
			Status struct {
				Rescale struct {
					VertexParallelism map[string]int `json:"vertexParallelism"`
				} `json:"rescale"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(stdout), &job); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout)
		}
		if vp := job.Status.Rescale.VertexParallelism; job.ID != id || vp["out"] != 5 {
			t.Fatalf("json %+v", job)
		}
	})

	t.Run("refused by the gateway", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, sabotv1.JobState_JOB_STATE_RESTARTING)
		_, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4")
		if want := "sabot: failed_precondition: job " + id + " is RESTARTING; only a running job can be rescaled"; errLine != want {
			t.Fatalf("error %q, want %q", errLine, want)
		}
		_, errLine = sabot(t, gw.Addr(), "rescale", scalingJob(t, kv, running), "--vertex", "nope=4")
		if !strings.HasPrefix(errLine, "sabot: invalid_argument: vertex_parallelism: job ") || !strings.Contains(errLine, `no vertex "nope" (its vertices: out, s)`) {
			t.Fatalf("error %q", errLine)
		}
	})

	t.Run("waits for the outcome", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		done := make(chan error, 1)
		go func() { // joined below
			done <- playScheduler(t.Context(), kv, id, func(j *sabotv1.Job) {
				st, r := j.GetStatus(), j.GetStatus().GetRescale()
				stopped := r.GetRequestedAt().AsTime().Add(400 * time.Millisecond)
				st.LastRescale = &sabotv1.RescaleOutcome{
					From: map[string]int32{"s": 2, "out": 2}, To: map[string]int32{"s": 4, "out": 4},
					Cause: r.GetCause(), RequestedAt: r.GetRequestedAt(),
					StoppedAt: timestamppb.New(stopped), RunningAt: timestamppb.New(stopped.Add(850 * time.Millisecond)),
					Savepoint: "savepoints/x/_metadata",
				}
				st.Rescale = nil
				j.Spec.Parallelism = 4
			})
		}()
		stdout, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if errLine != "" {
			t.Fatal(errLine)
		}
		for _, want := range []string{"rescaled " + id + ": vertices out 2→4, s 2→4 (paused 850ms: stopped at ", ", running at ", "; 1.25s from request to running)\n"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output %q lacks %q", stdout, want)
			}
		}
	})

	t.Run("the job fails meanwhile", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		done := make(chan error, 1)
		go func() { // joined below
			done <- playScheduler(t.Context(), kv, id, func(j *sabotv1.Job) {
				j.Status.State, j.Status.Message = sabotv1.JobState_JOB_STATE_FAILED, "savepoint failed:\n  disk full"
			})
		}()
		_, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if want := "sabot: rescale: job " + id + " ended FAILED before the rescale completed: savepoint failed: disk full"; errLine != want {
			t.Fatalf("error %q, want %q", errLine, want)
		}
	})

	t.Run("a later rescale takes its place", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		done := make(chan error, 1)
		go func() { // joined below
			done <- playScheduler(t.Context(), kv, id, func(j *sabotv1.Job) {
				r := j.GetStatus().GetRescale()
				j.Status.Rescale = &sabotv1.Rescale{Parallelism: 6, Cause: "autoscaler", RequestedAt: timestamppb.New(r.GetRequestedAt().AsTime().Add(time.Second))}
			})
		}()
		_, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errLine, "a later rescale of job "+id+" (cause autoscaler, requested at ") {
			t.Fatalf("error %q", errLine)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		id := scalingJob(t, kv, running)
		_, errLine := sabot(t, gw.Addr(), "rescale", id, "--parallelism", "4", "--timeout", "300ms")
		want := "sabot: rescale: gave up waiting for the rescale of job " + id + " after 300ms (--timeout) (the job is RUNNING; the rescale is pending); it may still complete"
		if !strings.HasPrefix(errLine, want) {
			t.Fatalf("error %q, want %q…", errLine, want)
		}
	})
}

func storedJob(t *testing.T, kv clientv3.KV, id string) *sabotv1.Job {
	t.Helper()
	rec, err := cluster.Get(t.Context(), kv, cluster.JobKey(id), cluster.NewJob)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Value
}

// playScheduler waits for the job's status.rescale and then applies
// outcome to the job, as the scheduler would once it has rescaled it.
func playScheduler(ctx context.Context, kv clientv3.KV, jobID string, outcome func(*sabotv1.Job)) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		rec, err := cluster.Get(ctx, kv, cluster.JobKey(jobID), cluster.NewJob)
		if err != nil {
			return err
		}
		if rec.Value.GetStatus().GetRescale() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return errors.New("no rescale was requested")
		case <-time.After(10 * time.Millisecond):
		}
	}
	_, err := cluster.UpdateJob(ctx, kv, jobID, func(j *sabotv1.Job) (bool, error) {
		outcome(j)
		return true, nil
	}, nil, nil)
	return err
}

func TestWorkers(t *testing.T) {
	t.Parallel()
	gw, kv := startBareGateway(t)
	stdout, errLine := sabot(t, gw.Addr(), "workers")
	if errLine != "" || strings.TrimSpace(stdout) != "ID  ADDRESS  SLOTS  STARTED  JOBS" {
		t.Fatalf("workers with none: %q %q", stdout, errLine)
	}

	ctx := t.Context()
	for _, w := range []*clusterv1.Worker{
		{Id: "w-1", Address: "http://10.0.0.1:7000", Slots: 4, StartedAt: timestamppb.Now()},
		{Id: "w-2", Slots: 2, StartedAt: timestamppb.Now()},
	} {
		if _, err := kv.Put(ctx, cluster.WorkerKey(w.GetId()), cluster.Marshal(w)); err != nil {
			t.Fatal(err)
		}
	}
	a := &clusterv1.Assignment{JobId: "job1", WorkerId: "w-1", Subtasks: []*clusterv1.SubtaskRef{
		{VertexId: "s", Subtask: 0}, {VertexId: "s", Subtask: 1}, {VertexId: "s", Subtask: 2}, {VertexId: "out", Subtask: 0}}}
	if _, err := kv.Put(ctx, cluster.AssignmentKey("w-1", "job1"), cluster.Marshal(a)); err != nil {
		t.Fatal(err)
	}

	stdout, errLine = sabot(t, gw.Addr(), "workers")
	if errLine != "" {
		t.Fatal(errLine)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 workers:\n%s", stdout)
	}
	for i, want := range [][]string{{"w-1", "http://10.0.0.1:7000", "3/4", "job1"}, {"w-2", "-", "0/2", "-"}} {
		f := strings.Fields(lines[i+1])
		// ID ADDRESS SLOTS DATE TIME JOBS
		if len(f) != 6 || f[0] != want[0] || f[1] != want[1] || f[2] != want[2] || f[5] != want[3] {
			t.Errorf("row %q, want %v", lines[i+1], want)
		}
	}

	stdout, errLine = sabot(t, gw.Addr(), "workers", "-o", "json")
	if errLine != "" {
		t.Fatal(errLine)
	}
	var listed struct {
		Workers []struct {
			ID        string   `json:"id"`
			SlotsUsed int      `json:"slotsUsed"`
			Jobs      []string `json:"jobs"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if len(listed.Workers) != 2 || listed.Workers[0].ID != "w-1" || listed.Workers[0].SlotsUsed != 3 || len(listed.Workers[0].Jobs) != 1 {
		t.Fatalf("workers -o json: %+v", listed)
	}
}

func TestAutoscalerCmd(t *testing.T) {
	t.Parallel()
	gw, kv := startBareGateway(t)
	id := scalingJob(t, kv, sabotv1.JobState_JOB_STATE_RUNNING)

	stdout, errLine := sabot(t, gw.Addr(), "autoscaler", id)
	if want := "No autoscaler decisions for job " + id + " (its autoscaler is not enabled: set autoscaler.enabled in its manifest).\n"; errLine != "" || stdout != want {
		t.Fatalf("got %q (error %q), want %q", stdout, errLine, want)
	}

	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, d := range []*sabotv1.ScalingDecision{
		{Time: timestamppb.New(t0), Action: "hold", Reason: "within target",
			Vertices: []*sabotv1.VertexScaling{{VertexId: "s", CurrentParallelism: 2, NewParallelism: 2, RecordsInPerSecond: 12.5, BusyRatio: 0.5}}},
		{Time: timestamppb.New(t0.Add(time.Minute)), Action: "scale-up", Reason: "out is\nbusy", WorkersRequested: 1,
			Vertices: []*sabotv1.VertexScaling{
				{VertexId: "s", CurrentParallelism: 2, NewParallelism: 2, RecordsInPerSecond: 50000, BusyRatio: 0.2, TrueProcessingRate: 125000, TargetRate: 56000, Lag: 120000},
				{VertexId: "out", CurrentParallelism: 2, NewParallelism: 4, RecordsInPerSecond: 50000, BusyRatio: 0.95, BackpressuredRatio: 0.1, TrueProcessingRate: 26300, TargetRate: 56000},
			}},
	} {
		if err := cluster.RecordScalingDecision(t.Context(), kv, id, d); err != nil {
			t.Fatal(err)
		}
	}
	stdout, errLine = sabot(t, gw.Addr(), "autoscaler", id)
	if errLine != "" {
		t.Fatal(errLine)
	}
	t.Logf("\n%s", stdout)
	for _, want := range []string{
		"scale-up: out is busy (1 workers requested)", "VERTEX", "PARALLELISM", "IN/S", "BUSY", "BACKPRESSURE", "TRUE RATE", "TARGET RATE", "LAG",
		"out     2→4          50.0k  95%   10%           26.3k/s    56.0k/s      -", "125.0k/s", "120000", "hold: within target", "12.5",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Index(stdout, "scale-up") > strings.Index(stdout, "hold") {
		t.Errorf("decisions are not newest first")
	}

	stdout, errLine = sabot(t, gw.Addr(), "autoscaler", id, "-o", "json")
	if errLine != "" {
		t.Fatal(errLine)
	}
	var got struct {
		Decisions []struct {
			Action string `json:"action"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || len(got.Decisions) != 2 || got.Decisions[0].Action != "scale-up" {
		t.Fatalf("autoscaler -o json: %v %+v\n%s", err, got, stdout)
	}

	if _, errLine = sabot(t, gw.Addr(), "autoscaler", "000000000000deadbeef"); !strings.Contains(errLine, "not_found") {
		t.Fatalf("autoscaler of an unknown job: %q", errLine)
	}
}

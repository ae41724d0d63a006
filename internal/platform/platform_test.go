package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/testkit"
)

func deploy(t *testing.T, p *testkit.Platform, spec *sabotv1.JobSpec) *sabotv1.Job {
	t.Helper()
	resp, err := p.Jobs.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		t.Fatalf("deploy %s: %v", spec.GetName(), err)
	}
	return resp.Msg.GetJob()
}

func getJob(ctx context.Context, p *testkit.Platform, id string) (*sabotv1.Job, error) {
	resp, err := p.Jobs.GetJob(ctx, connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetJob(), nil
}

// waitState polls until the job is in want, failing early if it reaches a
// different terminal state.
func waitState(t *testing.T, p *testkit.Platform, id string, want sabotv1.JobState) *sabotv1.Job {
	t.Helper()
	var last *sabotv1.Job
	testkit.Eventually(t, 30*time.Second, func() error {
		j, err := getJob(context.Background(), p, id)
		if err != nil {
			return err
		}
		last = j
		if s := j.GetStatus().GetState(); s != want {
			return fmt.Errorf("job %s is %s (%q), want %s", id, s, j.GetStatus().GetMessage(), want)
		}
		return nil
	})
	return last
}

// sequenceToFile is sequence(1..n) → map → filter → file at parallelism 2,
// with a rebalance into a single-subtask sink, writing under dir.
func sequenceToFile(dir string, n int64) *sabotv1.JobSpec {
	return &sabotv1.JobSpec{
		Name:        "sequence-to-file",
		Parallelism: 2,
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "numbers", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{Start: 1, End: &n}}}},
				{Id: "squares", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{Columns: []*sabotv1.NamedExpression{
					{Name: "value", Expr: "value"}, {Name: "squared", Expr: "value * value"},
				}}}}},
				{Id: "some", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{Filter: &sabotv1.FilterOperator{Condition: "squared % 3 = 1"}}}},
				{Id: "out", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_File{File: &sabotv1.FileSink{Path: dir}}}},
			},
			Edges: []*sabotv1.Edge{
				{From: "numbers", To: "squares"},
				{From: "squares", To: "some"},
				{From: "some", To: "out"},
			},
		},
	}
}

// expectedSequenceToFile computes sequenceToFile's output independently.
func expectedSequenceToFile(n int64) []string {
	var want []string
	for v := int64(1); v <= n; v++ {
		if sq := v * v; sq%3 == 1 {
			want = append(want, fmt.Sprintf(`{"squared":%d,"value":%d}`, sq, v))
		}
	}
	slices.Sort(want)
	return want
}

// readJSONLines reads every part file in dir and returns the rows.
func readJSONLines(t *testing.T, dir string) []map[string]any {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	for _, part := range parts {
		f, err := os.Open(part)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row map[string]any
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %q: %v", part, sc.Text(), err)
			}
			rows = append(rows, row)
		}
		if err := errors.Join(sc.Err(), f.Close()); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// TestJobRunsToCompletion deploys a bounded job and checks the file sink holds exactly the rows an independent computation
// expects, once each.
func TestJobRunsToCompletion(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{})
	out := t.TempDir()
	const n = 20000
	job := deploy(t, p, sequenceToFile(out, n))
	if got := job.GetStatus().GetState(); got != sabotv1.JobState_JOB_STATE_CREATED {
		t.Fatalf("deployed job is %s, want CREATED", got)
	}
	done := waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_FINISHED)
	for _, task := range done.GetStatus().GetTasks() {
		if task.GetState() != sabotv1.TaskState_TASK_STATE_FINISHED {
			t.Errorf("task %s/%d is %s after the job finished", task.GetVertexId(), task.GetSubtask(), task.GetState())
		}
	}

	want := expectedSequenceToFile(n)
	var got []string
	for _, row := range readJSONLines(t, out) {
		b, _ := json.Marshal(row)
		got = append(got, string(b))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("file sink has %d rows, want %d; first got %v, first want %v", len(got), len(want), head(got), head(want))
	}
}

func head(s []string) []string { return s[:min(3, len(s))] }

// unbounded is a paced, never-ending sequence into a print sink.
func unbounded(name string) *sabotv1.JobSpec {
	return &sabotv1.JobSpec{
		Name:        name,
		Parallelism: 2,
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "ticks", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{RowsPerSecond: 20}}}},
				{Id: "log", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{Prefix: name}}}},
			},
			Edges: []*sabotv1.Edge{{From: "ticks", To: "log"}},
		},
	}
}

// TestCancel: a running job stops on request, and its tasks say so.
func TestCancel(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{})
	job := deploy(t, p, unbounded("forever"))
	waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)

	resp, err := p.Jobs.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: job.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.Msg.GetJob().GetStatus().GetState(); s != sabotv1.JobState_JOB_STATE_CANCELING {
		t.Fatalf("cancel returned state %s, want CANCELING", s)
	}
	done := waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_CANCELED)
	if len(done.GetStatus().GetTasks()) == 0 {
		t.Fatal("canceled job lists no tasks")
	}
	for _, task := range done.GetStatus().GetTasks() {
		if task.GetState() != sabotv1.TaskState_TASK_STATE_CANCELED {
			t.Errorf("task %s/%d is %s, want CANCELED", task.GetVertexId(), task.GetSubtask(), task.GetState())
		}
	}
	// Cancelling an ended job changes nothing and is not an error.
	again, err := p.Jobs.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: job.GetId()}))
	if err != nil || again.Msg.GetJob().GetStatus().GetState() != sabotv1.JobState_JOB_STATE_CANCELED {
		t.Fatalf("second cancel: %v, state %s", err, again.Msg.GetJob().GetStatus().GetState())
	}
}

// TestRestartKeepsJobs: stopping the platform and starting it again on the
// same data directory lists the same jobs with truthful states: a finished
// job stays FINISHED, a canceled one CANCELED, and a running one is placed
// again (a new attempt) and runs.
func TestRestartKeepsJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{DataDir: dir})
	finished := deploy(t, p, sequenceToFile(t.TempDir(), 100))
	waitState(t, p, finished.GetId(), sabotv1.JobState_JOB_STATE_FINISHED)
	canceled := deploy(t, p, unbounded("to-cancel"))
	waitState(t, p, canceled.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	if _, err := p.Jobs.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: canceled.GetId()})); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, canceled.GetId(), sabotv1.JobState_JOB_STATE_CANCELED)
	running := deploy(t, p, unbounded("keeps-running"))
	before := waitState(t, p, running.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	p.Stop()

	p2 := testkit.StartPlatform(t, testkit.PlatformOptions{DataDir: dir})
	resp, err := p2.Jobs.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range resp.Msg.GetJobs() {
		ids = append(ids, j.GetId())
	}
	// Newest first.
	if want := []string{running.GetId(), canceled.GetId(), finished.GetId()}; !slices.Equal(ids, want) {
		t.Fatalf("after restart jobs are %v, want %v", ids, want)
	}
	waitState(t, p2, finished.GetId(), sabotv1.JobState_JOB_STATE_FINISHED)
	waitState(t, p2, canceled.GetId(), sabotv1.JobState_JOB_STATE_CANCELED)
	after := waitState(t, p2, running.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	if after.GetStatus().GetAttempt() <= before.GetStatus().GetAttempt() {
		t.Fatalf("running job's attempt is %d after restart, was %d: it was not placed again",
			after.GetStatus().GetAttempt(), before.GetStatus().GetAttempt())
	}
	for _, task := range after.GetStatus().GetTasks() {
		if task.GetState() != sabotv1.TaskState_TASK_STATE_RUNNING {
			t.Errorf("task %s/%d is %s after restart", task.GetVertexId(), task.GetSubtask(), task.GetState())
		}
	}
}

// TestRejectsBadRequests: protovalidate rules and graph resolution reject bad
// requests with InvalidArgument naming the field, and nothing is stored.
func TestRejectsBadRequests(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})
	good := func() *sabotv1.JobSpec { return sequenceToFile(t.TempDir(), 10) }
	cases := []struct {
		name   string
		mutate func(*sabotv1.JobSpec)
		want   []string
	}{
		{"empty name", func(s *sabotv1.JobSpec) { s.Name = "" }, []string{"spec.name"}},
		{"negative parallelism", func(s *sabotv1.JobSpec) { s.Parallelism = -1 }, []string{"spec.parallelism"}},
		{"vertex parallelism above max", func(s *sabotv1.JobSpec) {
			s.MaxParallelism = 4
			s.Graph.Vertices[1].Parallelism = 8
		}, []string{"graph.vertices[1].parallelism", "exceeds max_parallelism 4"}},
		{"no graph", func(s *sabotv1.JobSpec) { s.Graph = nil }, []string{"spec.graph", "required"}},
		{"edge to nowhere", func(s *sabotv1.JobSpec) { s.Graph.Edges[0].To = "nowhere" }, []string{"spec.graph", "every edge must join two vertices"}},
		{"cycle", func(s *sabotv1.JobSpec) {
			s.Graph.Edges = append(s.Graph.Edges, &sabotv1.Edge{From: "some", To: "squares"})
		}, []string{"cycle"}},
		{"hash edge without key", func(s *sabotv1.JobSpec) {
			s.Graph.Edges[2].Partitioning = sabotv1.Partitioning_PARTITIONING_HASH
		}, []string{"spec.graph.edges[2]", "key_fields"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := good()
			tc.mutate(spec)
			_, err := p.Jobs.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Cleanups run last-in first-out: this one runs after the parallel
	// cases and before the platform stops.
	t.Cleanup(func() {
		resp, err := p.Jobs.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
		if err != nil {
			t.Error(err)
			return
		}
		if n := len(resp.Msg.GetJobs()); n != 0 {
			t.Errorf("%d jobs stored by rejected requests", n)
		}
	})
}

// TestUnknownJob: Get and Cancel of a job that does not exist are NotFound.
func TestUnknownJob(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})
	_, err := getJob(context.Background(), p, "nope")
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("GetJob: %v, want NotFound", err)
	}
	_, err = p.Jobs.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: "nope"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("CancelJob: %v, want NotFound", err)
	}
}

// TestWorkerLossRestartsJob: when the worker running a job goes away, the
// scheduler places the job on the remaining worker as a new attempt.
func TestWorkerLossRestartsJob(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 2})
	job := deploy(t, p, unbounded("survivor"))
	before := waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	victim := before.GetStatus().GetTasks()[0].GetWorkerId()
	w := p.Worker(victim)
	if w == nil {
		t.Fatalf("job runs on %s, which is not one of the platform's workers", victim)
	}
	w.Close()

	testkit.Eventually(t, 30*time.Second, func() error {
		j, err := getJob(context.Background(), p, job.GetId())
		if err != nil {
			return err
		}
		st := j.GetStatus()
		if st.GetState() != sabotv1.JobState_JOB_STATE_RUNNING || st.GetAttempt() == before.GetStatus().GetAttempt() {
			return fmt.Errorf("job is %s attempt %d (%q)", st.GetState(), st.GetAttempt(), st.GetMessage())
		}
		for _, task := range st.GetTasks() {
			if task.GetWorkerId() == victim {
				return fmt.Errorf("task %s/%d still on the lost worker", task.GetVertexId(), task.GetSubtask())
			}
		}
		return nil
	})
}

// TestRelativeDataDir starts the platform as the README's quick start does,
// with a data directory relative to the working directory, and checkpoints
// a job into its blob store. Not parallel: it changes the working
// directory.
func TestRelativeDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	p := testkit.StartPlatform(t, testkit.PlatformOptions{DataDir: ".sabot"})
	spec := unbounded("checkpointed")
	spec.Checkpointing = &sabotv1.Checkpointing{IntervalMs: 50}
	job := deploy(t, p, spec)
	waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := p.Jobs.ListCheckpoints(context.Background(), connect.NewRequest(&sabotv1.ListCheckpointsRequest{JobId: job.GetId()}))
		if err != nil {
			return err
		}
		if resp.Msg.GetLatestCompleted() == 0 {
			return errors.New("no checkpoint completed yet")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(".sabot", "blobs", "jobs", job.GetId())); err != nil {
		t.Fatalf("checkpoints are not in .sabot/blobs: %v", err)
	}
}

package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/scheduler"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) //nolint:gochecknoglobals // immutable test constant

// harness is one embedded etcd with a worker registration w1 (4 slots)
// written directly, a fake clock, and a scheduler leading under it. The
// test plays the worker: it reads assignments and writes reports.
type harness struct {
	t     *testing.T
	cli   *clientv3.Client
	clock *clockwork.FakeClock
	sched *scheduler.Scheduler
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	etcd := testkit.StartEtcd(t)
	h := &harness{t: t, cli: etcd.Client, clock: clockwork.NewFakeClockAt(t0)}
	h.put(cluster.WorkerKey("w1"), &clusterv1.Worker{Id: "w1", Slots: 4})
	h.startScheduler()
	return h
}

// startScheduler starts a scheduler and waits until it leads. Its
// reconcile interval is an hour of fake time that tests never advance, so
// every pass is driven by an etcd change or by the restart timer.
func (h *harness) startScheduler() *scheduler.Scheduler {
	h.t.Helper()
	s, err := scheduler.Start(h.t.Context(), scheduler.Config{
		Etcd:              h.cli,
		ReconcileInterval: time.Hour,
		Clock:             h.clock,
		Logger:            testkit.Logger(h.t, slog.LevelInfo),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(s.Close)
	select {
	case <-s.Leading():
	case <-time.After(30 * time.Second):
		h.t.Fatal("scheduler did not become leader")
	}
	h.sched = s
	return s
}

func (h *harness) put(key string, m proto.Message) {
	h.t.Helper()
	if _, err := h.cli.Put(context.Background(), key, cluster.Marshal(m)); err != nil {
		h.t.Fatal(err)
	}
}

// deploy stores a CREATED job of two vertices (s → out, one subtask each)
// with the given checkpointing and restart strategy.
func (h *harness) deploy(id string, cp *sabotv1.Checkpointing, rs *sabotv1.RestartStrategy) {
	h.t.Helper()
	h.put(cluster.JobKey(id), &sabotv1.Job{
		Id: id,
		Spec: &sabotv1.JobSpec{Name: id, Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{}}}},
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
			},
			Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
		}, Checkpointing: cp, RestartStrategy: rs},
		Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_CREATED, UpdatedAt: timestamppb.New(t0)},
	})
}

// job polls until the stored job satisfies cond and returns it.
func (h *harness) job(id string, cond func(*sabotv1.Job) error) *sabotv1.Job {
	h.t.Helper()
	var job *sabotv1.Job
	testkit.Eventually(h.t, 20*time.Second, func() error {
		v, err := cluster.Get(context.Background(), h.cli, cluster.JobKey(id), cluster.NewJob)
		if err != nil {
			return err
		}
		job = v.Value
		return cond(job)
	})
	return job
}

func inState(state sabotv1.JobState, attempt int64) func(*sabotv1.Job) error {
	return func(j *sabotv1.Job) error {
		st := j.GetStatus()
		if st.GetState() != state || st.GetAttempt() != attempt {
			return fmt.Errorf("job is %s attempt %d (%q), want %s attempt %d", st.GetState(), st.GetAttempt(), st.GetMessage(), state, attempt)
		}
		return nil
	}
}

// assignment returns the job's assignment on w1, or nil.
func (h *harness) assignment(id string) *clusterv1.Assignment {
	h.t.Helper()
	a, err := cluster.Get(context.Background(), h.cli, cluster.AssignmentKey("w1", id), cluster.NewAssignment)
	if cluster.IsNotFound(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return a.Value
}

// waitPlaced waits for the job's assignment of attempt.
func (h *harness) waitPlaced(id string, attempt int64) {
	h.t.Helper()
	testkit.Eventually(h.t, 20*time.Second, func() error {
		if a := h.assignment(id); a.GetAttempt() != attempt {
			return fmt.Errorf("assignment attempt %d, want %d", a.GetAttempt(), attempt)
		}
		return nil
	})
}

// report writes w1's report on attempt: every task running, or s/0 failed
// with errMsg.
func (h *harness) report(id string, attempt int64, errMsg string) {
	h.t.Helper()
	state := sabotv1.TaskState_TASK_STATE_RUNNING
	if errMsg != "" {
		state = sabotv1.TaskState_TASK_STATE_FAILED
	}
	h.put(cluster.ReportKey(id, "w1"), &clusterv1.TaskReport{
		JobId: id, Attempt: attempt, WorkerId: "w1", Error: errMsg,
		Tasks: []*sabotv1.TaskStatus{
			{VertexId: "s", Subtask: 0, WorkerId: "w1", State: state},
			{VertexId: "out", Subtask: 0, WorkerId: "w1", State: sabotv1.TaskState_TASK_STATE_RUNNING},
		},
	})
}

// runAndFail waits for attempt to be placed, runs it (waiting for RUNNING), then fails it and
// waits for the scheduler's verdict (RESTARTING or FAILED), which it returns.
func (h *harness) runAndFail(id string, attempt int64, errMsg string) *sabotv1.Job {
	h.t.Helper()
	h.waitPlaced(id, attempt)
	h.report(id, attempt, "")
	h.job(id, inState(sabotv1.JobState_JOB_STATE_RUNNING, attempt))
	h.report(id, attempt, errMsg)
	return h.job(id, func(j *sabotv1.Job) error {
		if s := j.GetStatus().GetState(); s != sabotv1.JobState_JOB_STATE_RESTARTING && s != sabotv1.JobState_JOB_STATE_FAILED {
			return fmt.Errorf("job is %s (%q) after failing attempt %d", s, j.GetStatus().GetMessage(), attempt)
		}
		return nil
	})
}

// awaitTimer blocks until the scheduler's restart timer is armed: the fake
// clock then has two waiters, the reconcile ticker and the timer.
func (h *harness) awaitTimer() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, 2); err != nil {
		h.t.Fatalf("restart timer never armed: %v", err)
	}
}

// advanceToRestart moves the clock by d once the restart timer is armed.
func (h *harness) advanceToRestart(d time.Duration) {
	h.t.Helper()
	h.awaitTimer()
	h.clock.Advance(d)
}

// probe makes the scheduler run a pass and waits until it has: a new job
// is deployed, and once it is placed, the pass that placed it has also
// judged every other job.
func (h *harness) probe(n int) {
	h.t.Helper()
	id := fmt.Sprintf("probe%d", n)
	h.deploy(id, nil, nil)
	h.waitPlaced(id, 1)
}

func wantMessage(t *testing.T, j *sabotv1.Job, want string) {
	t.Helper()
	if got := j.GetStatus().GetMessage(); got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func fixedDelay(attempts int32, delay time.Duration) *sabotv1.RestartStrategy {
	return &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{
		FixedDelay: &sabotv1.FixedDelayRestart{Attempts: attempts, DelayMs: delay.Milliseconds()},
	}}
}

// TestRestartAfterDelay: a failed task makes the job RESTARTING with a
// message saying why and when; its assignment goes at once; nothing is
// placed before the delay is over, even by a new leader; when it is, the
// timer wakes the reconciler (no tick can: the interval is never reached)
// and the next attempt is placed.
func TestRestartAfterDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deploy("job", &sabotv1.Checkpointing{IntervalMs: 1000}, fixedDelay(3, 10*time.Second))

	j := h.runAndFail("job", 1, "boom")
	wantMessage(t, j, "task failed: boom; restarting in 10s (restart 1 of 3)")
	st := j.GetStatus()
	if st.GetState() != sabotv1.JobState_JOB_STATE_RESTARTING || st.GetRestarts() != 1 || !st.GetRestartAt().AsTime().Equal(t0.Add(10*time.Second)) {
		t.Fatalf("status %v, want RESTARTING, 1 restart, due at t0+10s", st)
	}
	if a := h.assignment("job"); a != nil {
		t.Fatalf("the failed attempt is still assigned: %v", a)
	}

	// A new leader takes over during the delay and keeps it.
	h.sched.Close()
	h.startScheduler()
	h.advanceToRestart(10*time.Second - time.Millisecond)
	h.probe(1)
	if a := h.assignment("job"); a != nil {
		t.Fatalf("placed %v before the restart delay was over", a)
	}

	h.clock.Advance(time.Millisecond)
	h.waitPlaced("job", 2)
	h.report("job", 2, "")
	j = h.job("job", inState(sabotv1.JobState_JOB_STATE_RUNNING, 2))
	wantMessage(t, j, "")
	if j.GetStatus().GetRestarts() != 1 {
		t.Fatalf("restarts %d after one restart", j.GetStatus().GetRestarts())
	}
}

// TestRestartsExhausted: once a fixed-delay strategy's attempts are used,
// the next failure fails the job, naming the strategy, and removes the
// assignment.
func TestRestartsExhausted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deploy("job", nil, fixedDelay(2, time.Second))

	for attempt := int64(1); attempt <= 2; attempt++ {
		j := h.runAndFail("job", attempt, fmt.Sprintf("boom %d", attempt))
		wantMessage(t, j, fmt.Sprintf("task failed: boom %d; restarting from scratch in 1s (restart %d of 2)", attempt, attempt))
		h.advanceToRestart(time.Second)
	}
	j := h.runAndFail("job", 3, "boom 3")
	if j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("job is %s after its restarts were used", j.GetStatus().GetState())
	}
	wantMessage(t, j, "task failed: boom 3; fixed_delay restart strategy exhausted: all 2 restarts used")
	if a := h.assignment("job"); a != nil {
		t.Fatalf("a failed job is still assigned: %v", a)
	}
}

// TestFailureRateWindow: failures count against the rate only while they
// are within the interval.
func TestFailureRateWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deploy("job", &sabotv1.Checkpointing{IntervalMs: 1000}, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FailureRate{
		FailureRate: &sabotv1.FailureRateRestart{MaxFailures: 2, IntervalMs: 60_000, DelayMs: 1000},
	}})

	// Failures at t0, t0+10s, t0+65s and t0+66s.
	j := h.runAndFail("job", 1, "a")
	wantMessage(t, j, "task failed: a; restarting in 1s (failure 1 of at most 2 within 1m0s)")
	h.advanceToRestart(time.Second)
	h.waitPlaced("job", 2)
	h.clock.Advance(9 * time.Second)
	j = h.runAndFail("job", 2, "b")
	wantMessage(t, j, "task failed: b; restarting in 1s (failure 2 of at most 2 within 1m0s)")
	h.advanceToRestart(time.Second)
	// The first failure leaves the window: room for one more.
	h.waitPlaced("job", 3)
	h.clock.Advance(54 * time.Second)
	j = h.runAndFail("job", 3, "c")
	wantMessage(t, j, "task failed: c; restarting in 1s (failure 2 of at most 2 within 1m0s)")
	if n := len(j.GetStatus().GetFailureTimes()); n != 2 {
		t.Fatalf("%d failure times kept, want the 2 within the interval", n)
	}
	h.advanceToRestart(time.Second)
	j = h.runAndFail("job", 4, "d")
	if j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("job is %s after 3 failures within the interval", j.GetStatus().GetState())
	}
	wantMessage(t, j, "task failed: d; failure_rate restart strategy exceeded: 3 failures within 1m0s, at most 2 allowed")
}

// TestExponentialDelay: the delay grows by the multiplier up to the
// maximum, and a job that ran reset_after without failing starts again
// from the initial delay.
func TestExponentialDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deploy("job", &sabotv1.Checkpointing{IntervalMs: 1000}, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{
		ExponentialDelay: &sabotv1.ExponentialDelayRestart{InitialDelayMs: 1000, MaxDelayMs: 5000, Multiplier: 3, ResetAfterMs: 60_000},
	}})

	attempt := int64(1)
	for i, want := range []time.Duration{time.Second, 3 * time.Second, 5 * time.Second, 5 * time.Second} {
		j := h.runAndFail("job", attempt, "boom")
		wantMessage(t, j, fmt.Sprintf("task failed: boom; restarting in %s (restart %d, unlimited)", want, i+1))
		if got := time.Duration(j.GetStatus().GetBackoffMs()) * time.Millisecond; got != want {
			t.Fatalf("backoff %s, want %s", got, want)
		}
		h.advanceToRestart(want)
		attempt++
	}
	// Stable for a minute: the backoff resets.
	h.waitPlaced("job", attempt)
	h.clock.Advance(time.Minute)
	j := h.runAndFail("job", attempt, "boom")
	wantMessage(t, j, "task failed: boom; restarting in 1s (restart 1, unlimited)")
}

// TestDefaultStrategies: without restart_strategy, a job with
// checkpointing restarts after 1 s; a job without fails on a task failure
// but is restarted at once, from scratch, when its worker is lost.
func TestDefaultStrategies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.deploy("plain", nil, nil)
	h.deploy("ckpt", &sabotv1.Checkpointing{IntervalMs: 1000}, nil)

	j := h.runAndFail("plain", 1, "boom")
	if j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("plain job is %s after a task failure", j.GetStatus().GetState())
	}
	if msg := j.GetStatus().GetMessage(); !strings.HasPrefix(msg, "task failed: boom; not restarting") {
		t.Fatalf("message %q", msg)
	}
	j = h.runAndFail("ckpt", 1, "boom")
	wantMessage(t, j, "task failed: boom; restarting in 1s (restart 1, unlimited)")

	// Lost workers: w1 goes, w2 comes.
	h.deploy("lost", nil, nil)
	h.waitPlaced("lost", 1)
	h.put(cluster.WorkerKey("w2"), &clusterv1.Worker{Id: "w2", Slots: 4})
	if _, err := h.cli.Delete(context.Background(), cluster.WorkerKey("w1")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		_, err := cluster.Get(context.Background(), h.cli, cluster.AssignmentKey("w2", "lost"), cluster.NewAssignment)
		return err
	})
	j = h.job("lost", func(j *sabotv1.Job) error {
		if j.GetStatus().GetAttempt() != 2 {
			return fmt.Errorf("attempt %d", j.GetStatus().GetAttempt())
		}
		return nil
	})
	if j.GetStatus().GetRestarts() != 0 {
		t.Fatalf("a lost worker of a job without checkpointing counted as a restart: %v", j.GetStatus())
	}
}

// TestUnrecoverableFailsWhateverTheStrategy: a report marked unrecoverable
// (a Kafka transaction the broker aborted: data loss) fails the job at
// once, under every restart strategy, with a message naming the error and
// saying why it is not restarted; its assignment goes. The same error
// without the mark restarts as the strategy says.
func TestUnrecoverableFailsWhateverTheStrategy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const lost = "checkpoint 3 completed, but a sink could not commit its output: kafka: DATA LOSS: transaction t-0 was aborted by the broker"
	cases := []struct {
		name string
		cp   *sabotv1.Checkpointing
		rs   *sabotv1.RestartStrategy
	}{
		{"default with checkpointing", &sabotv1.Checkpointing{IntervalMs: 1000}, nil},
		{"fixed delay unlimited", &sabotv1.Checkpointing{IntervalMs: 1000}, fixedDelay(0, 0)},
		{"exponential delay", &sabotv1.Checkpointing{IntervalMs: 1000}, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{
			ExponentialDelay: &sabotv1.ExponentialDelayRestart{}}}},
		{"failure rate", &sabotv1.Checkpointing{IntervalMs: 1000}, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FailureRate{
			FailureRate: &sabotv1.FailureRateRestart{MaxFailures: 100, IntervalMs: 60_000}}}},
	}
	for i, tc := range cases {
		// Sequential: the jobs share the harness's one worker.
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("job%d", i)
			h.deploy(id, tc.cp, tc.rs)
			h.waitPlaced(id, 1)
			h.report(id, 1, "")
			h.job(id, inState(sabotv1.JobState_JOB_STATE_RUNNING, 1))
			h.put(cluster.ReportKey(id, "w1"), &clusterv1.TaskReport{
				JobId: id, Attempt: 1, WorkerId: "w1", Error: lost, Unrecoverable: true,
				Tasks: []*sabotv1.TaskStatus{
					{VertexId: "s", Subtask: 0, WorkerId: "w1", State: sabotv1.TaskState_TASK_STATE_FINISHED},
					{VertexId: "out", Subtask: 0, WorkerId: "w1", State: sabotv1.TaskState_TASK_STATE_FAILED},
				},
			})
			j := h.job(id, inState(sabotv1.JobState_JOB_STATE_FAILED, 1))
			wantMessage(t, j, "task failed: "+lost+"; not restarting: the failure is unrecoverable (a restart cannot repair it), whatever the restart strategy")
			if j.GetStatus().GetRestarts() != 0 || j.GetStatus().GetRestartAt() != nil {
				t.Fatalf("an unrecoverable failure counted as a restart: %v", j.GetStatus())
			}
			if a := h.assignment(id); a != nil {
				t.Fatalf("a failed job is still assigned: %v", a)
			}
		})
	}

	// The same error, not marked: the strategy restarts the job.
	h.deploy("recoverable", &sabotv1.Checkpointing{IntervalMs: 1000}, fixedDelay(0, time.Second))
	j := h.runAndFail("recoverable", 1, lost)
	wantMessage(t, j, "task failed: "+lost+"; restarting in 1s (restart 1, unlimited)")
}

package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sabotdev/sabot/gateway"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// TestSavepointWaiting: how `sabot savepoint` and `sabot stop` wait and
// what they say, against a real gateway and etcd with the test playing
// the worker: it answers the pending savepoint request and moves the job
// as a worker and the scheduler would.
func TestSavepointWaiting(t *testing.T) {
	t.Parallel()
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

	const loc = "savepoints/sp/_metadata"
	completed := func(sp *sabotv1.SavepointRequest) {
		sp.Status, sp.Location = sabotv1.SavepointStatus_SAVEPOINT_STATUS_COMPLETED, loc
	}
	cases := []struct {
		name string
		args []string
		// answer sets the request's outcome; nil leaves it pending.
		answer func(*sabotv1.SavepointRequest)
		// then is the job's state after the answer; 0 leaves it RUNNING.
		then sabotv1.JobState
		// stdout is the expected output; want, text of the error.
		stdout string
		want   []string
	}{
		{name: "savepoint completes", args: []string{"savepoint"}, answer: completed, stdout: loc + "\n"},
		{
			name: "savepoint fails", args: []string{"savepoint"},
			answer: func(sp *sabotv1.SavepointRequest) {
				sp.Status, sp.FailureReason = sabotv1.SavepointStatus_SAVEPOINT_STATUS_FAILED, "savepoint x failed: out[0]:\n  disk full"
			},
			want: []string{"sabot: savepoint of job ", " failed: savepoint x failed: out[0]: disk full"},
		},
		{
			name: "job ends first", args: []string{"savepoint"}, then: sabotv1.JobState_JOB_STATE_FAILED,
			want: []string{"ended FAILED before savepoint", "boom"},
		},
		{name: "timeout", args: []string{"savepoint", "--timeout", "300ms"}, want: []string{"gave up waiting for savepoint", "after 300ms (--timeout)"}},
		{name: "stop", args: []string{"stop", "--drain"}, answer: completed, then: sabotv1.JobState_JOB_STATE_FINISHED, stdout: loc + "\n"},
		{
			name: "stop, job canceled meanwhile", args: []string{"stop"}, answer: completed, then: sabotv1.JobState_JOB_STATE_CANCELED,
			want: []string{"stop: savepoint " + loc + " completed, but job", "ended CANCELED: boom"},
		},
		{
			name: "stop fails", args: []string{"stop"},
			answer: func(sp *sabotv1.SavepointRequest) {
				sp.Status, sp.FailureReason = sabotv1.SavepointStatus_SAVEPOINT_STATUS_FAILED, "expired"
			},
			want: []string{"sabot: stop: savepoint of job ", " failed: expired (the job was not stopped)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := cluster.NewJobID(time.Now())
			putJob(t, etcd.Client, &sabotv1.Job{Id: id, CreatedAt: timestamppb.Now(),
				Spec:   &sabotv1.JobSpec{Name: "w", Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000}},
				Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_RUNNING, Attempt: 1}})
			done := make(chan error, 1)
			go func() { done <- playWorker(t.Context(), etcd.Client, id, tc.answer, tc.then) }() // joined below
			stdout, errLine := sabot(t, gw.Addr(), append(tc.args, id)...)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 {
				if errLine != "" || stdout != tc.stdout {
					t.Fatalf("got %q (error %q), want %q", stdout, errLine, tc.stdout)
				}
				return
			}
			t.Logf("error: %s", errLine)
			if strings.Contains(errLine, "\n") {
				t.Errorf("error is not one line: %q", errLine)
			}
			for _, w := range tc.want {
				if !strings.Contains(errLine, w) {
					t.Errorf("error %q does not mention %q", errLine, w)
				}
			}
		})
	}
}

func putJob(t *testing.T, kv clientv3.KV, job *sabotv1.Job) {
	t.Helper()
	if _, err := kv.Put(t.Context(), cluster.JobKey(job.GetId()), cluster.Marshal(job)); err != nil {
		t.Fatal(err)
	}
}

// playWorker waits for the job's pending savepoint request, records
// answer's outcome of it (nil: none), then moves the job to then (0:
// stays), with "boom" as its message.
func playWorker(ctx context.Context, kv clientv3.KV, jobID string, answer func(*sabotv1.SavepointRequest), then sabotv1.JobState) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var sp *sabotv1.SavepointRequest
	var key string
	for sp == nil {
		resp, err := kv.Get(ctx, cluster.JobSavepointsPrefix(jobID), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			sp, key = cluster.NewSavepointRequest(), string(kv.Key)
			if err := proto.Unmarshal(kv.Value, sp); err != nil {
				return err
			}
		}
		if sp == nil {
			select {
			case <-ctx.Done():
				return errors.New("no savepoint request appeared")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if answer != nil {
		answer(sp)
		if _, err := kv.Put(ctx, key, cluster.Marshal(sp)); err != nil {
			return err
		}
	}
	if then == sabotv1.JobState_JOB_STATE_UNSPECIFIED {
		return nil
	}
	_, err := cluster.UpdateJob(ctx, kv, jobID, func(j *sabotv1.Job) (bool, error) {
		j.Status.State, j.Status.Message = then, "boom"
		return true, nil
	}, nil, nil)
	return err
}

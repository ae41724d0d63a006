package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
	sdk "github.com/sabotdev/sabot/sdk/go"
)

// failingPipeline feeds the counter from Kafka "in"; with on_failure
// dead_letter the failed messages go to Kafka "dlq".
const failingPipeline = `
name: failing-fn
parallelism: 1
steps:
  - id: in
    kafka_source:
      brokers: [%[1]s]
      topics: [in]
      columns: {key: string, panic: bool, bad_output: bool, sleep_ms: int64}
  - id: count
    key_by: [key]
    function:
      name: counter
      outputs:
        counts: {key: string, count: int64}
      on_failure: %[2]s
      max_attempts: 2
  - id: out
    inputs: [count.counts]
    kafka_sink: {brokers: [%[1]s], topic: out, key_fields: [key]}
`

const deadLetterSink = `
  - id: dlq
    inputs: [count.dead_letter]
    kafka_sink: {brokers: [%[1]s], topic: dlq, key_fields: [key]}
`

// TestFunctionBadBehaviour deploys the counter with a 1 s call deadline
// and feeds it messages that make it panic, send a malformed output
// (not JSON for a JSON output) and sleep past the deadline, among good
// ones. With on_failure dead_letter each bad message lands in the
// dead-letter topic with an error naming what went wrong, the good ones
// are counted, and the job keeps running; an Invoke that panics gets the
// panic as its error while the worker goes on serving; with on_failure
// fail the job fails with the panic in its status.
func TestFunctionBadBehaviour(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1, Slots: 4})
	kafka := testkit.StartKafka(t, testkit.WithTopics(1, "in", "out", "dlq"))
	ctx := context.Background()
	c := sdk.NewClient(p.URL())
	defer c.Close()
	if _, err := c.Deploy(ctx, counterDir, sdk.DeployLimits(&sabotv1.FunctionLimits{CallTimeoutMs: 1000}), sdk.DeployNoJob()); err != nil {
		t.Fatal(err)
	}
	brokers, _ := json.Marshal(kafka.Addrs)
	b := string(brokers[1 : len(brokers)-1])
	spec, err := manifest.Parse("failing.yaml", fmt.Appendf(nil, failingPipeline+deadLetterSink, b, "dead_letter"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.DeployJob(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.Jobs, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING, 1)

	prod := kafka.Client(t, kgo.DefaultProduceTopic("in"))
	inputs := []string{
		`{"key":"a"}`, `{"key":"b","panic":true}`, `{"key":"a"}`, `{"key":"c","bad_output":true}`,
		`{"key":"d","sleep_ms":3000}`, `{"key":"a"}`,
	}
	for _, in := range inputs {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(in)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dead := readTopic(t, kafka, "dlq", 3, 60*time.Second)
	want := map[string]string{"b": "panic: counter: asked to panic", "c": "malformed result: message to output \"counts\"", "d": "call deadline exceeded"}
	for _, rec := range dead {
		var row struct{ Function, Key, Payload, Error string }
		if err := json.Unmarshal(rec, &row); err != nil {
			t.Fatalf("dead letter %s: %v", rec, err)
		}
		if w, ok := want[row.Key]; !ok || !strings.Contains(row.Error, w) || row.Function != "counter" || !strings.Contains(row.Payload, `"key":"`+row.Key+`"`) {
			t.Errorf("dead letter %s: want key in %v with error containing %q", rec, want, w)
		}
		t.Logf("dead letter: key %s: %.160s", row.Key, row.Error)
		delete(want, row.Key)
	}
	if len(want) > 0 {
		t.Errorf("no dead letter for %v", want)
	}
	counts := readTopic(t, kafka, "out", 3, 30*time.Second)
	if got := string(counts[len(counts)-1]); !strings.Contains(got, `"count":3`) {
		t.Errorf("good messages: last count %s, want key a counted 3 times", got)
	}
	j := waitFor(t, p.Jobs, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING, 1)
	if j.GetStatus().GetAttempt() != 1 {
		t.Errorf("the job restarted (attempt %d) although bad messages were dead-lettered", j.GetStatus().GetAttempt())
	}

	// An invocation that panics: a clear error for the caller; the worker
	// serves the next one.
	_, err = c.Invoke(ctx, "counter", "e", []byte(`{"panic":true}`), sdk.WithJob(job.GetId()))
	var ce *connect.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "asked to panic") {
		t.Fatalf("invoke that panics: %v, want the panic in a connect error", err)
	}
	t.Logf("invoke that panics: %s: %.160s", ce.Code(), ce.Message())
	if reply, err := c.Invoke(ctx, "counter", "a", []byte(`{"op":"get"}`), sdk.WithJob(job.GetId())); err != nil || !strings.Contains(string(reply), `"count":3`) {
		t.Fatalf("invoke after the panic: %s, %v", reply, err)
	}
	if _, err := p.Jobs.CancelJob(ctx, connect.NewRequest(&sabotv1.CancelJobRequest{JobId: job.GetId()})); err != nil {
		t.Fatal(err)
	}

	// Policy fail: the job fails with the panic in its status.
	spec, err = manifest.Parse("failing.yaml", fmt.Appendf(nil, failingPipeline, b, "fail"))
	if err != nil {
		t.Fatal(err)
	}
	spec.RestartStrategy = &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}}
	job, err = c.DeployJob(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	failed := waitFor(t, p.Jobs, job.GetId(), sabotv1.JobState_JOB_STATE_FAILED, 1)
	if msg := failed.GetStatus().GetMessage(); !strings.Contains(msg, "asked to panic") || !strings.Contains(msg, "after 2 attempts") {
		t.Errorf("failed job's status: %q, want the panic and the attempts", msg)
	} else {
		t.Logf("job status with on_failure fail: %.200s", msg)
	}
}

// readTopic reads at least n record values of topic from the start.
func readTopic(t *testing.T, kafka *testkit.Kafka, topic string, n int, wait time.Duration) [][]byte {
	t.Helper()
	cons := kafka.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out [][]byte
	deadline := time.Now().Add(wait)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: %d records after %s, want %d", topic, len(out), wait, n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
		cancel()
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
	sdk "github.com/sabotdev/sabot/sdk/go"
)

// counterDir is the test function: a running count per key (see
// internal/testfn/counter).
const counterDir = "../../internal/testfn/counter"

// counterPipeline is Kafka "in" → counter → exactly-once Kafka "out": the
// function sends {key, count} to its output "counts" for every message,
// streamed or invoked.
const counterPipeline = `
name: count-fn
parallelism: 2
checkpointing: {interval_ms: 200}
steps:
  - id: in
    kafka_source:
      brokers: [%[1]s]
      topics: [in]
      columns: {key: string, seq: int64}
  - id: count
    key_by: [key]
    function:
      name: counter
      outputs:
        counts: {key: string, count: int64}
  - id: out
    inputs: [count.counts]
    kafka_sink:
      brokers: [%[1]s]
      topic: out
      key_fields: [key]
      delivery: exactly_once
      transaction_timeout_ms: 120000
`

func counterSpec(t *testing.T, kafka *testkit.Kafka) *sabotv1.JobSpec {
	t.Helper()
	brokers, _ := json.Marshal(kafka.Addrs)
	spec, err := manifest.Parse("count-fn.yaml", fmt.Appendf(nil, counterPipeline, string(brokers[1:len(brokers)-1])))
	if err != nil {
		t.Fatal(err)
	}
	spec.RestartStrategy = &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{
		FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: 100}}}
	return spec
}

type countReply struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// TestInvokeIdempotentAndOrdered runs the counter at parallelism 2 over
// the dev platform's two workers, fed by Kafka, while 8 clients invoke it
// on the same keys, each request sent twice with one idempotency key (the
// second concurrently with the first or after it). Every effect must
// happen once: the function's output (streamed and invoked messages both
// send their count) holds each count 1..n of every key exactly once, so
// invocations and streamed messages of a key were serialized; both sends
// of a request get the same reply; and the state read back equals the
// inputs.
func TestInvokeIdempotentAndOrdered(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 2, Slots: 2})
	kafka := testkit.StartKafka(t, testkit.WithTopics(4, "in", "out"))
	ctx := context.Background()
	c := sdk.NewClient(p.URL())
	defer c.Close()
	if _, err := c.Deploy(ctx, counterDir, sdk.DeployNoJob()); err != nil {
		t.Fatal(err)
	}
	job, err := c.DeployJob(ctx, counterSpec(t, kafka))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.Jobs, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING, 1)

	const keys, clients, perClient = 20, 8, 15
	prod := startProducer(t, kafka, keys)
	var (
		mu      sync.Mutex
		invoked = map[string]int64{}
		replies = map[string][]int64{}
		wg      sync.WaitGroup
	)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range perClient {
				key := fmt.Sprintf("k%d", rng.IntN(keys))
				idem := fmt.Sprintf("c%d-%d", g, i)
				send := func() (*sdk.InvokeReply, error) {
					cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
					defer cancel()
					return c.InvokeResult(cctx, "counter", key, []byte(`{"op":"add"}`), sdk.WithJob(job.GetId()), sdk.WithIdempotencyKey(idem))
				}
				var first, second *sdk.InvokeReply
				var err1, err2 error
				if i%2 == 0 { // concurrently
					var w sync.WaitGroup
					w.Go(func() { first, err1 = send() })
					second, err2 = send()
					w.Wait()
				} else { // a retry after the reply
					first, err1 = send()
					second, err2 = send()
				}
				if err1 != nil || err2 != nil {
					t.Errorf("invoke %s %s: %v / %v", key, idem, err1, err2)
					return
				}
				if string(first.Payload) != string(second.Payload) {
					t.Errorf("invoke %s %s: replies differ: %s and %s", key, idem, first.Payload, second.Payload)
				}
				if !first.Committed || !second.Committed {
					t.Errorf("invoke %s %s: a reply before its effect was checkpointed (committed %t, %t)", key, idem, first.Committed, second.Committed)
				}
				if !first.Replayed && !second.Replayed {
					t.Errorf("invoke %s %s: neither reply was replayed: the effect ran twice", key, idem)
				}
				var r countReply
				if err := json.Unmarshal(first.Payload, &r); err != nil || r.Key != key {
					t.Errorf("invoke %s %s: reply %s (%v)", key, idem, first.Payload, err)
				}
				mu.Lock()
				invoked[key]++
				replies[key] = append(replies[key], r.Count)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	produced := prod.stop()
	for k, n := range invoked {
		produced[k] += n
	}
	for k, rs := range replies {
		seen := map[int64]bool{}
		for _, r := range rs {
			if seen[r] {
				t.Errorf("key %s: two invocations replied count %d", k, r)
			}
			seen[r] = true
		}
	}
	checkCountOutput(t, kafka, produced, true, fmt.Sprintf("%d invocations (each sent twice) by %d clients", clients*perClient, clients))
	checkCounterState(t, c, job.GetId(), produced)
	if _, err := p.Jobs.CancelJob(ctx, connect.NewRequest(&sabotv1.CancelJobRequest{JobId: job.GetId()})); err != nil {
		t.Fatal(err)
	}
}

// checkCounterState reads every key's count through Invoke and compares it
// with the ground truth.
func checkCounterState(t *testing.T, c *sdk.Client, jobID string, want map[string]int64) {
	t.Helper()
	for k, n := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		reply, err := c.Invoke(ctx, "counter", k, []byte(`{"op":"get"}`), sdk.WithJob(jobID))
		cancel()
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		var r countReply
		if err := json.Unmarshal(reply, &r); err != nil {
			t.Fatalf("get %s: %s: %v", k, reply, err)
		}
		if r.Count != n {
			t.Errorf("key %s: state holds count %d, ground truth %d", k, r.Count, n)
		}
	}
	t.Logf("state of %d keys equals the ground truth", len(want))
}

// TestRedeployKeepsState deploys the counter (it gets its own job, fed by
// Invoke), counts through it, deploys it again (a new version of the
// registration), and checks that the job moved to the new version through
// a savepoint and kept every count.
func TestRedeployKeepsState(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1, Slots: 2})
	ctx := context.Background()
	c := sdk.NewClient(p.URL())
	defer c.Close()
	if _, err := c.Deploy(ctx, counterDir); err != nil {
		t.Fatal(err)
	}
	var jobID string
	testkit.Eventually(t, 30*time.Second, func() error {
		jobs, err := c.ListJobs(ctx)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.GetSpec().GetName() == "counter" && j.GetStatus().GetState() == sabotv1.JobState_JOB_STATE_RUNNING {
				jobID = j.GetId()
				return nil
			}
		}
		return fmt.Errorf("the function's own job is not running yet (%d jobs)", len(jobs))
	})
	for i := range 3 {
		if _, err := c.Invoke(ctx, "counter", "alice", []byte(`{}`), sdk.WithIdempotencyKey(fmt.Sprint("add-", i))); err != nil {
			t.Fatal(err)
		}
	}
	f, err := c.Deploy(ctx, counterDir)
	if err != nil {
		t.Fatal(err)
	}
	if f.GetVersion() != 2 {
		t.Fatalf("redeploy: version %d, want 2", f.GetVersion())
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		j, err := c.GetJob(ctx, jobID)
		if err != nil {
			return err
		}
		step := j.GetSpec().GetGraph().GetVertices()[1].GetOperator().GetFunction()
		if v := step.GetFunction().GetVersion(); v != 2 || j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
			return fmt.Errorf("job runs version %d, %s (%s)", v, j.GetStatus().GetState(), j.GetStatus().GetMessage())
		}
		if j.GetStatus().GetLastRescale() == nil {
			return fmt.Errorf("no savepoint cycle recorded")
		}
		return nil
	})
	reply, err := c.Invoke(ctx, "counter", "alice", []byte(`{"op":"get"}`))
	if err != nil {
		t.Fatal(err)
	}
	var r countReply
	if err := json.Unmarshal(reply, &r); err != nil || r.Count != 3 {
		t.Fatalf("after the redeploy: %s (%v), want count 3", reply, err)
	}
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/testkit"
)

// dataLossJob counts per key into an exactly-once Kafka sink, restarting
// without limit after 100 ms.
const dataLossJob = `
name: data-loss
parallelism: 2
checkpointing:
  interval_ms: 200
restart_strategy:
  fixed_delay: {delay_ms: 100}
steps:
  - id: in
    kafka_source:
      brokers: [%[1]s]
      topics: [in]
      columns: {key: string, seq: int64}
  - id: count
    key_by: [key]
    process:
      name: count-per-key
      output: {key: string, count: int64}
  - id: out
    kafka_sink:
      brokers: [%[1]s]
      topic: out
      key_fields: [key]
      delivery: exactly_once
`

// TestLostTransactionFailsJob: the broker answers the commit of a
// completed checkpoint's transaction PRODUCER_FENCED, as when it aborted
// the transaction (its timeout elapsed): those rows are lost. The job
// fails at once, with a message naming the data loss, although its
// restart strategy would restart it without limit: a restart cannot bring
// the rows back and would only hide the loss.
func TestLostTransactionFailsJob(t *testing.T) {
	t.Parallel()
	kafka := testkit.StartKafka(t, testkit.WithBrokers(1), testkit.WithTopics(2, "in", "out"))
	var injected atomic.Int32
	kafka.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !req.(*kmsg.EndTxnRequest).Commit {
			return nil, nil, false // aborts go through
		}
		injected.Add(1)
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.ProducerFenced.Code
		return resp, nil, true // one commit only: handling drops the hook
	})
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})

	stdout, errLine := sabot(t, p.Addr(), "deploy", "-f", writeFile(t, "data-loss.yaml", fmt.Sprintf(dataLossJob, strings.Join(kafka.Addrs, ", "))))
	if errLine != "" {
		t.Fatalf("deploy: %s", errLine)
	}
	id := jobIDLine.FindStringSubmatch(stdout)[1]
	producer := kafka.Client(t, kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	recs := make([]*kgo.Record, 0, 100)
	for i := range 100 {
		k := "k" + strconv.Itoa(i%10)
		recs = append(recs, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, k, i/10+1)})
	}
	if err := producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var job *sabotv1.Job
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := p.Jobs.GetJob(context.Background(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
		if err != nil {
			return err
		}
		job = resp.Msg.GetJob()
		if s := job.GetStatus().GetState(); s != sabotv1.JobState_JOB_STATE_FAILED {
			return fmt.Errorf("job is %s (%q)", s, job.GetStatus().GetMessage())
		}
		return nil
	})
	st := job.GetStatus()
	t.Logf("job failed: %s", st.GetMessage())
	if injected.Load() != 1 {
		t.Errorf("%d commits answered PRODUCER_FENCED, want 1", injected.Load())
	}
	for _, want := range []string{"DATA LOSS", "not restarting: the failure is unrecoverable"} {
		if !strings.Contains(st.GetMessage(), want) {
			t.Errorf("message %q does not say %q", st.GetMessage(), want)
		}
	}
	if st.GetAttempt() != 1 || st.GetRestarts() != 0 {
		t.Errorf("attempt %d after %d restarts; want the first attempt, never restarted", st.GetAttempt(), st.GetRestarts())
	}
	// The CLI shows it too.
	if stdout, errLine := sabot(t, p.Addr(), "jobs", "get", id); errLine != "" || !strings.Contains(stdout, "DATA LOSS") {
		t.Errorf("jobs get: %s\n%s", errLine, stdout)
	}
}

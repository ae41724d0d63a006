package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
)

// createTopic creates a topic with n partitions on the platform's broker.
func createTopic(t *testing.T, cl *kgo.Client, name string, n int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, n, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range resp.Topics {
		if tr.ErrorCode != 0 {
			t.Fatalf("create topic %s: error code %d", tr.Topic, tr.ErrorCode)
		}
	}
}

// alert is a row of the example's output topic.
type alert struct {
	Key     string `json:"key"`
	Count   int64  `json:"count"`
	FiredAt string `json:"fired_at"`
}

// TestKafkaProcessFunctionInDev runs examples/kafka-alerts.yaml in the
// platform against its local broker (kfake): Kafka → keyed process
// function with event-time timers → Kafka. The input has out-of-order
// timestamps on two partitions and an idle third partition; the output must
// be exactly the alerts an independent computation expects.
//
// event-time-alert counts each user's records per 10 s event-time bucket and
// emits (user, count, bucket end) when the watermark passes the bucket's
// end. The input comes in bursts per user, 2 s wide, 60 s apart and
// shuffled within a burst (out of order, within the 5 s bound), so every
// burst is one bucket and none of its records is late: the watermark (min
// over the active partitions of max event time - 5 s - 1 ms) passes a
// bucket's end only after both partitions read into the next burst.
func TestKafkaProcessFunctionInDev(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{KafkaAddr: testkit.FreeAddr(t)})
	brokers := p.KafkaAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	createTopic(t, cl, "orders", 3)
	createTopic(t, cl, "alerts", 1)

	// The example, pointed at this broker, with a shorter idle timeout so
	// the empty partition is set aside quickly.
	const idleTimeout = 3 * time.Second
	data, err := examples.FS.ReadFile("kafka-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := manifest.Parse("kafka-alerts.yaml", regexp.MustCompile(`127\.0\.0\.1:9092`).ReplaceAll(data, []byte(brokers[0])))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range spec.GetGraph().GetVertices() {
		if ks := v.GetOperator().GetKafkaSource(); ks != nil {
			v.Parallelism = 1 // one subtask reads all three partitions
			ks.EventTime.Watermark.IdleTimeoutMs = idleTimeout.Milliseconds()
		}
	}

	// Bursts: users u0..u3, three bursts each at base + 60 s·b, events
	// shuffled within 2 s, spread over partitions 0 and 1.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // test data, seeded for replay
	type event struct {
		user string
		ts   time.Time
		part int32
	}
	var byPart [2][]event
	var want []alert
	const bursts = 3
	for b := range bursts {
		start := base.Add(time.Duration(b) * 60 * time.Second)
		for u := range 4 {
			user := fmt.Sprintf("u%d", u)
			n := 2 + rng.IntN(5)
			for range n {
				ts := start.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				part := rng.Int32N(2)
				byPart[part] = append(byPart[part], event{user, ts, part})
			}
			// The burst lies in the 10 s bucket [start, start+10 s).
			want = append(want, alert{Key: user, Count: int64(n), FiredAt: start.Add(10 * time.Second).Format(time.RFC3339Nano)})
		}
	}
	// A final tick on both partitions, far ahead, moves the watermark past
	// the last burst's timers. Its own timer never fires (the job runs on).
	tick := base.Add(time.Hour)
	for part := range int32(2) {
		byPart[part] = append(byPart[part], event{"tick", tick, part})
	}
	// Within a partition the order is the bursts' order, shuffled inside
	// each burst (out of order by up to 2 s).
	for part := range 2 {
		slices.SortStableFunc(byPart[part], func(a, b event) int {
			return int(a.ts.Sub(base)/(60*time.Second)) - int(b.ts.Sub(base)/(60*time.Second))
		})
	}

	resp, err := p.Jobs.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		t.Fatal(err)
	}
	job := resp.Msg.GetJob()
	waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	// Every partition starts active with no watermark, holding the output
	// back (as in Flink) until it has events or has been quiet for
	// idleTimeout. Producing a while after the start, but well within the
	// timeout, makes partitions 0 and 1 active before anything can be idle,
	// and leaves partition 2 to go idle first — while the others are still
	// active — so its idleness is what releases the watermark. This wait is
	// set-up, not an assertion.
	time.Sleep(idleTimeout / 3)

	var records []*kgo.Record
	for part := range 2 {
		for _, e := range byPart[part] {
			v, _ := json.Marshal(map[string]any{"user": e.user, "amount": 1.5, "ts": e.ts.Format(time.RFC3339Nano)})
			records = append(records, &kgo.Record{Topic: "orders", Partition: e.part, Value: v})
		}
	}
	// One malformed record: the example skips bad records and goes on.
	records = append(records, &kgo.Record{Topic: "orders", Partition: 0, Value: []byte(`{"user": "broken"`)})
	if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("alerts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []alert
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fetches := consumer.PollFetches(ctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			var a alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Errorf("alert %q: %v", r.Value, err)
				return
			}
			if ts, err := time.Parse(time.RFC3339Nano, a.FiredAt); err == nil {
				a.FiredAt = ts.UTC().Format(time.RFC3339Nano)
			}
			got = append(got, a)
		})
	}
	// Nothing more may arrive: give a straggler a moment to show up.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { t.Errorf("unexpected extra alert %s", r.Value) })
	cancel()

	order := func(a, b alert) int {
		if c := cmpString(a.FiredAt, b.FiredAt); c != 0 {
			return c
		}
		return cmpString(a.Key, b.Key)
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Fatalf("alerts differ:\n got %v\nwant %v", got, want)
	}
	if j, err := getJob(context.Background(), p, job.GetId()); err != nil || j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("job after the malformed record: %v %v", j.GetStatus(), err)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

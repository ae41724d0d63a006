package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
)

// order is one input record of the windows test.
type order struct {
	user   string
	amount float64
	ts     time.Time
	part   int32
}

// windowConsumer reads topics from the start, one JSON object per record,
// normalised to a canonical line.
type windowConsumer struct {
	cl   *kgo.Client
	rows map[string][]string
}

func newWindowConsumer(t *testing.T, brokers []string, topics ...string) *windowConsumer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &windowConsumer{cl: cl, rows: map[string][]string{}}
}

// poll reads what is there within d.
func (c *windowConsumer) poll(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Errorf("%s record %q: %v", r.Topic, r.Value, err)
			return
		}
		c.rows[r.Topic] = append(c.rows[r.Topic], canonicalRow(m))
	})
}

// waitFor polls until topic has at least n rows, or fails after a minute.
func (c *windowConsumer) waitFor(t *testing.T, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(c.rows[topic]) < n && time.Now().Before(deadline) {
		c.poll(t, 2*time.Second)
	}
	if len(c.rows[topic]) < n {
		t.Fatalf("%s: %d rows after a minute, want %d:\n%s", topic, len(c.rows[topic]), n, strings.Join(c.rows[topic], "\n"))
	}
}

// canonicalRow renders a JSON object with sorted keys and timestamps in
// UTC.
func canonicalRow(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		v := m[k]
		if s, ok := v.(string); ok {
			if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
				v = ts.UTC().Format(time.RFC3339Nano)
			}
		}
		fmt.Fprintf(&b, "%s=%v ", k, v)
	}
	return strings.TrimSpace(b.String())
}

// TestKafkaWindowsInDev runs examples/kafka-windows.yaml in the platform
// against its local broker (kfake): Kafka → 10 s tumbling totals and 5 s
// gap sessions per user, with late rows on a side output → three Kafka
// topics. Orders come in bursts per user (2 s wide, 60 s apart, shuffled
// within the burst: out of order inside the 5 s bound) on partitions 0 and
// 1, while partition 2 stays idle; each user writes to one partition so
// its arrival order (first/last) is defined. Once the first bursts' windows
// are out, orders for windows that already fired are produced: they must
// appear on late-orders (the tumbling window's late output) and in no
// window. The outputs must be exactly what a direct computation expects.
func TestKafkaWindowsInDev(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{KafkaAddr: testkit.FreeAddr(t)})
	brokers := p.KafkaAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	createTopic(t, cl, "orders", 3)
	for _, topic := range []string{"window-totals", "sessions", "late-orders"} {
		createTopic(t, cl, topic, 1)
	}

	const idleTimeout = 3 * time.Second
	data, err := examples.FS.ReadFile("kafka-windows.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := manifest.Parse("kafka-windows.yaml", regexp.MustCompile(`127\.0\.0\.1:9092`).ReplaceAll(data, []byte(brokers[0])))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range spec.GetGraph().GetVertices() {
		if ks := v.GetOperator().GetKafkaSource(); ks != nil {
			v.Parallelism = 1 // one subtask reads all three partitions
			ks.EventTime.Watermark.IdleTimeoutMs = idleTimeout.Milliseconds()
		}
	}

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4)) //nolint:gosec // test data, seeded for replay
	users := []string{"u0", "u1", "u2", "u3"}
	partOf := func(u string) int32 { return int32(slices.Index(users, u) % 2) }
	// bursts returns, per partition, the orders of bursts at the given
	// minutes: per user 2..6 orders within 2 s of the minute, shuffled.
	bursts := func(minutes ...int) [2][]order {
		var byPart [2][]order
		for _, m := range minutes {
			start := base.Add(time.Duration(m) * time.Minute)
			for _, u := range users {
				var burst []order
				for range 2 + rng.IntN(5) {
					burst = append(burst, order{user: u, amount: float64(1+rng.IntN(40)) / 2,
						ts: start.Add(time.Duration(rng.IntN(2000)) * time.Millisecond), part: partOf(u)})
				}
				byPart[partOf(u)] = append(byPart[partOf(u)], burst...)
			}
		}
		return byPart
	}
	// tick returns one order per partition at minute m: it moves both
	// partitions' watermarks to m - 5 s.
	tick := func(m int) [2][]order {
		ts := base.Add(time.Duration(m) * time.Minute)
		return [2][]order{{{user: "tick", amount: 1, ts: ts, part: 0}}, {{user: "tick", amount: 1, ts: ts, part: 1}}}
	}
	var all []order // in production order
	produce := func(batches ...[2][]order) {
		t.Helper()
		var records []*kgo.Record
		for _, b := range batches {
			for part := range 2 {
				for _, o := range b[part] {
					v, _ := json.Marshal(map[string]any{"user": o.user, "amount": o.amount, "ts": o.ts.Format(time.RFC3339Nano)})
					records = append(records, &kgo.Record{Topic: "orders", Partition: o.part, Value: v})
					all = append(all, o)
				}
			}
		}
		if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := p.Jobs.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		t.Fatal(err)
	}
	job := resp.Msg.GetJob()
	waitState(t, p, job.GetId(), sabotv1.JobState_JOB_STATE_RUNNING)
	// Set-up, not an assertion: partitions 0 and 1 become active before
	// partition 2 can time out (see TestKafkaProcessFunctionInDev).
	time.Sleep(idleTimeout / 3)

	// Phase 1: bursts at minutes 0, 1, 2 and a tick at minute 3; every
	// burst's windows fire.
	produce(bursts(0, 1, 2), tick(3))
	consumer := newWindowConsumer(t, brokers, "window-totals", "sessions", "late-orders")
	consumer.waitFor(t, "window-totals", 12)
	consumer.waitFor(t, "sessions", 12)

	// Phase 2: late orders (their windows fired: the watermark is at
	// minute 3 - 5 s), new bursts at minute 4, a final tick at minute 10.
	late := [2][]order{
		{{user: "u0", amount: 7, ts: base.Add(5 * time.Second), part: 0}},
		{{user: "u1", amount: 9, ts: base.Add(61 * time.Second), part: 1}},
	}
	produce(late, bursts(4), tick(10))
	lateSet := map[order]bool{late[0][0]: true, late[1][0]: true}

	// The expected outputs, computed directly. Windows that fire: every
	// tumbling window and session ending at or before minute 10 - 5 s.
	fires := base.Add(10*time.Minute - 5*time.Second)
	type acc struct {
		user        string
		n           int
		total, big  float64
		first, last float64
		start, end  time.Time
	}
	tumbling := map[string]*acc{}
	byUser := map[string][]order{}
	var wantLate []string
	for _, o := range all {
		if lateSet[o] {
			wantLate = append(wantLate, fmt.Sprintf("amount=%v ts=%s user=%s", o.amount, o.ts.UTC().Format(time.RFC3339Nano), o.user))
			continue
		}
		ws := o.ts.Truncate(10 * time.Second)
		if !ws.Add(10 * time.Second).Before(fires.Add(time.Millisecond)) {
			continue
		}
		id := o.user + ws.String()
		a := tumbling[id]
		if a == nil {
			a = &acc{user: o.user, start: ws, end: ws.Add(10 * time.Second)}
			tumbling[id] = a
		}
		a.n++
		a.total += o.amount
		a.big = max(a.big, o.amount)
		byUser[o.user] = append(byUser[o.user], o)
	}
	var wantTotals []string
	for _, a := range tumbling {
		wantTotals = append(wantTotals, fmt.Sprintf("biggest=%v orders=%d total=%v user=%s window_end=%s window_start=%s",
			a.big, a.n, a.total, a.user, a.end.Format(time.RFC3339Nano), a.start.Format(time.RFC3339Nano)))
	}
	var wantSessions []string
	for u, os := range byUser {
		// Sessions: sort by time, merge [t, t+5 s) windows that touch;
		// first/last by arrival (production order within the partition).
		sorted := slices.Clone(os)
		slices.SortStableFunc(sorted, func(a, b order) int { return a.ts.Compare(b.ts) })
		var cur *acc
		var members []order
		emit := func() {
			if !cur.end.Before(fires.Add(time.Millisecond)) {
				return
			}
			for _, o := range os { // arrival order
				if slices.Contains(members, o) {
					if cur.n == 0 {
						cur.first = o.amount
					}
					cur.n++
					cur.last = o.amount
				}
			}
			wantSessions = append(wantSessions, fmt.Sprintf("first_amount=%v last_amount=%v orders=%d user=%s window_end=%s window_start=%s",
				cur.first, cur.last, cur.n, u, cur.end.Format(time.RFC3339Nano), cur.start.Format(time.RFC3339Nano)))
		}
		for _, o := range sorted {
			if cur != nil && !o.ts.After(cur.end) {
				if e := o.ts.Add(5 * time.Second); e.After(cur.end) {
					cur.end = e
				}
				members = append(members, o)
				continue
			}
			if cur != nil {
				emit()
			}
			cur, members = &acc{start: o.ts, end: o.ts.Add(5 * time.Second)}, []order{o}
		}
		if cur != nil {
			emit()
		}
	}

	consumer.waitFor(t, "window-totals", len(wantTotals))
	consumer.waitFor(t, "sessions", len(wantSessions))
	consumer.waitFor(t, "late-orders", len(wantLate))
	consumer.poll(t, 2*time.Second) // nothing more may arrive
	for topic, want := range map[string][]string{"window-totals": wantTotals, "sessions": wantSessions, "late-orders": wantLate} {
		got := slices.Clone(consumer.rows[topic])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s differs:\n got %d:\n  %s\nwant %d:\n  %s", topic, len(got), strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
		}
	}
	if j, err := getJob(context.Background(), p, job.GetId()); err != nil || j.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("job: %v %v", j.GetStatus(), err)
	}
}

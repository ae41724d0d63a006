package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sabotdev/sabot/internal/testkit"
)

// sabotKafka runs `sabot kafka ARGS` in process with stdin and returns its
// stdout and the error the binary would print, or "".
func sabotKafka(ctx context.Context, t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"kafka"}, args...))
	if err := root.ExecuteContext(ctx); err != nil {
		return out.String(), describe(err)
	}
	return out.String(), ""
}

func kafkaTestCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// records reads every record of topic (read_uncommitted) with a client of
// its own.
func records(t *testing.T, k *testkit.Kafka, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := kafkaTestCtx(t)
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("reading %s: %v (after %d records)", topic, err, len(got))
		}
		got = append(got, fs.Records()...)
	}
	return got
}

func TestKafkaProduceConsume(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "tx"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)

	in := `{"card":"4111","amount":12.5}

{"card":"4242","amount":7}
{"card":"4111","amount":3}
{"card":"a\u00e9","amount":1}
{"card":42,"amount":1}
`
	out, errMsg := sabotKafka(ctx, t, in, "produce", "tx", "--brokers", brokers, "--key-field", "card")
	if errMsg != "" || out != "produced 5 records to tx\n" {
		t.Fatalf("produce: %q, %q; want 5 records produced", out, errMsg)
	}

	// The oracle: what a plain client reads back, keys included.
	recs := records(t, k, "tx", 5)
	var pairs []string
	for _, r := range recs {
		pairs = append(pairs, string(r.Key)+" "+string(r.Value))
	}
	slices.Sort(pairs)
	want := []string{
		`4111 {"card":"4111","amount":12.5}`,
		`4111 {"card":"4111","amount":3}`,
		`4242 {"card":"4242","amount":7}`,
		`42 {"card":42,"amount":1}`,
		`aé {"card":"a\u00e9","amount":1}`,
	}
	slices.Sort(want)
	if !slices.Equal(pairs, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(pairs, "\n"), strings.Join(want, "\n"))
	}
	// One key's records stay in order in one partition.
	var order []string
	for _, r := range recs {
		if string(r.Key) == "4111" {
			order = append(order, string(r.Value))
		}
	}
	if len(order) != 2 || !strings.Contains(order[0], "12.5") {
		t.Errorf("records of key 4111 out of order: %v", order)
	}

	out, errMsg = sabotKafka(ctx, t, "", "consume", "tx", "--brokers", brokers, "--from-start", "--max", "5", "--timeout", "30s")
	if errMsg != "" {
		t.Fatalf("consume: %s", errMsg)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(lines)
	var values []string
	for _, p := range want {
		_, v, _ := strings.Cut(p, " ")
		values = append(values, v)
	}
	slices.Sort(values)
	if !slices.Equal(lines, values) {
		t.Fatalf("consume printed:\n%s\nwant the values:\n%s", out, strings.Join(values, "\n"))
	}
}

func TestKafkaProduceBadLine(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "tx"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)
	tests := []struct {
		name, in, keyField, err string
		produced                int
	}{
		{name: "not JSON", in: "{\"a\":1}\n{\"a\":2}\nnope\n{\"a\":3}\n", produced: 2, err: "stdin line 3: not JSON"},
		{name: "no key field", in: "{\"card\":\"1\"}\n{\"amount\":2}\n", keyField: "card", produced: 1,
			err: `stdin line 2: --key-field "card": the object has no such field`},
		{name: "not an object", in: "[1,2]\n", keyField: "card", err: `stdin line 1: --key-field "card": the line is not a JSON object`},
	}
	total := 0
	for _, tt := range tests {
		args := []string{"produce", "tx", "--brokers", brokers}
		if tt.keyField != "" {
			args = append(args, "--key-field", tt.keyField)
		}
		out, errMsg := sabotKafka(ctx, t, tt.in, args...)
		if want := fmt.Sprintf("produced %d records to tx\n", tt.produced); out != want || !strings.Contains(errMsg, tt.err) {
			t.Errorf("%s: produce: %q, %q; want %q and an error with %q", tt.name, out, errMsg, want, tt.err)
		}
		total += tt.produced
	}
	// The records before each bad line were produced, and nothing after.
	recs := records(t, k, "tx", total)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	want := []string{`{"a":1}`, `{"a":2}`, `{"card":"1"}`}
	if !slices.Equal(got, want) {
		t.Errorf("topic holds %q, want %q", got, want)
	}
}

// TestKafkaConsumeReadCommitted: --read-committed skips aborted
// transactions' records, which a default (read_uncommitted) consume
// prints.
func TestKafkaConsumeReadCommitted(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "out"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)

	cl := k.Client(t, kgo.TransactionalID("test-txn"), kgo.DefaultProduceTopic("out"))
	txn := func(value string, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, kgo.StringRecord(value)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	txn("committed-1", kgo.TryCommit)
	txn("aborted", kgo.TryAbort)
	txn("committed-2", kgo.TryCommit)

	out, errMsg := sabotKafka(ctx, t, "", "consume", "out", "--brokers", brokers, "--from-start", "--read-committed", "--max", "2", "--timeout", "30s")
	if errMsg != "" || out != "committed-1\ncommitted-2\n" {
		t.Errorf("consume --read-committed: %q, %q; want the two committed records", out, errMsg)
	}
	out, errMsg = sabotKafka(ctx, t, "", "consume", "out", "--brokers", brokers, "--from-start", "--max", "3", "--timeout", "30s")
	if errMsg != "" || out != "committed-1\naborted\ncommitted-2\n" {
		t.Errorf("consume: %q, %q; want all three records", out, errMsg)
	}
}

func TestKafkaConsumeTimeout(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "few"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)
	if out, errMsg := sabotKafka(ctx, t, "1\n2\n", "produce", "few", "--brokers", brokers); errMsg != "" {
		t.Fatalf("produce: %q, %s", out, errMsg)
	}
	tests := []struct {
		name     string
		args     []string
		out, err string
	}{
		{name: "max not reached", args: []string{"--max", "3"}, out: "1\n2\n", err: "kafka consume: 2 of 3 records from few within --timeout 1s"},
		{name: "no max", out: "1\n2\n"},
		{name: "max reached", args: []string{"--max", "1"}, out: "1\n"},
	}
	for _, tt := range tests {
		args := append([]string{"consume", "few", "--brokers", brokers, "--from-start", "--timeout", "1s"}, tt.args...)
		out, errMsg := sabotKafka(ctx, t, "", args...)
		if out != tt.out || !strings.Contains(errMsg, tt.err) || tt.err == "" && errMsg != "" {
			t.Errorf("%s: consume: %q, %q; want %q, %q", tt.name, out, errMsg, tt.out, tt.err)
		}
	}
}

// TestKafkaConsumeFromEnd: without --from-start only records produced
// after consume started are printed.
func TestKafkaConsumeFromEnd(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "live"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)
	if _, errMsg := sabotKafka(ctx, t, `"old"`+"\n", "produce", "live", "--brokers", brokers); errMsg != "" {
		t.Fatal(errMsg)
	}
	type result struct{ out, err string }
	done := make(chan result, 1)
	go func() {
		out, errMsg := sabotKafka(ctx, t, "", "consume", "live", "--brokers", brokers, "--max", "1", "--timeout", "30s")
		done <- result{out, errMsg}
	}()
	// When consume has found the end of the topic is its business: keep
	// producing new records until it prints one.
	cl := k.Client(t, kgo.DefaultProduceTopic("live"))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != "" || r.out != `"new"`+"\n" {
				t.Fatalf("consume: %q, %q; want only the new record", r.out, r.err)
			}
			return
		case <-tick.C:
			if err := cl.ProduceSync(ctx, kgo.StringRecord(`"new"`)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("consume printed nothing")
		}
	}
}

// TestKafkaProduceUnreachable: a broker nobody listens at is an error, not
// a hang (bounded by the context here, by kafkaDeliveryTimeout in use).
func TestKafkaProduceUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, errMsg := sabotKafka(ctx, t, "{}\n", "produce", "t", "--brokers", "127.0.0.1:1")
	if out != "produced 0 records to t\n" || errMsg == "" {
		t.Errorf("produce to nowhere: %q, %q; want an error", out, errMsg)
	}
}

func TestKafkaCreateTopic(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithBrokers(1), testkit.WithTopics(1, "old"))
	brokers := strings.Join(k.Addrs, ",")
	ctx := kafkaTestCtx(t)

	out, errMsg := sabotKafka(ctx, t, "", "create-topic", "new", "old", "--brokers", brokers, "--partitions", "3")
	if errMsg != "" || out != "new: created, 3 partition(s)\nold: exists\n" {
		t.Fatalf("create-topic: %q, %q", out, errMsg)
	}
	// Creating again is no error: a README's commands may be run twice.
	if out, errMsg = sabotKafka(ctx, t, "", "create-topic", "new", "--brokers", brokers); errMsg != "" || out != "new: exists\n" {
		t.Fatalf("create-topic again: %q, %q", out, errMsg)
	}
	// The oracle: the broker's metadata.
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"new", "old"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, k.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tm := range resp.Topics {
		got[*tm.Topic] = len(tm.Partitions)
	}
	if got["new"] != 3 || got["old"] != 1 {
		t.Errorf("partitions %v, want new: 3, old: 1 (left as it was)", got)
	}

	if _, errMsg = sabotKafka(ctx, t, "", "create-topic", "x", "--brokers", brokers, "--partitions", "0"); !strings.Contains(errMsg, "--partitions 0") {
		t.Errorf("create-topic --partitions 0: %q, want refused", errMsg)
	}
}

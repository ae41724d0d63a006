package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/go-cmp/cmp"
	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

var bidSchema = arrow.NewSchema([]arrow.Field{
	{Name: "auction", Type: arrow.PrimitiveTypes.Int64},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	{Name: "channel", Type: arrow.BinaryTypes.String},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
}, nil)

// bid is a JSON bid on auction a at ms.
func bid(p int32, a int, ms int64) rec {
	return rec{partition: p, ts: ms, value: fmt.Sprintf(`{"auction":%d,"price":%d.5,"channel":"c%d","ok":true,"at":%d,"extra":{"x":[1,2]}}`, a, a, a, ms)}
}

// bidRow is how bid(p, a, ms) reads back, with _partition and _offset.
func bidRow(p int32, a int, ms, off int64) string {
	return fmt.Sprintf("auction=%d price=%d.5 channel=c%d ok=true at=%s _partition=%d _offset=%d",
		a, a, a, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), p, off)
}

func TestSourceJSONThreePartitionsFromEarliest(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "bids"))
	var recs []rec
	want := map[kafka.Split][]string{}
	wantTimes := map[kafka.Split][]int64{}
	for p := range int32(3) {
		for i := range 4 {
			a, ms := int(p)*100+i, 1_000_000+int64(p)*1000+int64(i)
			recs = append(recs, bid(p, a, ms))
			sp := kafka.Split{Topic: "bids", Partition: p}
			want[sp] = append(want[sp], bidRow(p, a, ms, int64(i)))
			wantTimes[sp] = append(wantTimes[sp], ms)
		}
	}
	// Missing fields are null, null is null, unknown fields are ignored.
	recs = append(recs, rec{partition: 1, ts: 5, value: ` { "auction" : 7 , "channel": null, "zzz": "a\"b\u00e9" } `})
	s1 := kafka.Split{Topic: "bids", Partition: 1}
	want[s1] = append(want[s1], "auction=7 price=<nil> channel=<nil> ok=<nil> at=<nil> _partition=1 _offset=4")
	wantTimes[s1] = append(wantTimes[s1], 5)
	produce(t, k, "bids", recs...)

	src := newSource(t, k, kafka.SourceConfig{
		Topics:          []string{"bids"},
		Schema:          bidSchema,
		MetadataColumns: []string{kafka.ColumnPartition, kafka.ColumnOffset},
	})
	if got := src.Offsets(); !cmp.Equal(got, map[string]map[int32]int64{"bids": {0: 0, 1: 0, 2: 0}}) {
		t.Fatalf("initial offsets %v", got)
	}
	g := pollN(t, src, len(recs))
	if diff := cmp.Diff(want, g.rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantTimes, g.times); diff != "" {
		t.Errorf("event times (-want +got):\n%s", diff)
	}
	if got, want := src.Offsets(), (map[string]map[int32]int64{"bids": {0: 4, 1: 5, 2: 4}}); !cmp.Equal(got, want) {
		t.Errorf("offsets %v, want %v", got, want)
	}
	if st := src.Stats(); st.Records != int64(len(recs)) {
		t.Errorf("stats %+v", st)
	}
	pollIdle(t, src)
}

func TestSourceEventTimeField(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "t"))
	produce(t, k, "t",
		rec{ts: 1, value: `{"auction":1,"at":"2026-01-02T03:04:05.678Z"}`},
		rec{ts: 1, value: `{"auction":2,"at":1767322800000}`},
		rec{ts: 1, value: `{"auction":3,"at":"2026-01-02 03:04:05"}`},
	)
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"t"}, Schema: bidSchema, EventTimeField: "at"})
	g := pollN(t, src, 3)
	want := []int64{1767323045678, 1767322800000, 1767323045000}
	if diff := cmp.Diff(want, g.times[kafka.Split{Topic: "t"}]); diff != "" {
		t.Errorf("event times (-want +got):\n%s", diff)
	}
}

func TestSourceStartPositions(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(3, "bids"))
	var recs []rec
	for p := range int32(3) {
		for i := range 5 {
			recs = append(recs, bid(p, int(p)*100+i, 10_000*int64(i+1)))
		}
	}
	produce(t, k, "bids", recs...)
	sp := func(p int32) kafka.Split { return kafka.Split{Topic: "bids", Partition: p} }

	for _, tc := range []struct {
		name        string
		start       kafka.Start
		wantOffsets map[int32]int64 // before the first record
		want        map[kafka.Split][]string
	}{{
		name:        "offsets",
		start:       kafka.Start{Mode: kafka.StartOffsets, Offsets: map[string]map[int32]int64{"bids": {0: 3, 2: 5}}},
		wantOffsets: map[int32]int64{0: 3, 1: 0, 2: 5}, // 1 is missing: earliest
		want: map[kafka.Split][]string{
			sp(0): {bidRow(0, 3, 40_000, 3), bidRow(0, 4, 50_000, 4)},
			sp(1): {bidRow(1, 100, 10_000, 0), bidRow(1, 101, 20_000, 1), bidRow(1, 102, 30_000, 2), bidRow(1, 103, 40_000, 3), bidRow(1, 104, 50_000, 4)},
		},
	}, {
		name:        "timestamp",
		start:       kafka.Start{Mode: kafka.StartTimestamp, TimestampMillis: 35_000},
		wantOffsets: map[int32]int64{0: 3, 1: 3, 2: 3},
		want: map[kafka.Split][]string{
			sp(0): {bidRow(0, 3, 40_000, 3), bidRow(0, 4, 50_000, 4)},
			sp(1): {bidRow(1, 103, 40_000, 3), bidRow(1, 104, 50_000, 4)},
			sp(2): {bidRow(2, 203, 40_000, 3), bidRow(2, 204, 50_000, 4)},
		},
	}, {
		name:        "timestamp after the last record",
		start:       kafka.Start{Mode: kafka.StartTimestamp, TimestampMillis: 60_000},
		wantOffsets: map[int32]int64{0: 5, 1: 5, 2: 5},
		want:        map[kafka.Split][]string{},
	}, {
		name:        "latest",
		start:       kafka.Start{Mode: kafka.StartLatest},
		wantOffsets: map[int32]int64{0: 5, 1: 5, 2: 5},
		want:        map[kafka.Split][]string{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := newSource(t, k, kafka.SourceConfig{
				Topics:          []string{"bids"},
				Schema:          bidSchema,
				Start:           tc.start,
				MetadataColumns: []string{kafka.ColumnPartition, kafka.ColumnOffset},
			})
			if got := src.Offsets()["bids"]; !cmp.Equal(got, tc.wantOffsets) {
				t.Fatalf("start offsets %v, want %v", got, tc.wantOffsets)
			}
			n := 0
			for _, rows := range tc.want {
				n += len(rows)
			}
			g := pollN(t, src, n)
			if diff := cmp.Diff(tc.want, g.rows); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			pollIdle(t, src)
		})
	}
}

// TestSourceLatestThenNew: a source at the end reads what is produced
// after it started, and nothing before.
func TestSourceLatestThenNew(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "t"))
	produce(t, k, "t", bid(0, 1, 1000))
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"t"}, Schema: bidSchema, Start: kafka.Start{Mode: kafka.StartLatest}})
	produce(t, k, "t", bid(0, 2, 2000))
	g := pollN(t, src, 1)
	if got := g.rows[kafka.Split{Topic: "t"}]; len(got) != 1 || !strings.HasPrefix(got[0], "auction=2 ") {
		t.Errorf("rows %v, want auction 2 only", got)
	}
}

// badInput is a partition with good records around malformed ones.
var badInput = []rec{
	{key: "k0", value: `{"auction":1}`},
	{key: "k1", value: `{"auction":"not a number"}`},
	{key: "k2", value: `{"auction":3}`},
	{key: "k3", value: `{"auction":4`},
	{tombstone: true},
	{key: "k5", value: `{"auction":6}`},
}

var badSchema = arrow.NewSchema([]arrow.Field{{Name: "auction", Type: arrow.PrimitiveTypes.Int64}}, nil)

var badGood = []string{"auction=1", "auction=3", "auction=6"}

func TestSourceBadRecordFail(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in"))
	produce(t, k, "in", badInput...)
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"in"}, Schema: badSchema})
	// One row per Poll: the good record before the bad one arrives.
	var rows []string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		var bs []kafka.SplitBatch
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		bs, err = src.Poll(ctx, 1)
		cancel()
		for _, b := range bs {
			rows = append(rows, rowStrings(b.Batch)...)
			b.Batch.Release()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	if !cmp.Equal(rows, []string{"auction=1"}) {
		t.Errorf("rows before the failure %v", rows)
	}
	var re *kafka.RecordError
	if !errors.As(err, &re) || !errors.Is(err, kafka.ErrMalformed) {
		t.Fatalf("Poll error %v (%T), want a *RecordError matching ErrMalformed", err, err)
	}
	if re.Topic != "in" || re.Partition != 0 || re.Offset != 1 {
		t.Errorf("error names %s/%d@%d, want in/0@1", re.Topic, re.Partition, re.Offset)
	}
	for _, s := range []string{"in/0 offset 1", `field "auction"`, "integer"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	// The position stays before the bad record and the failure is sticky.
	if got := src.Offsets()["in"][0]; got != 1 {
		t.Errorf("offset after failure %d, want 1", got)
	}
	if _, err2 := src.Poll(t.Context(), 0); !errors.Is(err2, kafka.ErrMalformed) {
		t.Errorf("second Poll %v, want the same failure", err2)
	}
}

func TestSourceBadRecordSkip(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in"))
	produce(t, k, "in", badInput...)
	log, lines := newCapture()
	clock := clockwork.NewFakeClock()
	src := newSource(t, k, kafka.SourceConfig{
		Topics: []string{"in"}, Schema: badSchema,
		BadRecords: kafka.PolicySkip, Logger: log, Clock: clock,
	})
	g := pollN(t, src, 3)
	if diff := cmp.Diff(badGood, g.rows[kafka.Split{Topic: "in"}]); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if st := src.Stats(); st.Skipped != 3 {
			return fmt.Errorf("skipped %d, want 3", st.Skipped)
		}
		if o := src.Offsets()["in"][0]; o != 6 {
			return fmt.Errorf("offset %d, want 6", o)
		}
		return nil
	})
	// Three bad records, the clock never moved: one line, for the first.
	got := lines()
	if len(got) != 1 || !strings.Contains(got[0], "topic=in partition=0 offset=1 ") || !strings.Contains(got[0], `field "auction"`) {
		t.Fatalf("log lines %q, want one naming in/0 offset 1", got)
	}
	// After the interval the next bad record is logged with the count of
	// those not logged.
	clock.Advance(kafka.DefaultBadRecordLogInterval)
	produce(t, k, "in", rec{value: "nope"}, rec{value: `{"auction":9}`})
	pollN(t, src, 1)
	got = lines()
	if len(got) != 2 || !strings.Contains(got[1], "offset=6 ") || !strings.Contains(got[1], "skipped_unlogged=2") {
		t.Errorf("log lines %q", got)
	}
}

func TestSourceBadRecordDeadLetter(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in", "dlq"))
	produce(t, k, "in", badInput...)
	src := newSource(t, k, kafka.SourceConfig{
		Topics: []string{"in"}, Schema: badSchema,
		BadRecords: kafka.PolicyDeadLetter, DeadLetterTopic: "dlq",
	})
	g := pollN(t, src, 3)
	if diff := cmp.Diff(badGood, g.rows[kafka.Split{Topic: "in"}]); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if st := src.Stats(); st.DeadLettered != 3 {
			return fmt.Errorf("dead-lettered %d, want 3", st.DeadLettered)
		}
		return nil
	})

	// The dead-letter topic holds the three records, unchanged, with
	// headers naming the error and the origin.
	cl := k.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"dlq": {0: kgo.NewOffset().AtStart()}}))
	var dl []*kgo.Record
	testkit.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		dl = append(dl, cl.PollFetches(ctx).Records()...)
		if len(dl) < 3 {
			return fmt.Errorf("%d dead letters", len(dl))
		}
		return nil
	})
	type letter struct{ Key, Value, Err, Topic, Partition, Offset string }
	var got []letter
	for _, r := range dl {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		got = append(got, letter{string(r.Key), string(r.Value), h[kafka.HeaderError], h[kafka.HeaderTopic], h[kafka.HeaderPartition], h[kafka.HeaderOffset]})
	}
	want := []letter{
		{"k1", `{"auction":"not a number"}`, `field "auction": expected integer, got a string`, "in", "0", "1"},
		{"k3", `{"auction":4`, "expected ',' or '}' at byte 12: unexpected end of input", "in", "0", "3"},
		{"", "", "null value (tombstone)", "in", "0", "4"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}

func TestSourceCSV(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "csv"))
	produce(t, k, "csv",
		rec{value: "1,2.5,plain,true,2026-01-02T03:04:05Z\n"},
		rec{value: `2,,"quoted, ""comma""",false,1000`},
		rec{value: `3,1e3,"",,`},
		rec{value: `4,1`}, // too few fields: skipped
	)
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"csv"}, Format: kafka.FormatCSV, Schema: bidSchema, BadRecords: kafka.PolicySkip})
	g := pollN(t, src, 3)
	want := []string{
		"auction=1 price=2.5 channel=plain ok=true at=2026-01-02T03:04:05Z",
		`auction=2 price=<nil> channel=quoted, "comma" ok=false at=1970-01-01T00:00:01Z`,
		"auction=3 price=1000 channel= ok=<nil> at=<nil>",
	}
	if diff := cmp.Diff(want, g.rows[kafka.Split{Topic: "csv"}]); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if s := src.Stats().Skipped; s != 1 {
			return fmt.Errorf("skipped %d", s)
		}
		return nil
	})
}

func TestSourceRaw(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "raw"))
	produce(t, k, "raw", rec{key: "a", value: "not json", ts: 7}, rec{value: "\x00\xff", ts: 8}, rec{key: "c", tombstone: true, ts: 9})
	src := newSource(t, k, kafka.SourceConfig{
		Topics: []string{"raw"}, Format: kafka.FormatRaw,
		MetadataColumns: []string{kafka.ColumnTopic, kafka.ColumnTimestamp},
	})
	g := pollN(t, src, 3)
	want := []string{
		// ValueStr shows binaries in base64: "a", "not json", "\x00\xff", "c".
		"key=YQ== value=bm90IGpzb24= _topic=raw _timestamp=1970-01-01T00:00:00.007Z",
		"key=<nil> value=AP8= _topic=raw _timestamp=1970-01-01T00:00:00.008Z",
		"key=Yw== value=<nil> _topic=raw _timestamp=1970-01-01T00:00:00.009Z",
	}
	sp := kafka.Split{Topic: "raw"}
	if diff := cmp.Diff(want, g.rows[sp]); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{7, 8, 9}, g.times[sp]); diff != "" {
		t.Errorf("event times (-want +got):\n%s", diff)
	}
}

func TestSourceTopicRegex(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(2, "orders.eu", "orders.us", "payments"))
	produce(t, k, "orders.eu", bid(0, 1, 1), bid(1, 2, 1))
	produce(t, k, "orders.us", bid(1, 3, 1))
	produce(t, k, "payments", bid(0, 4, 1))
	src := newSource(t, k, kafka.SourceConfig{
		TopicRegex: `^orders\.`, Schema: bidSchema,
		MetadataColumns: []string{kafka.ColumnTopic},
	})
	want := []kafka.Split{{"orders.eu", 0}, {"orders.eu", 1}, {"orders.us", 0}, {"orders.us", 1}}
	if diff := cmp.Diff(want, src.Splits()); diff != "" {
		t.Errorf("splits (-want +got):\n%s", diff)
	}
	g := pollN(t, src, 3)
	if len(g.rows) != 3 {
		t.Errorf("rows %v", g.rows)
	}
	pollIdle(t, src)

	_, err := kafka.NewSource(t.Context(), kafka.SourceConfig{Brokers: k.Addrs, TopicRegex: "^nothing", Schema: bidSchema})
	if !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Errorf("regex matching nothing: %v, want ErrUnknownTopic", err)
	}
	_, err = kafka.NewSource(t.Context(), kafka.SourceConfig{Brokers: k.Addrs, Topics: []string{"missing"}, Schema: bidSchema})
	if !errors.Is(err, kafka.ErrUnknownTopic) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing topic: %v, want ErrUnknownTopic naming it", err)
	}
}

// TestSourceSplitAssignment: subtasks of a parallel source share the
// splits without overlap, as Flink assigns them.
func TestSourceSplitAssignment(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(5, "a", "b"))
	seen := map[kafka.Split]int{}
	for sub := range 3 {
		src := newSource(t, k, kafka.SourceConfig{Topics: []string{"a", "b"}, Schema: bidSchema, Subtask: sub, Parallelism: 3})
		for _, sp := range src.Splits() {
			if prev, dup := seen[sp]; dup {
				t.Errorf("split %v on subtasks %d and %d", sp, prev, sub)
			}
			seen[sp] = sub
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d splits assigned, want 10", len(seen))
	}
	// Flink: owner = ((hash("a")*31 & 0x7fffffff) % 3 + p) % 3, with
	// "a".hashCode() = 97, so partition 0 of "a" is on (97*31 % 3) = 1.
	if got := seen[kafka.Split{Topic: "a", Partition: 0}]; got != 1 {
		t.Errorf("a/0 on subtask %d, want 1", got)
	}
}

// TestSourceBoundedPoll: a Poll returns at most maxRows and at most
// MaxPollRecords rows.
func TestSourceBoundedPoll(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(2, "t"))
	var recs []rec
	for i := range 100 {
		recs = append(recs, bid(int32(i%2), i, 1))
	}
	produce(t, k, "t", recs...)
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"t"}, Schema: bidSchema, MaxPollRecords: 9, FetchMaxBytes: 1024, FetchMaxPartitionBytes: 512, MaxConcurrentFetches: 1})
	total := 0
	for _, limit := range []int{7, 100, 0} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		bs, err := src.Poll(ctx, limit)
		cancel()
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		n := 0
		for _, b := range bs {
			n += int(b.Batch.NumRows())
			b.Batch.Release()
		}
		bound := 9
		if limit > 0 && limit < bound {
			bound = limit
		}
		if n == 0 || n > bound {
			t.Errorf("Poll(%d) returned %d rows, want 1..%d", limit, n, bound)
		}
		total += n
	}
	g := pollN(t, src, 100-total)
	if g.n != 100-total {
		t.Errorf("read %d more rows, want %d", g.n, 100-total)
	}
}

func TestSourceCloseUnblocksPoll(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "t"))
	src := newSource(t, k, kafka.SourceConfig{Topics: []string{"t"}, Schema: bidSchema})
	done := make(chan error, 1)
	go func() {
		_, err := src.Poll(t.Context(), 0)
		done <- err
	}()
	src.Close()
	select {
	case err := <-done:
		if !errors.Is(err, kafka.ErrClosed) {
			t.Errorf("blocked Poll returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Poll still blocked after Close")
	}
	src.Close() // idempotent
}

func TestSourceConfigValidate(t *testing.T) {
	t.Parallel()
	base := kafka.SourceConfig{Brokers: []string{"x:1"}, Topics: []string{"t"}, Schema: bidSchema}
	for _, tc := range []struct {
		name string
		mod  func(*kafka.SourceConfig)
		want string
	}{
		{"no brokers", func(c *kafka.SourceConfig) { c.Brokers = nil }, "no brokers"},
		{"topics and regex", func(c *kafka.SourceConfig) { c.TopicRegex = "x" }, "both Topics and TopicRegex"},
		{"bad regex", func(c *kafka.SourceConfig) { c.Topics, c.TopicRegex = nil, "(" }, "topic regex"},
		{"subtask", func(c *kafka.SourceConfig) { c.Subtask, c.Parallelism = 2, 2 }, "subtask 2 of parallelism 2"},
		{"no schema", func(c *kafka.SourceConfig) { c.Schema = nil }, "needs a schema"},
		{"raw with schema", func(c *kafka.SourceConfig) { c.Format = kafka.FormatRaw }, "takes no schema"},
		{"unsupported type", func(c *kafka.SourceConfig) {
			c.Schema = arrow.NewSchema([]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8)}}, nil)
		}, `column "l": unsupported type`},
		{"metadata", func(c *kafka.SourceConfig) { c.MetadataColumns = []string{"_key"} }, `unknown metadata column "_key"`},
		{"event time", func(c *kafka.SourceConfig) { c.EventTimeField = "channel" }, `event-time field "channel" has type utf8`},
		{"dlq without topic", func(c *kafka.SourceConfig) { c.BadRecords = kafka.PolicyDeadLetter }, "needs DeadLetterTopic"},
		{"topic without dlq", func(c *kafka.SourceConfig) { c.DeadLetterTopic = "d" }, `dead-letter topic "d" set with policy fail`},
		{"offsets without mode", func(c *kafka.SourceConfig) { c.Start.Offsets = map[string]map[int32]int64{"t": {0: 1}} }, "start offsets given with start mode earliest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := base.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// rec is a record to seed: value on a partition at a timestamp (ms).
type rec struct {
	partition int32
	key       string
	value     string
	ts        int64
	tombstone bool
}

// produce writes recs to topic synchronously, each to its partition.
func produce(t *testing.T, k *testkit.Kafka, topic string, recs ...rec) {
	t.Helper()
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: topic, Partition: r.partition, Value: []byte(r.value)}
		if r.tombstone {
			kr.Value = nil
		}
		if r.key != "" {
			kr.Key = []byte(r.key)
		}
		if r.ts != 0 {
			kr.Timestamp = time.UnixMilli(r.ts)
		}
		rs[i] = kr
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// newSource starts a source on k with a checked allocator that must end
// at zero, closed by t.Cleanup.
func newSource(t *testing.T, k *testkit.Kafka, cfg kafka.SourceConfig) *kafka.Source {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	cfg.Brokers = k.Addrs
	cfg.Allocator = mem
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger(t, slog.LevelWarn)
	}
	src, err := kafka.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(src.Close)
	return src
}

// got is what a source returned, per split.
type got struct {
	rows  map[kafka.Split][]string
	times map[kafka.Split][]int64
	n     int
}

// pollN polls until n rows arrived (failing t after 10 s), checking that
// batches have the source's schema and offsets grow.
func pollN(t *testing.T, src *kafka.Source, n int) got {
	t.Helper()
	g := got{rows: map[kafka.Split][]string{}, times: map[kafka.Split][]int64{}}
	deadline := time.Now().Add(10 * time.Second)
	for g.n < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d rows: %v", g.n, n, g.rows)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		bs, err := src.Poll(ctx, 0)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		g.add(t, src, bs)
	}
	return g
}

func (g *got) add(t *testing.T, src *kafka.Source, bs []kafka.SplitBatch) {
	t.Helper()
	for _, b := range bs {
		if !b.Batch.Schema().Equal(src.Schema()) {
			t.Fatalf("batch schema %v, want %v", b.Batch.Schema(), src.Schema())
		}
		if int64(len(b.EventTime)) != b.Batch.NumRows() {
			t.Fatalf("%d event times for %d rows", len(b.EventTime), b.Batch.NumRows())
		}
		g.rows[b.Split] = append(g.rows[b.Split], rowStrings(b.Batch)...)
		g.times[b.Split] = append(g.times[b.Split], b.EventTime...)
		g.n += int(b.Batch.NumRows())
		b.Batch.Release()
	}
}

// rowStrings renders each row as "name=value ..." with <nil> for null.
func rowStrings(b arrow.RecordBatch) []string {
	out := make([]string, b.NumRows())
	for i := range out {
		var sb strings.Builder
		for c, col := range b.Columns() {
			if c > 0 {
				sb.WriteByte(' ')
			}
			v := "<nil>"
			if col.IsValid(i) {
				v = col.ValueStr(i)
			}
			fmt.Fprintf(&sb, "%s=%s", b.Schema().Field(c).Name, v)
		}
		out[i] = sb.String()
	}
	return out
}

// pollIdle checks that nothing more arrives within a short wait.
func pollIdle(t *testing.T, src *kafka.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	bs, err := src.Poll(ctx, 0)
	for _, b := range bs {
		t.Errorf("unexpected rows from %v: %v", b.Split, rowStrings(b.Batch))
		b.Batch.Release()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle Poll: %v, want deadline exceeded", err)
	}
}

// captureHandler records log lines for assertions.
type captureHandler struct {
	slog.Handler
	mu    *sync.Mutex
	lines *[]string
}

func newCapture() (*slog.Logger, func() []string) {
	var (
		mu    sync.Mutex
		lines []string
	)
	h := captureHandler{mu: &mu, lines: &lines}
	h.Handler = slog.DiscardHandler
	return slog.New(h), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines = append(*h.lines, sb.String())
	return nil
}

func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h captureHandler) WithGroup(string) slog.Handler      { return h }

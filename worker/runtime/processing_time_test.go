package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/runtime"
)

// TestProcessingTimeWindowFiresWhenIdle: a processing-time window whose
// input has gone quiet still fires when the worker's clock passes its end —
// the task wakes for the operator's timer instead of waiting for input
// that never comes.
func TestProcessingTimeWindowFiresWhenIdle(t *testing.T) {
	t.Parallel()
	k := testkit.StartKafka(t, testkit.WithTopics(1, "in"))
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	spec, err := manifest.Parse("pt.yaml", []byte(fmt.Sprintf(`
name: pt
steps:
  - id: src
    kafka_source: {brokers: [%q], topics: [in], columns: {k: string}}
  - id: counts
    key_by: [k]
    window:
      tumbling: {size_ms: 200}
      time: processing
      aggregations: {n: count}
  - id: out
    print: {prefix: w}
`, k.Addrs[0])))
	if err != nil {
		t.Fatal(err)
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	var out lines
	j := startJob(t, runtime.Config{Graph: g, Allocator: checked(t), PrintOut: &out, Logger: testkit.Logger(t, slog.LevelWarn)})
	const n = 25
	var parts []int32
	var values []string
	for range n {
		parts = append(parts, 0)
		values = append(values, `{"k":"a"}`)
	}
	produceTo(t, cl, "in", parts, values)
	// No more input: only the task's wake-up can fire the window.
	testkit.Eventually(t, 20*time.Second, func() error {
		total := int64(0)
		for _, l := range out.all() {
			total += intOf(t, parsePrinted(t, l).row["n"])
		}
		if total != n {
			return fmt.Errorf("windows counted %d rows so far, want %d", total, n)
		}
		return nil
	})
	if err := j.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBenchFunctions runs `sabot bench functions -o json` end to end in a
// short form and checks behaviour only, never speed: every run completed
// requests and reports positive figures; every Invoke reply and every
// direct call carried its key's next count (the benchmark fails on any
// other reply, and counts the ones it checked); each stream job FINISHED
// with every row counted once (--verify reads the function's output back:
// each key's counts 1..n exactly once, summing to --rows).
func TestBenchFunctions(t *testing.T) {
	t.Parallel()
	const rows = 3000
	root := newRoot()
	var out, stderr bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&stderr)
	root.SetArgs([]string{"bench", "functions", "-o", "json", "--duration", "300ms", "--warmup", "50ms",
		"--concurrency", "1,4", "--rows", "3000", "--keys", "100", "--max-batch", "256,1", "--verify", "--dir", t.TempDir()})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench functions: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	t.Logf("%s", out.String())
	if stderr.Len() > 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	var res functionsBenchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}

	type run struct {
		path, mode string
		clients    int
	}
	var want []run
	for _, mode := range []string{"uncommitted", "committed"} {
		for _, c := range []int{1, 4} {
			want = append(want, run{"sabot", mode, c})
		}
	}
	want = append(want, run{"baseline", "direct", 1}, run{"baseline", "direct", 4})
	if len(res.Invoke) != len(want) {
		t.Fatalf("%d invoke runs, want %d: %+v", len(res.Invoke), len(want), res.Invoke)
	}
	for i, r := range res.Invoke {
		if w := want[i]; r.Path != w.path || r.Mode != w.mode || r.Concurrency != w.clients {
			t.Errorf("run %d is %s %s × %d, want %s %s × %d", i, r.Path, r.Mode, r.Concurrency, w.path, w.mode, w.clients)
		}
		if r.Requests <= 0 || r.Seconds <= 0 || r.RequestsPerSecond <= 0 || r.P50MS <= 0 || r.P99MS < r.P50MS || r.MaxMS < r.P99MS || r.CPUPerRequestUS <= 0 {
			t.Errorf("%s %s × %d: a figure is not positive or out of order: %+v", r.Path, r.Mode, r.Concurrency, r)
		}
		// Warm-up replies are checked too.
		if r.CheckedReplies < r.Requests {
			t.Errorf("%s %s × %d: %d replies checked for %d measured requests", r.Path, r.Mode, r.Concurrency, r.CheckedReplies, r.Requests)
		}
	}

	if len(res.Ratios) != 2 {
		t.Fatalf("%d ratios, want one per concurrency (2)", len(res.Ratios))
	}
	for _, q := range res.Ratios {
		if q.P50Ratio <= 0 || q.P99Ratio <= 0 || q.ThroughputRatio <= 0 {
			t.Errorf("ratio at %d clients: %+v", q.Concurrency, q)
		}
	}

	if len(res.Stream) != 2 || res.Stream[0].MaxBatch != 256 || res.Stream[1].MaxBatch != 1 {
		t.Fatalf("stream runs %+v, want max_batch 256 then 1", res.Stream)
	}
	for _, s := range res.Stream {
		if s.CheckedRows != rows {
			t.Errorf("max_batch %d: %d counts read back, want %d", s.MaxBatch, s.CheckedRows, rows)
		}
		if s.WallSeconds <= 0 || s.DeploySeconds < s.WallSeconds || s.CPUSeconds <= 0 || s.RowsPerSecond <= 0 || s.RowsPerCPUSecond <= 0 {
			t.Errorf("max_batch %d: a figure is not positive or out of order: %+v", s.MaxBatch, s)
		}
	}
	if res.StreamRatio <= 0 || res.StreamRateRatio <= 0 {
		t.Errorf("stream ratios %.3f, %.3f", res.StreamRatio, res.StreamRateRatio)
	}

	// The table shows every part.
	var table bytes.Buffer
	if err := printFunctionsBench(&table, "table", &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sabot uncommitted", "sabot committed", "baseline (direct call)", "req/s ×", "rows/CPU-s", "max_batch 256 / 1"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, table.String())
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestBenchCheckpoints runs `sabot bench checkpoints -o json` end to end on
// both backends with tiny sizes and checks that every figure is sane: the
// paced throughput runs last about a second, so the 200ms run checkpoints;
// pebble's checkpoint after 1 % of the keys changed uploads less than the
// full one; a killed run restores and emits again.
func TestBenchCheckpoints(t *testing.T) {
	t.Parallel()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"bench", "checkpoints", "-o", "json", "--backend", "heap,pebble",
		"--events", "20000", "--events-per-second", "20000", "--keys", "2048", "--intervals", "200ms",
		"--state-mb", "1", "--recovery-checkpoints", "1", "--dir", t.TempDir()})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench checkpoints: %v\n%s", err, out.String())
	}
	var res checkpointBenchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	t.Logf("%s", out.String())

	if len(res.Throughput) != 4 {
		t.Fatalf("%d throughput runs, want 4 (2 backends × none, 200ms)", len(res.Throughput))
	}
	for _, r := range res.Throughput {
		if r.Ratio <= 0 || r.EventsPerSecond <= 0 || r.SinkRows != r.Events {
			t.Errorf("%s %dms: ratio %.2f, %.0f events/s, %d of %d rows at the sink", r.Backend, r.IntervalMS, r.Ratio, r.EventsPerSecond, r.SinkRows, r.Events)
		}
		if r.IntervalMS == 200 && (r.Completed == 0 || r.MeanDurationMS == nil || *r.MeanSizeBytes <= 0) {
			t.Errorf("%s 200ms: %d checkpoints completed in %.2fs (%s)", r.Backend, r.Completed, r.WallSeconds, r.Note)
		}
	}

	if len(res.State) != 2 {
		t.Fatalf("%d state runs, want 2", len(res.State))
	}
	for _, s := range res.State {
		if s.Keys <= 0 || s.ChangedKeys <= 0 || s.Full.SizeBytes <= 0 || s.Changed.SizeBytes <= 0 {
			t.Errorf("%s: %d keys, %d changed, full %d B, changed %d B", s.Backend, s.Keys, s.ChangedKeys, s.Full.SizeBytes, s.Changed.SizeBytes)
		}
		switch s.Backend {
		case "pebble":
			if s.Changed.IncrementalBytes >= s.Full.SizeBytes {
				t.Errorf("pebble: the checkpoint after 1 %% changed uploaded %d B, the full one is %d B", s.Changed.IncrementalBytes, s.Full.SizeBytes)
			}
		case "heap":
			if s.Changed.IncrementalBytes != s.Changed.SizeBytes {
				t.Errorf("heap: uploaded %d B of %d B; heap uploads all state", s.Changed.IncrementalBytes, s.Changed.SizeBytes)
			}
		}
	}

	if len(res.Recovery) != 2 {
		t.Fatalf("%d recovery runs, want 2", len(res.Recovery))
	}
	for _, r := range res.Recovery {
		if r.Completed < 1 || r.SizeBytes <= 0 || r.RestoreSeconds <= 0 || r.FirstRowSeconds < r.RestoreSeconds {
			t.Errorf("%s: %d checkpoints, restored %d B, restore %.3fs, first row %.3fs", r.Backend, r.Completed, r.SizeBytes, r.RestoreSeconds, r.FirstRowSeconds)
		}
	}
}

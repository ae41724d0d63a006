package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
)

// TestBenchExchange runs bench exchange in a short form with the built
// binary (its shares are child processes): both runs deliver every row,
// and with a slow consumer the sender's heap stays far below what its
// unbounded sources would have produced without flow control.
func TestBenchExchange(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	out, err := exec.Command(bin, "bench", "exchange", "--rows", "300000", "--slow-for", "3s", "-o", "json").Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("bench exchange: %v\n%s\n%s", err, out, stderr)
	}
	var res exchangeResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
	if res.LocalRowsPerSec <= 0 || res.NetworkRowsPerSec <= 0 || res.SlowRows <= 0 {
		t.Fatalf("a run delivered nothing: %+v", res)
	}
	// Credits bound what is in flight: 2 channels × 8 batches of 1024
	// rows of 16 bytes per receiving subtask, plus the sources' own
	// batches; the heap may grow by a few MiB, not by the backlog.
	if grown := res.SenderPeakHeapMB - res.SenderBaseHeapMB; grown > 48 || grown > res.UnthrottledMB/4 {
		t.Fatalf("sender heap grew by %.1f MiB (unthrottled the sources would have made %.0f MiB)", grown, res.UnthrottledMB)
	}
}

package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/worker/connector/nexmark"
	"github.com/sabotdev/sabot/worker/runtime"
)

const (
	testEvents = 30_000
	testSeed   = 7
)

// runNexmark runs examples/nexmark/<q>.yaml at parallelism 2 over a small
// seeded event set, with its blackhole sink swapped for a file sink, and
// returns the output rows as canonical strings, sorted.
func runNexmark(t *testing.T, q string, canon func(map[string]any) string) []string {
	t.Helper()
	return runNexmarkAt(t, q, 0, canon)
}

// runNexmarkAt is runNexmark with the generator's event rate set (0: the
// default), which spaces event times: windowed queries need a rate low
// enough for the events to span many windows.
func runNexmarkAt(t *testing.T, q string, rate int64, canon func(map[string]any) string) []string {
	t.Helper()
	data, err := examples.FS.ReadFile("nexmark/" + q + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := manifest.Parse(q+".yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	spec.Parallelism = 2
	for _, v := range spec.GetGraph().GetVertices() {
		if n := v.GetOperator().GetNexmark(); n != nil {
			n.Events, n.Seed, n.EventsPerSecond = testEvents, testSeed, rate
		}
		if v.GetOperator().GetBlackhole() != nil {
			v.Operator = &sabotv1.Operator{Kind: &sabotv1.Operator_File{File: &sabotv1.FileSink{Path: out}}}
		}
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := runtime.Run(ctx, runtime.Config{JobID: q, Attempt: 1, Graph: g, Allocator: mem}); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)

	parts, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
	var rows []string
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.UseNumber() // integers stay exact
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			rows = append(rows, canon(m))
		}
		_ = f.Close()
	}
	slices.Sort(rows)
	return rows
}

func cfg() nexmark.Config { return nexmark.Config{Seed: testSeed, NumEvents: testEvents} }

func ts(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

func compare(t *testing.T, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the reference produced no rows: the test would prove nothing")
	}
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("engine produced %d rows, reference %d; first difference at %d:\n got %v\nwant %v",
			len(got), len(want), i, at(got, i), at(want, i))
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}

// The engine's rows are read back from JSON; the reference's come from
// nexmark's straightforward loops, not the engine's code path.

func TestNexmarkQ0(t *testing.T) {
	t.Parallel()
	got := runNexmark(t, "q0", func(m map[string]any) string {
		return fmt.Sprintf("%v|%v|%v|%v|%v", m["auction"], m["bidder"], m["price"], m["dateTime"], m["extra"])
	})
	var want []string
	if err := nexmark.ReferenceQ0(cfg(), func(r *nexmark.Q0Row) {
		want = append(want, fmt.Sprintf("%d|%d|%d|%s|%s", r.Auction, r.Bidder, r.Price, ts(r.DateTime), r.Extra))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

func TestNexmarkQ1(t *testing.T) {
	t.Parallel()
	// Prices compared as price×908/1000 rounded to 1e-6: the engine and the
	// reference both compute 0.908×price in float64.
	got := runNexmark(t, "q1", func(m map[string]any) string {
		price, err := m["price"].(json.Number).Float64()
		if err != nil {
			t.Errorf("price %v: %v", m["price"], err)
		}
		return fmt.Sprintf("%v|%v|%.6f|%v|%v", m["auction"], m["bidder"], price, m["dateTime"], m["extra"])
	})
	var want []string
	if err := nexmark.ReferenceQ1(cfg(), func(r *nexmark.Q1Row) {
		want = append(want, fmt.Sprintf("%d|%d|%.6f|%s|%s", r.Auction, r.Bidder, r.Price, ts(r.DateTime), r.Extra))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

func TestNexmarkQ2(t *testing.T) {
	t.Parallel()
	got := runNexmark(t, "q2", func(m map[string]any) string {
		if len(m) != 2 {
			t.Errorf("q2 row has columns %v, want auction and price", m)
		}
		return fmt.Sprintf("%v|%v", m["auction"], m["price"])
	})
	var want []string
	if err := nexmark.ReferenceQ2(cfg(), func(r nexmark.Q2Row) {
		want = append(want, fmt.Sprintf("%d|%d", r.Auction, r.Price))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

// windowRate spaces the windowed queries' events 1 ms apart: 30 s of event
// time, so windows open and close during the run.
const windowRate = 1000

func windowCfg() nexmark.Config {
	return nexmark.Config{Seed: testSeed, NumEvents: testEvents, EventsPerSecond: windowRate}
}

func TestNexmarkQ5(t *testing.T) {
	t.Parallel()
	got := runNexmarkAt(t, "q5", windowRate, func(m map[string]any) string {
		return fmt.Sprintf("%v|%v|%v|%v", m["auction"], m["num"], m["window_start"], m["window_end"])
	})
	var want []string
	if err := nexmark.ReferenceQ5(windowCfg(), func(r nexmark.Q5Row) {
		want = append(want, fmt.Sprintf("%d|%d|%s|%s", r.Auction, r.Num, ts(r.WindowStart), ts(r.WindowEnd)))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

func TestNexmarkQ7(t *testing.T) {
	t.Parallel()
	got := runNexmarkAt(t, "q7", windowRate, func(m map[string]any) string {
		return fmt.Sprintf("%v|%v|%v|%v|%v", m["auction"], m["price"], m["bidder"], m["dateTime"], m["extra"])
	})
	var want []string
	if err := nexmark.ReferenceQ7(windowCfg(), func(r *nexmark.Q7Row) {
		want = append(want, fmt.Sprintf("%d|%d|%d|%s|%s", r.Auction, r.Price, r.Bidder, ts(r.DateTime), r.Extra))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

func TestNexmarkQ11(t *testing.T) {
	t.Parallel()
	got := runNexmarkAt(t, "q11", windowRate, func(m map[string]any) string {
		return fmt.Sprintf("%v|%v|%v|%v", m["bidder"], m["bid_count"], m["window_start"], m["window_end"])
	})
	var want []string
	if err := nexmark.ReferenceQ11(windowCfg(), func(r nexmark.Q11Row) {
		want = append(want, fmt.Sprintf("%d|%d|%s|%s", r.Bidder, r.BidCount, ts(r.SessionStart), ts(r.SessionEnd)))
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	compare(t, got, want)
}

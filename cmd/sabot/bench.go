package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/worker/connector/nexmark"
	sabotrt "github.com/sabotdev/sabot/worker/runtime"
)

func newBenchCmd(g *globals) *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that drive the real engine and compare it with a baseline from the same run",
	}
	var (
		query       string
		events      int64
		parallelism int
		seed        int64
		cpuProfile  string
		rate        int64
	)
	nx := &cobra.Command{
		Use:   "nexmark",
		Short: "Run a Nexmark query (examples/nexmark/<query>.yaml) on the engine and on a hand-written loop",
		Long: "bench nexmark runs the query's manifest in this process on the dataflow runtime and, in the\n" +
			"same run, a hand-written single-threaded Go loop over the same generated events computing\n" +
			"the same answer (the baseline). It reports events/s, events per CPU-second (\"per core\",\n" +
			"as the Nexmark suite reports throughput/cores), the engine/baseline ratio, peak memory and\n" +
			"p50/p99 latency per batch from when the source began producing it to the sink.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := benchNexmark(cmd.Context(), query, events, parallelism, seed, rate)
			if err != nil {
				return err
			}
			return printBench(cmd.OutOrStdout(), g.output, res)
		},
	}
	f := nx.Flags()
	f.StringVar(&query, "query", "q0", "query: q0, q1, q2, q5, q7 or q11")
	f.Int64Var(&events, "events", 10_000_000, "events to generate (all kinds; 92% are bids)")
	f.IntVar(&parallelism, "parallelism", 1, "parallelism of every step")
	f.Int64Var(&seed, "seed", 42, "generator seed")
	f.Int64Var(&rate, "events-per-second", 0, "the generator's event rate, which spaces event times (0: the manifest's, default 10,000,000); lower it to make windowed queries span more windows")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run (baseline and engine) to this file")
	bench.AddCommand(nx)
	bench.AddCommand(newBenchCheckpointsCmd(g))
	bench.AddCommand(newBenchExchangeCmd(g))
	bench.AddCommand(newBenchFunctionsCmd(g))
	return bench
}

// benchResult is what bench nexmark reports; its JSON form is the last line
// of `-o json`.
type benchResult struct {
	Query                   string   `json:"query"`
	Events                  int64    `json:"events"`
	EventsPerSecondSetting  int64    `json:"generator_events_per_second"`
	Parallelism             int      `json:"parallelism"`
	OutputRows              int64    `json:"output_rows"`
	WallSeconds             float64  `json:"wall_seconds"`
	CPUSeconds              float64  `json:"cpu_seconds"`
	EventsPerSecond         float64  `json:"events_per_second"`
	EventsPerCoreSecond     float64  `json:"events_per_core_second"`
	BaselineWallSeconds     float64  `json:"baseline_wall_seconds"`
	BaselineEventsPerSecond float64  `json:"baseline_events_per_second"`
	BaselineOutputRows      int64    `json:"baseline_output_rows"`
	CostRatio               float64  `json:"cost_ratio"`
	P50LatencyMS            *float64 `json:"p50_latency_ms"`
	P99LatencyMS            *float64 `json:"p99_latency_ms"`
	PeakRSSBytes            int64    `json:"peak_rss_bytes"`
	PeakGoHeapBytes         uint64   `json:"peak_go_heap_bytes"`
	GOMAXPROCS              int      `json:"gomaxprocs"`
	EngineAllocatedBytes    uint64   `json:"engine_allocated_bytes"`
}

func benchNexmark(ctx context.Context, query string, events int64, parallelism int, seed, rate int64) (*benchResult, error) {
	if events <= 0 {
		return nil, fmt.Errorf("--events %d: must be positive (a benchmark needs a bounded run)", events)
	}
	if parallelism < 1 {
		return nil, fmt.Errorf("--parallelism %d: must be at least 1", parallelism)
	}
	data, err := examples.FS.ReadFile("nexmark/" + query + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("--query %q: no examples/nexmark/%s.yaml (have q0, q1, q2, q5, q7, q11)", query, query)
	}
	spec, err := manifest.Parse("examples/nexmark/"+query+".yaml", data)
	if err != nil {
		return nil, err
	}
	spec.Parallelism = int32(parallelism)
	var nxSpec *sabotv1.NexmarkSource
	for _, v := range spec.GetGraph().GetVertices() {
		v.Parallelism = 0
		if n := v.GetOperator().GetNexmark(); n != nil {
			n.Events, n.Seed = events, seed
			if rate > 0 {
				n.EventsPerSecond = rate
			}
			nxSpec = n
		}
	}
	if nxSpec == nil {
		return nil, fmt.Errorf("examples/nexmark/%s.yaml has no nexmark source", query)
	}
	graph, err := jobgraph.Resolve(spec)
	if err != nil {
		return nil, err
	}
	cfg := nexmark.Config{Seed: seed, NumEvents: events, EventsPerSecond: nxSpec.GetEventsPerSecond()}

	res := &benchResult{Query: query, Events: events, Parallelism: parallelism, GOMAXPROCS: runtime.GOMAXPROCS(0),
		EventsPerSecondSetting: cfg.EventsPerSecond}

	// Baseline first, on a quiet heap: the answer computed by a plain loop.
	runtime.GC()
	start := time.Now()
	res.BaselineOutputRows, err = baselineNexmark(query, cfg)
	if err != nil {
		return nil, err
	}
	res.BaselineWallSeconds = time.Since(start).Seconds()
	res.BaselineEventsPerSecond = float64(events) / res.BaselineWallSeconds

	// The engine: the manifest's graph on the runtime; the blackhole sink
	// discards, so rows are counted at the sink's input (Config.SinkRows).
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	var sinkRows atomic.Int64
	var latency sabotrt.LatencyHistogram
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuSeconds()
	start = time.Now()
	err = sabotrt.Run(ctx, sabotrt.Config{
		JobID:       "bench-nexmark-" + query,
		Attempt:     1,
		Graph:       graph,
		SinkRows:    &sinkRows,
		SinkLatency: &latency,
	})
	res.OutputRows = sinkRows.Load()
	if latency.Count() > 0 {
		p50 := float64(latency.Quantile(0.5)) / 1e6
		p99 := float64(latency.Quantile(0.99)) / 1e6
		res.P50LatencyMS, res.P99LatencyMS = &p50, &p99
	}
	res.WallSeconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuSeconds() - cpu0
	runtime.ReadMemStats(&ms1)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	res.EngineAllocatedBytes = ms1.TotalAlloc - ms0.TotalAlloc
	res.PeakGoHeapBytes = ms1.HeapSys
	res.PeakRSSBytes = peakRSS()
	res.EventsPerSecond = float64(events) / res.WallSeconds
	if res.CPUSeconds > 0 {
		res.EventsPerCoreSecond = float64(events) / res.CPUSeconds
	}
	res.CostRatio = res.EventsPerSecond / res.BaselineEventsPerSecond
	if res.OutputRows != res.BaselineOutputRows {
		return nil, fmt.Errorf("engine produced %d rows but the baseline %d: the benchmark's answers differ", res.OutputRows, res.BaselineOutputRows)
	}
	return res, nil
}

// baselineNexmark computes the query with the nexmark package's reference
// loops, touching every output field so the work cannot be skipped, and
// returns the number of output rows.
func baselineNexmark(query string, cfg nexmark.Config) (int64, error) {
	var rows int64
	var sink int64
	var err error
	switch query {
	case "q0":
		err = nexmark.ReferenceQ0(cfg, func(r *nexmark.Q0Row) {
			rows++
			sink += r.Auction ^ r.Bidder ^ r.Price ^ int64(len(r.Extra))
		})
	case "q1":
		var f float64
		err = nexmark.ReferenceQ1(cfg, func(r *nexmark.Q1Row) {
			rows++
			f += r.Price
			sink += r.Auction ^ r.Bidder ^ int64(len(r.Extra))
		})
		sink += int64(f)
	case "q2":
		err = nexmark.ReferenceQ2(cfg, func(r nexmark.Q2Row) {
			rows++
			sink += r.Auction ^ r.Price
		})
	case "q5":
		err = nexmark.ReferenceQ5(cfg, func(r nexmark.Q5Row) {
			rows++
			sink += r.Auction ^ r.Num ^ r.WindowStart ^ r.WindowEnd
		})
	case "q7":
		err = nexmark.ReferenceQ7(cfg, func(r *nexmark.Q7Row) {
			rows++
			sink += r.Auction ^ r.Price ^ r.Bidder ^ r.DateTime ^ r.WindowEnd ^ int64(len(r.Extra))
		})
	case "q11":
		err = nexmark.ReferenceQ11(cfg, func(r nexmark.Q11Row) {
			rows++
			sink += r.Bidder ^ r.BidCount ^ r.SessionStart ^ r.SessionEnd
		})
	default:
		return 0, fmt.Errorf("no baseline for %s", query)
	}
	runtime.KeepAlive(sink)
	return rows, err
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// peakRSS is the process's peak resident set (Linux reports KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

func printBench(w io.Writer, format string, r *benchResult) error {
	if format == "json" {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "query\t%s (parallelism %d, GOMAXPROCS %d)\n", r.Query, r.Parallelism, r.GOMAXPROCS)
	fmt.Fprintf(tw, "events\t%d (output rows %d)\n", r.Events, r.OutputRows)
	fmt.Fprintf(tw, "engine\t%.2f s wall, %.2f s CPU: %.0f events/s, %.0f events/s per core\n", r.WallSeconds, r.CPUSeconds, r.EventsPerSecond, r.EventsPerCoreSecond)
	fmt.Fprintf(tw, "baseline\t%.2f s: %.0f events/s (hand-written single-threaded loop)\n", r.BaselineWallSeconds, r.BaselineEventsPerSecond)
	fmt.Fprintf(tw, "engine/baseline\t%.2f\n", r.CostRatio)
	if r.P50LatencyMS != nil {
		fmt.Fprintf(tw, "latency p50/p99\t%.3f / %.3f ms (per batch: source began producing it → sink received it)\n", *r.P50LatencyMS, *r.P99LatencyMS)
	}
	fmt.Fprintf(tw, "peak RSS\t%.1f MiB (Go heap %.1f MiB)\n", float64(r.PeakRSSBytes)/(1<<20), float64(r.PeakGoHeapBytes)/(1<<20))
	return tw.Flush()
}

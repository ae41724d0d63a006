package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// exchangeBenchOptions are bench exchange's flags.
type exchangeBenchOptions struct {
	rows        int64
	parallelism int
	costUS      int
	slowFor     time.Duration
	// share, when set (internal), makes this process one worker of the
	// distributed run: "sender" or "receiver".
	share    string
	peerAddr string
	output   string
}

func newBenchExchangeCmd(g *globals) *cobra.Command {
	var o exchangeBenchOptions
	cmd := &cobra.Command{
		Use:   "exchange",
		Short: "Measure the network exchange: throughput between two worker processes against one process, and the sender's memory with a slow consumer",
		Long: "bench exchange runs sequence of --rows rows → k = value % 1000 → (hash exchange on k) →\n" +
			"count-per-key → blackhole at --parallelism, twice in the same run:\n\n" +
			"  local    every subtask in this process (the in-process exchange),\n" +
			"  network  the sources (and the map chained to them) in one child worker process,\n" +
			"           the counting subtasks in another; every row crosses the loopback HTTP/2\n" +
			"           exchange (Arrow IPC frames, credit-based flow control).\n\n" +
			"The ratio is network rows/s over local rows/s. Then a slow consumer: an unbounded source,\n" +
			"the count costs --cost-us per row (busy loop), for --slow-for; the sending process samples\n" +
			"its Go heap in use every 50 ms. Unthrottled, the sources would produce the local rate's\n" +
			"rows (reported as bytes); the peak must instead stay near what the credits allow (per\n" +
			"channel QueueCapacity batches in flight).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.share != "" {
				return runExchangeShare(cmd.Context(), o, cmd.OutOrStdout())
			}
			return runExchangeBench(cmd.Context(), o, cmd)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.rows, "rows", 20_000_000, "rows of the throughput runs")
	f.IntVar(&o.parallelism, "parallelism", 2, "parallelism of every vertex")
	f.IntVar(&o.costUS, "cost-us", 50, "slow consumer: microseconds of CPU per row in the count")
	f.DurationVar(&o.slowFor, "slow-for", 10*time.Second, "length of the slow-consumer run (its source is unbounded)")
	f.StringVarP(&o.output, "output", "o", "table", "table or json")
	f.StringVar(&o.share, "share", "", "internal: run one share of the network run (sender|receiver)")
	f.StringVar(&o.peerAddr, "peers", "", "internal: sender address,receiver address")
	_ = f.MarkHidden("share")
	_ = f.MarkHidden("peers")
	return cmd
}

// exchangeGraph is the bench job: sequence [0, rows) → map k → hash on k →
// count-per-key (costUS per row) → blackhole.
func exchangeGraph(rows int64, p int, costUS int) (*jobgraph.Graph, error) {
	var end *int64
	if rows >= 0 {
		last := rows - 1
		end = &last
	}
	cfg := map[string]string{}
	if costUS > 0 {
		cfg["cost_us"] = strconv.Itoa(costUS)
	}
	return jobgraph.Resolve(&sabotv1.JobSpec{Name: "bench-exchange", Parallelism: int32(p), Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "src", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: end}}}},
			{Id: "keys", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{
				Columns: []*sabotv1.NamedExpression{{Name: "k", Expr: "value % 1000"}, {Name: "value", Expr: "value"}}}}}},
			{Id: "count", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Process{Process: &sabotv1.ProcessFunction{
				Name: runtime.CountPerKeyFunction, Config: cfg,
				Output: []*sabotv1.Column{{Name: "key", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING}, {Name: "count", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64}}}}}},
			{Id: "sink", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{
			{From: "src", To: "keys", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
			{From: "keys", To: "count", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"k"}},
			{From: "count", To: "sink", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
		},
	}})
}

// shareResult is what a child share reports (one JSON line).
type shareResult struct {
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	PeakHeapMB float64 `json:"peak_heap_mb"`
	BaseHeapMB float64 `json:"base_heap_mb"`
}

// exchangeResult is one bench exchange run.
type exchangeResult struct {
	Rows              int64   `json:"rows"`
	Parallelism       int     `json:"parallelism"`
	LocalRowsPerSec   float64 `json:"local_rows_per_sec"`
	NetworkRowsPerSec float64 `json:"network_rows_per_sec"`
	Ratio             float64 `json:"ratio"`
	SlowRows          int64   `json:"slow_rows"`
	SlowCostUS        int     `json:"slow_cost_us"`
	UnthrottledMB     float64 `json:"unthrottled_mb"`
	SlowRowsPerSec    float64 `json:"slow_rows_per_sec"`
	SenderBaseHeapMB  float64 `json:"sender_base_heap_mb"`
	SenderPeakHeapMB  float64 `json:"sender_peak_heap_mb"`
	SenderSeconds     float64 `json:"sender_seconds"`
}

func runExchangeBench(ctx context.Context, o exchangeBenchOptions, cmd *cobra.Command) error {
	res := exchangeResult{Rows: o.rows, Parallelism: o.parallelism, SlowCostUS: o.costUS}
	// Local: every subtask here.
	g, err := exchangeGraph(o.rows, o.parallelism, 0)
	if err != nil {
		return err
	}
	var rows atomic.Int64
	start := time.Now()
	if err := runtime.Run(ctx, runtime.Config{JobID: "bench-local", Attempt: 1, Graph: g, SinkRows: &rows}); err != nil {
		return fmt.Errorf("local run: %w", err)
	}
	res.LocalRowsPerSec = float64(rows.Load()) / time.Since(start).Seconds()
	if rows.Load() != o.rows {
		return fmt.Errorf("local run: %d rows at the sinks, want %d", rows.Load(), o.rows)
	}

	// Network: two child processes.
	snd, rcv, err := runExchangeShares(ctx, o, o.rows, 0, 0)
	if err != nil {
		return err
	}
	if rcv.Rows != o.rows {
		return fmt.Errorf("network run: %d rows at the sinks, want %d", rcv.Rows, o.rows)
	}
	res.NetworkRowsPerSec = float64(rcv.Rows) / max(rcv.Seconds, snd.Seconds)
	res.Ratio = res.NetworkRowsPerSec / res.LocalRowsPerSec

	// Slow consumer: the sender's memory.
	snd, rcv, err = runExchangeShares(ctx, o, -1, o.costUS, o.slowFor)
	if err != nil {
		return err
	}
	res.SlowRows = rcv.Rows
	res.SlowRowsPerSec = float64(rcv.Rows) / rcv.Seconds
	res.SenderBaseHeapMB, res.SenderPeakHeapMB, res.SenderSeconds = snd.BaseHeapMB, snd.PeakHeapMB, snd.Seconds
	// Two int64 columns (k, value) a row.
	res.UnthrottledMB = res.LocalRowsPerSec * snd.Seconds * 16 / (1 << 20)

	out := cmd.OutOrStdout()
	if o.output == "json" {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "exchange  %d rows, parallelism %d, sequence → map → hash → count-per-key → blackhole\n", res.Rows, res.Parallelism)
	fmt.Fprintf(out, "  local (one process)          %12.0f rows/s\n", res.LocalRowsPerSec)
	fmt.Fprintf(out, "  network (two processes)      %12.0f rows/s   ratio %.2f\n", res.NetworkRowsPerSec, res.Ratio)
	fmt.Fprintf(out, "slow consumer  %d µs/row, %.1f s: %d rows (%.0f rows/s); unthrottled the sources would have made %.0f MiB;\n"+
		"               sender's Go heap in use %.1f MiB before, peak %.1f MiB\n",
		res.SlowCostUS, res.SenderSeconds, res.SlowRows, res.SlowRowsPerSec, res.UnthrottledMB, res.SenderBaseHeapMB, res.SenderPeakHeapMB)
	return nil
}

// runExchangeShares runs the job as two child processes of this binary:
// the sender (sources and the chained map) and the receiver (counts).
// rows < 0 makes the source unbounded; the shares then stop after
// duration.
func runExchangeShares(ctx context.Context, o exchangeBenchOptions, rows int64, costUS int, duration time.Duration) (shareResult, shareResult, error) {
	self, err := os.Executable()
	if err != nil {
		return shareResult{}, shareResult{}, err
	}
	// The listeners are made here and handed to the children (fd 3), so
	// each knows the other's address before either starts and no port
	// can be taken in between.
	var addrs []string
	var files []*os.File
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return shareResult{}, shareResult{}, err
		}
		f, err := ln.(*net.TCPListener).File()
		_ = ln.Close() // f holds its own descriptor of the socket
		if err != nil {
			return shareResult{}, shareResult{}, err
		}
		addrs = append(addrs, ln.Addr().String())
		files = append(files, f)
	}
	peers := strings.Join(addrs, ",")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	results := make([]shareResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, share := range []string{"sender", "receiver"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := exec.CommandContext(ctx, self, "bench", "exchange", "--share", share, "--peers", peers,
				"--rows", strconv.FormatInt(rows, 10), "--parallelism", strconv.Itoa(o.parallelism), "--cost-us", strconv.Itoa(costUS),
				"--slow-for", duration.String())
			c.Stderr = os.Stderr
			c.ExtraFiles = []*os.File{files[i]}
			b, err := c.Output()
			if err != nil {
				errs[i] = fmt.Errorf("%s share: %w", share, err)
				cancel() // the other share would wait for its peer
				return
			}
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				if err := json.Unmarshal(sc.Bytes(), &results[i]); err == nil {
					return
				}
			}
			errs[i] = fmt.Errorf("%s share printed no result: %q", share, b)
		}()
	}
	wg.Wait()
	return results[0], results[1], errors.Join(errs...)
}

// runExchangeShare is one child: it serves its exchange endpoint, runs its
// share and prints a shareResult.
func runExchangeShare(ctx context.Context, o exchangeBenchOptions, out interface{ Write([]byte) (int, error) }) error {
	addrs := strings.Split(o.peerAddr, ",")
	if len(addrs) != 2 {
		return fmt.Errorf("--peers: want sender,receiver addresses")
	}
	self := 0
	if o.share == "receiver" {
		self = 1
	}
	g, err := exchangeGraph(o.rows, o.parallelism, o.costUS)
	if err != nil {
		return err
	}
	// The parent's listener for this share, as fd 3.
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("exchange share: listener from the parent: %w", err)
	}
	// Warnings (a stream that failed) go to stderr, which the parent shows.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("share", o.share)
	netx := runtime.NewNetwork(runtime.NetworkOptions{Logger: logger})
	coord := runtime.NewCoordination(nil, nil)
	mux := http.NewServeMux()
	mux.Handle(netx.Handler())
	mux.Handle(coord.Handler())
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protos, ReadHeaderTimeout: 10 * time.Second,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000}}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-served; netx.Close() }()

	// Sources and their chained map on the sender; counts (and the sink
	// chained to them) on the receiver.
	names := []string{"sender", "receiver"}
	var placement []*clusterv1.Placement
	var mine []*clusterv1.SubtaskRef
	for _, v := range g.Vertices {
		w := 1
		if v.ID == "src" || v.ID == "keys" {
			w = 0
		}
		for s := range v.Parallelism {
			placement = append(placement, &clusterv1.Placement{VertexId: v.ID, Subtask: int32(s), WorkerId: names[w], Address: "http://" + addrs[w]})
			if w == self {
				lo, hi := jobgraph.KeyGroupRange(g.MaxParallelism, v.Parallelism, s)
				mine = append(mine, &clusterv1.SubtaskRef{VertexId: v.ID, Subtask: int32(s), Parallelism: int32(v.Parallelism),
					KeyGroupStart: int32(lo), KeyGroupEnd: int32(hi)})
			}
		}
	}
	var ms goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
			var m goruntime.MemStats
			goruntime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	var rows atomic.Int64
	start := time.Now()
	runCtx := ctx
	if o.rows < 0 {
		// The sender stops after slowFor; the receiver ends when its
		// streams do (its own deadline is only a guard).
		d := o.slowFor
		if o.share == "receiver" {
			d += 30 * time.Second
		}
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	err = runtime.Run(runCtx, runtime.Config{JobID: "bench-exchange", Attempt: 1, Graph: g, SinkRows: &rows,
		Placement: placement, Subtasks: mine, Self: names[self], Coordinator: names[0], Network: netx, Coordination: coord})
	elapsed := time.Since(start)
	stopSampling()
	<-sampled
	switch {
	case err == nil:
	case o.rows < 0 && o.share == "sender" && errors.Is(err, context.DeadlineExceeded):
	case o.rows < 0 && o.share == "receiver":
		// Its input ended with the sender: the stream error is expected.
	default:
		return err
	}
	return json.NewEncoder(out).Encode(shareResult{Rows: rows.Load(), Seconds: elapsed.Seconds(),
		BaseHeapMB: float64(base) / (1 << 20), PeakHeapMB: float64(peak.Load()) / (1 << 20)})
}

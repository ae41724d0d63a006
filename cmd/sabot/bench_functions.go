package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sabotdev/sabot/gateway"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/platform"
	sabotsdk "github.com/sabotdev/sabot/sdk/go"
	"github.com/sabotdev/sabot/worker/function"
	sabotrt "github.com/sabotdev/sabot/worker/runtime"
)

// bench functions measures the serverless path of Sabot with the counter
// function (internal/testfn/counter: a running count per key in a Value
// state) on a platform started in this process (etcd, gateway, scheduler,
// one worker), in three parts:
//
//   - invoke: Invoke through the gateway on loopback by C concurrent
//     clients, each on its own key, for --duration per (mode, C): replies
//     uncommitted (as soon as the function ran) and committed (after the
//     checkpoint holding the effect; the function's own job checkpoints
//     every 250 ms, so this mode measures mostly the interval).
//   - baseline: the same executable (the deployed artifact) run by the
//     worker's own function host (worker/function.Host) and called directly
//     over the function protocol: a Session per client, one Call per
//     request carrying one invoked message and the key's count as eager
//     state, as the worker sends it, so the function does the same work.
//     Ratios are Sabot uncommitted over this baseline.
//   - stream: sequence of --rows rows → k = value % --keys as a string →
//     key_by k → counter → blackhole, without checkpoints, once with the
//     function registered with max_batch 256 (the default) and once with
//     max_batch 1: rows/s from RUNNING to FINISHED, and rows per CPU-second
//     of this process and its children (the function process is a child of
//     the in-process worker). max_batch bounds invocations per call, and an
//     invocation carries all of its key's rows in an input batch: with
//     1000 keys and 1024-row batches, "unbatched" is about one row a call.
//
// Measuring:
//
//   - Job states are followed through an etcd watch on the job's record
//     (no polling), and each transition is timed when its notification
//     arrives; CPU is read at the same moments.
//   - CPU is cpuTotal: getrusage of this process and of its reaped
//     children plus /proc's count for the function processes still
//     running. Waiting for the function process to be reaped instead
//     would add about a second (it exits that long after its job ends)
//     and the CPU of whatever polls for it.
//   - Each redeploy with a new max_batch finds no job running the
//     function (the previous stream job FINISHED), so the gateway makes it
//     a job of its own, as on the first deploy; the benchmark waits for it
//     to run and cancels it, so that its checkpoints (every 250 ms) do not
//     run during the measurement. The first own job serves the invoke
//     part and is cancelled before the baseline.
//   - In committed mode a client's next request follows the checkpoint
//     that released its previous reply, so closed-loop clients wait about
//     a whole interval (250 ms), not half of one.

// Defaults and fixed settings of bench functions.
const (
	// fnBenchName is the function's name (its Describe's).
	fnBenchName = "counter"
	// fnBenchModule is the module holding the counter's source.
	fnBenchModule = "github.com/sabotdev/sabot"
	// fnBenchSource is the counter's package within the module.
	fnBenchSource = "internal/testfn/counter"
	// fnBenchCallTimeout bounds one request of the invoke and baseline
	// parts: far above any latency, so only a stuck platform reaches it.
	fnBenchCallTimeout = 30 * time.Second
	// fnBenchJobTimeout bounds every wait for a job state.
	fnBenchJobTimeout = 10 * time.Minute
	// fnBenchMaxLatencies caps the latencies kept per client and run; the
	// percentiles of a longer run come from its first fnBenchMaxLatencies.
	fnBenchMaxLatencies = 1 << 20
	// fnBenchMaxSocket is the longest unix socket path Linux binds.
	fnBenchMaxSocket = 107
	// fnBenchAdd is the payload of a counting request (any op but "get"
	// counts).
	fnBenchAdd = `{"op":"add"}`
)

// functionsBenchOptions are bench functions' flags.
type functionsBenchOptions struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	rows        int64
	keys        int64
	batches     []int
	functionDir string
	dir         string
	parts       []string
	cpuProfile  string
	// verify binds the function's output to a file sink instead of the
	// blackhole and checks every key's counts after each stream run
	// (tests; it adds the sink's cost to the measurement).
	verify bool
}

func newBenchFunctionsCmd(g *globals) *cobra.Command {
	var o functionsBenchOptions
	cmd := &cobra.Command{
		Use:   "functions",
		Short: "Measure serverless functions: Invoke latency and throughput against calling the function process directly, and streamed rows per core with and without batching",
		Long: "bench functions starts a platform in this process (embedded etcd, gateway, scheduler, one\n" +
			"worker; data in a scratch directory removed at the end), deploys the counter function\n" +
			"(internal/testfn/counter: a running count per key) with the SDK, which runs go build, and\n" +
			"measures three things:\n\n" +
			"  invoke    --concurrency clients, each on its own key, call Invoke through the gateway on\n" +
			"            loopback for --duration per run, after --warmup: replies uncommitted (as soon as\n" +
			"            the function ran) and committed (after the checkpoint holding the effect; the\n" +
			"            function's job checkpoints every 250 ms, which dominates this mode). Every\n" +
			"            reply must carry the key's next count.\n" +
			"  baseline  the same executable, run by the worker's function host and called directly\n" +
			"            over the function protocol (a session per client, one call per request with\n" +
			"            the key's count as eager state, as the worker sends it). Ratios are Sabot\n" +
			"            uncommitted over the baseline: latency ×, throughput ×.\n" +
			"  stream    sequence of --rows rows → k = value % --keys (as a string) → key_by k →\n" +
			"            counter → blackhole, no checkpoints, once per --max-batch (the function\n" +
			"            redeployed with that limit: invocations per call to the process). Rows/s is\n" +
			"            from RUNNING to FINISHED; per core is rows per CPU-second of this process and\n" +
			"            its children (the function process). The ratio is batched over unbatched.\n\n" +
			"Needs the repository's source (the go command builds the function): run it from the\n" +
			"module, or point --function-dir at the counter's directory. Durations are wall-clock;\n" +
			"with -o json the result is one JSON line.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cpuProfile != "" {
				f, err := os.Create(o.cpuProfile)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := benchFunctions(cmd.Context(), o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return printFunctionsBench(cmd.OutOrStdout(), g.output, res)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measured invoke and baseline run")
	f.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured requests before each invoke and baseline run")
	f.IntSliceVar(&o.concurrency, "concurrency", []int{1, 16}, "concurrent clients of the invoke and baseline runs, one run each")
	f.Int64Var(&o.rows, "rows", 50_000, "rows of each stream run")
	f.Int64Var(&o.keys, "keys", 1000, "distinct keys of the stream runs")
	f.IntSliceVar(&o.batches, "max-batch", []int{256, 1}, "the function's max_batch (invocations per call) of each stream run; the ratio is the first over the last")
	f.StringVar(&o.functionDir, "function-dir", "", "the counter function's directory (default: internal/testfn/counter of this module, found from the source or `go list -m`)")
	f.StringVar(&o.dir, "dir", "", "where to make the scratch directory for the platform's data, removed at the end; keep it short, function processes' sockets go under it (default: the system's temporary directory)")
	f.StringSliceVar(&o.parts, "parts", []string{"invoke", "baseline", "stream"}, "parts to run: invoke, baseline, stream (ratios need invoke and baseline)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (platform and clients; not the function process) to this file")
	f.BoolVar(&o.verify, "verify", false, "internal: bind the function's output to a file sink and check every key's counts after each stream run")
	_ = f.MarkHidden("verify")
	return cmd
}

// functionsBenchResult is what bench functions reports; -o json prints it
// as one line.
type functionsBenchResult struct {
	GOMAXPROCS int `json:"gomaxprocs"`
	NumCPU     int `json:"num_cpu"`
	// Invoke holds the Sabot runs (uncommitted, then committed) and the
	// baseline runs, each once per concurrency.
	Invoke []invokeRunStats `json:"invoke"`
	// Ratios compare Sabot uncommitted with the baseline, per concurrency.
	Ratios []invokeRatio    `json:"ratios"`
	Stream []streamRunStats `json:"stream"`
	// StreamRatio is the first stream run's rows per CPU-second over the
	// last's (batched over unbatched with the default --max-batch);
	// StreamRateRatio the same of rows/s.
	StreamRatio     float64  `json:"stream_ratio"`
	StreamRateRatio float64  `json:"stream_rate_ratio"`
	Notes           []string `json:"notes"`
}

// invokeRunStats is one invoke or baseline run.
type invokeRunStats struct {
	// Path is "sabot" (Invoke through the gateway) or "baseline" (the
	// function protocol, directly).
	Path string `json:"path"`
	// Mode is "uncommitted" or "committed" for sabot, "direct" for the
	// baseline.
	Mode              string  `json:"mode"`
	Concurrency       int     `json:"concurrency"`
	Requests          int64   `json:"requests"`
	Seconds           float64 `json:"seconds"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50MS             float64 `json:"p50_ms"`
	P99MS             float64 `json:"p99_ms"`
	MaxMS             float64 `json:"max_ms"`
	// CPUPerRequestUS is CPU time per measured request of this process
	// (client, gateway, worker; for the baseline the client alone) and
	// the function process, in µs.
	CPUPerRequestUS float64 `json:"cpu_per_request_us"`
	// CheckedReplies counts the replies (warm-up included) that carried
	// the key's expected next count; any other reply fails the benchmark.
	CheckedReplies int64 `json:"checked_replies"`
}

// invokeRatio is Sabot uncommitted over the baseline at one concurrency:
// latencies (higher is slower) and throughput (lower is slower).
type invokeRatio struct {
	Concurrency     int     `json:"concurrency"`
	P50Ratio        float64 `json:"p50_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
	ThroughputRatio float64 `json:"throughput_ratio"`
}

// streamRunStats is one stream run.
type streamRunStats struct {
	MaxBatch int   `json:"max_batch"`
	Rows     int64 `json:"rows"`
	Keys     int64 `json:"keys"`
	// WallSeconds is from the job's RUNNING to FINISHED (from the deploy
	// when RUNNING was never observed: see Notes); DeploySeconds from the
	// DeployJob call to FINISHED.
	WallSeconds   float64 `json:"wall_seconds"`
	DeploySeconds float64 `json:"deploy_seconds"`
	// CPUSeconds is user+system time of this process and its children
	// (cpuTotal) over WallSeconds.
	CPUSeconds       float64 `json:"cpu_seconds"`
	RowsPerSecond    float64 `json:"rows_per_second"`
	RowsPerCPUSecond float64 `json:"rows_per_cpu_second"`
	// CheckedRows is, with --verify, the counts read back from the file
	// sink (each key's counts 1..n exactly once); 0 otherwise.
	CheckedRows int64 `json:"checked_rows"`
}

func (o functionsBenchOptions) validate() error {
	var errs []error
	if o.duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %v: must be positive", o.duration))
	}
	if o.warmup < 0 {
		errs = append(errs, fmt.Errorf("--warmup %v: must not be negative", o.warmup))
	}
	if len(o.concurrency) == 0 {
		errs = append(errs, errors.New("--concurrency: give at least one"))
	}
	for _, c := range o.concurrency {
		if c < 1 {
			errs = append(errs, fmt.Errorf("--concurrency %d: must be at least 1", c))
		}
	}
	if o.rows <= 0 {
		errs = append(errs, fmt.Errorf("--rows %d: must be positive (a stream run must finish)", o.rows))
	}
	if o.keys <= 0 {
		errs = append(errs, fmt.Errorf("--keys %d: must be positive", o.keys))
	}
	if len(o.batches) == 0 {
		errs = append(errs, errors.New("--max-batch: give at least one"))
	}
	for _, b := range o.batches {
		if b < 1 {
			errs = append(errs, fmt.Errorf("--max-batch %d: must be at least 1", b))
		}
	}
	for _, p := range o.parts {
		if !slices.Contains([]string{"invoke", "baseline", "stream"}, p) {
			errs = append(errs, fmt.Errorf("--parts %q: expected invoke, baseline or stream", p))
		}
	}
	return errors.Join(errs...)
}

func (o functionsBenchOptions) runs(part string) bool { return slices.Contains(o.parts, part) }

// benchFunctions runs the three parts (see the comment at the top of the
// file). Warnings of the platform go to logw.
func benchFunctions(ctx context.Context, o functionsBenchOptions, logw io.Writer) (res *functionsBenchResult, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	fnDir, err := counterSourceDir(ctx, o.functionDir)
	if err != nil {
		return nil, err
	}
	// Short names: the function processes' sockets live under the
	// platform's data directory, and a socket path may not exceed 107
	// bytes.
	scratch, err := os.MkdirTemp(o.dir, "sbf-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	if scratch, err = filepath.Abs(scratch); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(scratch, "p")
	// The worker's socket: <data>/functions/0/run/<sha256[:12]>-<n>.sock.
	if sock := filepath.Join(dataDir, "functions", "0", "run", "0123456789ab-999.sock"); len(sock) > fnBenchMaxSocket {
		return nil, fmt.Errorf("bench functions: --dir %s is too deep: the function process's socket (%s) would exceed %d bytes", o.dir, sock, fnBenchMaxSocket)
	}

	// Warnings while the benchmark runs; none from the shutdown, where
	// cancelled etcd calls are expected.
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	p, err := platform.Start(ctx, platform.Config{DataDir: dataDir, Addr: "127.0.0.1:0", Workers: 1, Logger: log})
	if err != nil {
		return nil, err
	}
	defer func() {
		level.Set(slog.LevelError + 1)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if cerr := p.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("bench functions: platform close: %w", cerr)
		}
	}()
	c := sabotsdk.NewClient(p.URL())
	defer c.Close()
	b := &fnBench{o: o, p: p, c: c, fnDir: fnDir, dataDir: dataDir, scratch: scratch,
		res: &functionsBenchResult{GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU()}}

	// The deploy makes the function a job of its own (no job runs it).
	reg, err := c.Deploy(ctx, fnDir)
	if err != nil {
		return nil, err
	}
	own, err := b.ownJob(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := b.waitJob(ctx, own, nil); err != nil {
		return nil, err
	}
	if o.runs("invoke") {
		for _, mode := range []string{"uncommitted", "committed"} {
			for _, cc := range o.concurrency {
				st, err := b.invokeRun(ctx, own, mode, cc)
				if err != nil {
					return nil, err
				}
				b.res.Invoke = append(b.res.Invoke, st)
			}
		}
	}
	// The own job checkpoints every 250 ms: stop it, so that neither the
	// baseline nor the stream runs share the machine with it.
	if err := b.cancelJob(ctx, own); err != nil {
		return nil, err
	}

	if o.runs("baseline") {
		if err := b.baseline(ctx, reg); err != nil {
			return nil, err
		}
	}
	if o.runs("invoke") && o.runs("baseline") {
		for _, cc := range o.concurrency {
			s, bl := b.find("sabot", "uncommitted", cc), b.find("baseline", "direct", cc)
			b.res.Ratios = append(b.res.Ratios, invokeRatio{Concurrency: cc,
				P50Ratio: s.P50MS / bl.P50MS, P99Ratio: s.P99MS / bl.P99MS, ThroughputRatio: s.RequestsPerSecond / bl.RequestsPerSecond})
		}
	}

	if o.runs("stream") {
		for _, mb := range o.batches {
			st, err := b.streamRun(ctx, mb)
			if err != nil {
				return nil, err
			}
			b.res.Stream = append(b.res.Stream, st)
		}
		first, last := b.res.Stream[0], b.res.Stream[len(b.res.Stream)-1]
		b.res.StreamRatio = first.RowsPerCPUSecond / last.RowsPerCPUSecond
		b.res.StreamRateRatio = first.RowsPerSecond / last.RowsPerSecond
	}
	return b.res, nil
}

// fnBench is one run of bench functions.
type fnBench struct {
	o       functionsBenchOptions
	p       *platform.Platform
	c       *sabotsdk.Client
	fnDir   string
	dataDir string
	scratch string
	res     *functionsBenchResult
}

// cpu is cpuTotal of the scratch directory: this process and the
// function processes.
func (b *fnBench) cpu() float64 { return cpuTotal(b.scratch) }

func (b *fnBench) note(format string, args ...any) {
	b.res.Notes = append(b.res.Notes, fmt.Sprintf(format, args...))
}

func (b *fnBench) find(path, mode string, cc int) invokeRunStats {
	for _, r := range b.res.Invoke {
		if r.Path == path && r.Mode == mode && r.Concurrency == cc {
			return r
		}
	}
	panic(fmt.Sprintf("bench functions: no %s %s run at concurrency %d", path, mode, cc))
}

// ownJob returns the id of the function's own job: the one job labelled
// with the function that is not ending.
func (b *fnBench) ownJob(ctx context.Context) (string, error) {
	jobs, err := b.c.ListJobs(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, j := range jobs {
		st := j.GetStatus().GetState()
		if j.GetSpec().GetLabels()[gateway.FunctionLabel] == fnBenchName && !cluster.IsTerminal(st) && st != sabotv1.JobState_JOB_STATE_CANCELING {
			ids = append(ids, j.GetId())
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("bench functions: after deploying %s, %d jobs of its own run (%v); want 1", fnBenchName, len(ids), ids)
	}
	return ids[0], nil
}

// jobTimes are when a job's states were first observed.
type jobTimes struct {
	running, end time.Time
	// cpuRunning and cpuEnd are b.cpu() when RUNNING and the end were
	// observed.
	cpuRunning, cpuEnd float64
	job                *sabotv1.Job
}

// waitJob follows the job through an etcd watch (no polling: the
// observation times are the watch's notifications) until it is RUNNING
// or, with until set, until it reaches a terminal state. A FAILED job, a
// job ending before RUNNING was wanted, or a job that restarted is an
// error.
func (b *fnBench) waitJob(ctx context.Context, id string, until *sabotv1.JobState) (jobTimes, error) {
	ctx, cancel := context.WithTimeout(ctx, fnBenchJobTimeout)
	defer cancel()
	var t jobTimes
	seen := func(j *sabotv1.Job, at time.Time) (bool, error) {
		st := j.GetStatus()
		t.job = j
		if st.GetAttempt() > 1 {
			return false, fmt.Errorf("bench functions: job %s (%s) restarted (attempt %d): %s", id, j.GetSpec().GetName(), st.GetAttempt(), st.GetMessage())
		}
		switch s := st.GetState(); {
		case s == sabotv1.JobState_JOB_STATE_RUNNING:
			if t.running.IsZero() {
				t.running, t.cpuRunning = at, b.cpu()
			}
			return until == nil, nil
		case s == sabotv1.JobState_JOB_STATE_FAILED:
			return false, fmt.Errorf("bench functions: job %s (%s) failed: %s", id, j.GetSpec().GetName(), st.GetMessage())
		case cluster.IsTerminal(s):
			if until == nil || s != *until {
				return false, fmt.Errorf("bench functions: job %s (%s) ended %s: %s", id, j.GetSpec().GetName(), s, st.GetMessage())
			}
			t.end, t.cpuEnd = at, b.cpu()
			return true, nil
		}
		return false, nil
	}
	cli := b.p.Etcd()
	key := cluster.JobKey(id)
	rec, err := cluster.Get(ctx, cli, key, cluster.NewJob)
	if err != nil {
		return t, fmt.Errorf("bench functions: job %s: %w", id, err)
	}
	if done, err := seen(rec.Value, time.Now()); done || err != nil {
		return t, err
	}
	for resp := range cli.Watch(ctx, key, clientv3.WithRev(rec.ModRevision+1)) {
		now := time.Now()
		if err := resp.Err(); err != nil {
			return t, fmt.Errorf("bench functions: watching job %s: %w", id, err)
		}
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				return t, fmt.Errorf("bench functions: job %s was deleted", id)
			}
			j := new(sabotv1.Job)
			if err := proto.Unmarshal(ev.Kv.Value, j); err != nil {
				return t, fmt.Errorf("bench functions: job %s: %w", id, err)
			}
			if done, err := seen(j, now); done || err != nil {
				return t, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		state := "not RUNNING"
		if t.job != nil {
			state = t.job.GetStatus().GetState().String()
		}
		return t, fmt.Errorf("bench functions: waiting for job %s (%s): %w", id, state, err)
	}
	return t, fmt.Errorf("bench functions: the watch of job %s ended", id)
}

// cancelJob cancels a job and waits until it is CANCELED.
func (b *fnBench) cancelJob(ctx context.Context, id string) error {
	if _, err := b.c.CancelJob(ctx, id); err != nil {
		return err
	}
	canceled := sabotv1.JobState_JOB_STATE_CANCELED
	_, err := b.waitJob(ctx, id, &canceled)
	return err
}

// invokeRun is one Sabot run: cc clients Invoke the function's own job,
// each on its own key, checking that every reply is the key's next count.
func (b *fnBench) invokeRun(ctx context.Context, jobID, mode string, cc int) (invokeRunStats, error) {
	opts := []sabotsdk.InvokeOption{sabotsdk.WithJob(jobID)}
	committed := mode == "committed"
	if !committed {
		opts = append(opts, sabotsdk.Uncommitted())
	}
	payload := []byte(fnBenchAdd)
	call := func(ctx context.Context, client int, n int64) error {
		key := fmt.Sprintf("%s-%d-%d", mode, cc, client)
		r, err := b.c.InvokeResult(ctx, fnBenchName, key, payload, opts...)
		if err != nil {
			return err
		}
		if committed && !r.Committed {
			return fmt.Errorf("bench functions: invoke %s (committed): the reply is not committed", key)
		}
		return checkCount(key, r.Payload, n)
	}
	st, err := drive(ctx, cc, b.o.warmup, b.o.duration, b.cpu, func(client int) (func(context.Context, int64) error, func(), error) {
		return func(ctx context.Context, n int64) error { return call(ctx, client, n) }, nil, nil
	})
	st.Path, st.Mode = "sabot", mode
	return st, err
}

// baseline opens the deployed artifact with the worker's function host
// and runs the direct calls at each concurrency.
func (b *fnBench) baseline(ctx context.Context, reg *sabotv1.Function) error {
	store, err := blob.OpenFile(filepath.Join(b.dataDir, "blobs"))
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()
	h := function.NewHost(function.HostConfig{Blobs: store, Dir: filepath.Join(b.scratch, "b")})
	defer h.Close()
	conn, err := h.Open(ctx, reg)
	if err != nil {
		return fmt.Errorf("bench functions: baseline: %w", err)
	}
	defer conn.Close()
	for _, cc := range b.o.concurrency {
		// Each client: its own session and key, and the key's count as the
		// worker would hold it (the bytes of the last Set).
		open := func(client int) (func(context.Context, int64) error, func(), error) {
			sess, err := conn.Session(ctx)
			if err != nil {
				return nil, nil, err
			}
			key := fmt.Sprintf("baseline-%d-%d", cc, client)
			payload := []byte(fnBenchAdd)
			var count []byte
			var id uint64
			return func(ctx context.Context, n int64) error {
				id++
				inv := &sabotv1.Invocation{Function: fnBenchName, Key: []byte(key), Events: []*sabotv1.Event{{Kind: &sabotv1.Event_Message{
					Message: &sabotv1.Message{Payload: payload, ReplyId: "r" + strconv.FormatUint(id, 10)}}}}}
				if count != nil {
					inv.State = []*sabotv1.StateValue{{State: "count", Value: &sabotv1.StateValue_Bytes{Bytes: count}}}
				}
				res, err := sess.Call(ctx, &sabotv1.Call{Id: id, Invocations: []*sabotv1.Invocation{inv},
					WatermarkMs: sabotrt.MinWatermark, ProcessingTimeMs: time.Now().UnixMilli()}, nil)
				if err != nil {
					return err
				}
				r := res.GetResults()[0]
				if r.GetError() != "" {
					return fmt.Errorf("bench functions: baseline %s: %s", key, r.GetError())
				}
				for _, m := range r.GetMutations() {
					if m.GetState() == "count" {
						count = m.GetSet()
					}
				}
				if len(r.GetReplies()) != 1 {
					return fmt.Errorf("bench functions: baseline %s: %d replies, want 1", key, len(r.GetReplies()))
				}
				return checkCount(key, r.GetReplies()[0].GetPayload(), n)
			}, sess.Close, nil
		}
		st, err := drive(ctx, cc, b.o.warmup, b.o.duration, b.cpu, open)
		st.Path, st.Mode = "baseline", "direct"
		if err != nil {
			return err
		}
		b.res.Invoke = append(b.res.Invoke, st)
	}
	return nil
}

// fnCountReply is the counter's reply.
type fnCountReply struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// checkCount checks that payload is key's count n.
func checkCount(key string, payload []byte, n int64) error {
	var r fnCountReply
	if err := json.Unmarshal(payload, &r); err != nil {
		return fmt.Errorf("bench functions: reply for %s: %q: %w", key, payload, err)
	}
	if r.Key != key || r.Count != n {
		return fmt.Errorf("bench functions: reply for %s is %s; want count %d", key, payload, n)
	}
	return nil
}

// drive runs cc clients: each sends requests back to back for warmup,
// then for duration with every latency recorded. open makes a client's
// call (and what closes it, if anything); n counts a client's requests
// from 1. The first error stops every client.
func drive(ctx context.Context, cc int, warmup, duration time.Duration, cpu func() float64,
	open func(client int) (call func(ctx context.Context, n int64) error, closeFn func(), err error),
) (invokeRunStats, error) {
	st := invokeRunStats{Concurrency: cc}
	calls := make([]func(context.Context, int64) error, cc)
	for i := range cc {
		call, closeFn, err := open(i)
		if err != nil {
			return st, err
		}
		if closeFn != nil {
			defer closeFn()
		}
		calls[i] = call
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	measureFrom, until := start.Add(warmup), start.Add(warmup+duration)
	lat := make([][]time.Duration, cc)
	counts := make([]int64, cc)
	ends := make([]time.Time, cc)
	// The CPU time at the end of the warm-up; the clients are measured
	// from then.
	cpu0 := make(chan float64, 1)
	measuring := time.AfterFunc(warmup, func() { cpu0 <- cpu() })
	defer measuring.Stop()
	var wg sync.WaitGroup
	for i := range cc {
		wg.Go(func() {
			var n int64
			for {
				t0 := time.Now()
				if !t0.Before(until) || ctx.Err() != nil {
					break
				}
				n++
				cctx, ccancel := context.WithTimeout(ctx, fnBenchCallTimeout)
				err := calls[i](cctx, n)
				ccancel()
				t1 := time.Now()
				if err != nil {
					cancel(err)
					return
				}
				if !t0.Before(measureFrom) && len(lat[i]) < fnBenchMaxLatencies {
					lat[i] = append(lat[i], t1.Sub(t0))
				}
			}
			counts[i], ends[i] = n, time.Now()
		})
	}
	wg.Wait()
	cpu1 := cpu()
	if err := context.Cause(ctx); err != nil {
		return st, err
	}
	// Without an error the clients ran past the warm-up: the timer fired.
	cpuMeasured := cpu1 - <-cpu0
	var all []time.Duration
	last := until
	for i := range cc {
		all = append(all, lat[i]...)
		st.CheckedReplies += counts[i]
		if ends[i].After(last) {
			last = ends[i]
		}
	}
	if len(all) == 0 {
		return st, fmt.Errorf("bench functions: no request completed within --duration %v at concurrency %d", duration, cc)
	}
	slices.Sort(all)
	st.Requests = int64(len(all))
	st.Seconds = last.Sub(measureFrom).Seconds()
	st.RequestsPerSecond = float64(st.Requests) / st.Seconds
	st.P50MS, st.P99MS = ms(quantile(all, 0.5)), ms(quantile(all, 0.99))
	st.MaxMS = ms(all[len(all)-1])
	st.CPUPerRequestUS = cpuMeasured / float64(st.Requests) * 1e6
	return st, nil
}

// quantile is the nearest-rank q-quantile of sorted d.
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// streamRun redeploys the function with max_batch mb (a job of its own
// comes with it and is cancelled), then runs the stream job to FINISHED.
func (b *fnBench) streamRun(ctx context.Context, mb int) (streamRunStats, error) {
	st := streamRunStats{MaxBatch: mb, Rows: b.o.rows, Keys: b.o.keys}
	// No job runs the function now (the previous one FINISHED), so the
	// deploy makes it a job of its own again, which would checkpoint
	// throughout the run.
	if _, err := b.c.Deploy(ctx, b.fnDir, sabotsdk.DeployLimits(&sabotv1.FunctionLimits{MaxBatch: int32(mb)})); err != nil {
		return st, err
	}
	own, err := b.ownJob(ctx)
	if err != nil {
		return st, err
	}
	// Cancelled once running: a job cancelled while its function process
	// starts leaves a warning that the start failed.
	if _, err := b.waitJob(ctx, own, nil); err != nil {
		return st, err
	}
	if err := b.cancelJob(ctx, own); err != nil {
		return st, err
	}

	outDir := filepath.Join(b.scratch, fmt.Sprintf("out-%d", mb))
	spec, err := manifest.Parse("bench-functions.yaml", []byte(streamManifest(mb, b.o.rows, b.o.keys, b.o.verify, outDir)))
	if err != nil {
		return st, err
	}
	cpu0 := b.cpu()
	deployed := time.Now()
	job, err := b.c.DeployJob(ctx, spec)
	if err != nil {
		return st, err
	}
	finished := sabotv1.JobState_JOB_STATE_FINISHED
	t, err := b.waitJob(ctx, job.GetId(), &finished)
	if err != nil {
		return st, err
	}
	start, cpuStart := t.running, t.cpuRunning
	if start.IsZero() {
		start, cpuStart = deployed, cpu0
		b.note("stream max_batch %d: RUNNING was never observed (the job finished first); measured from the deploy", mb)
	}
	st.WallSeconds = t.end.Sub(start).Seconds()
	st.DeploySeconds = t.end.Sub(deployed).Seconds()
	st.CPUSeconds = t.cpuEnd - cpuStart
	st.RowsPerSecond = float64(b.o.rows) / st.WallSeconds
	if st.CPUSeconds > 0 {
		st.RowsPerCPUSecond = float64(b.o.rows) / st.CPUSeconds
	}
	if b.o.verify {
		if st.CheckedRows, err = checkStreamCounts(outDir, b.o.rows, b.o.keys); err != nil {
			return st, fmt.Errorf("bench functions: stream max_batch %d: %w", mb, err)
		}
	}
	return st, nil
}

// streamManifest is the stream job: sequence [0, rows) → k → counter →
// blackhole (with verify: a file sink in outDir).
func streamManifest(mb int, rows, keys int64, verify bool, outDir string) string {
	sink := "blackhole: {}"
	if verify {
		sink = "file: {path: " + strconv.Quote(outDir) + "}"
	}
	return fmt.Sprintf(`name: bench-functions-batch-%d
parallelism: 1
steps:
  - id: numbers
    sequence: {start: 0, end: %d}
  - id: keys
    map: {k: "CAST(value %% %d AS STRING)"}
  - id: count
    key_by: [k]
    function:
      name: %s
      outputs:
        counts: {key: string, count: int64}
  - id: out
    inputs: [count.counts]
    %s
`, mb, rows-1, keys, fnBenchName, sink)
}

// checkStreamCounts reads the file sink's rows and checks that every key
// k has the counts 1..n_k exactly once, n_k being how many values of
// [0, rows) are k modulo keys. It returns the rows read.
func checkStreamCounts(dir string, rows, keys int64) (int64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no output files in %s", dir)
	}
	seen := map[string]map[int64]bool{}
	var read int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return read, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r fnCountReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				_ = f.Close()
				return read, fmt.Errorf("%s: %q: %w", name, sc.Bytes(), err)
			}
			if seen[r.Key] == nil {
				seen[r.Key] = map[int64]bool{}
			}
			if seen[r.Key][r.Count] {
				_ = f.Close()
				return read, fmt.Errorf("key %s: count %d twice", r.Key, r.Count)
			}
			seen[r.Key][r.Count] = true
			read++
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return read, err
		}
	}
	for k := range min(keys, rows) {
		key := strconv.FormatInt(k, 10)
		want := rows / keys
		if k < rows%keys {
			want++
		}
		got := seen[key]
		if int64(len(got)) != want {
			return read, fmt.Errorf("key %s: %d counts, want %d", key, len(got), want)
		}
		for n := int64(1); n <= want; n++ {
			if !got[n] {
				return read, fmt.Errorf("key %s: count %d missing", key, n)
			}
		}
	}
	if read != rows {
		return read, fmt.Errorf("%d counts, want %d (keys outside 0..%d?)", read, rows, keys-1)
	}
	return read, nil
}

// childProc is a child process of this one, from /proc.
type childProc struct {
	PID    int
	Zombie bool
	// CPU is its user+system time so far, in seconds.
	CPU float64
}

// clockTicks is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTicks = 100

// childProcs lists this process's children that run an executable under
// dir, or have exited and await reaping (a zombie has no executable to
// tell whose it is).
func childProcs(dir string) ([]childProc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	var out []childProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid … utime stime …": comm may hold anything
		// but ends at the last ')'; utime and stime are fields 14 and 15.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 || f[1] != self {
			continue
		}
		c := childProc{PID: pid, Zombie: f[0] == "Z"}
		if !c.Zombie {
			exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
			if err != nil || !strings.HasPrefix(exe, dir+string(filepath.Separator)) {
				continue
			}
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		c.CPU = float64(ut+st) / clockTicks
		out = append(out, c)
	}
	return out, nil
}

// cpuTotal is the user+system CPU time, in seconds, of this process, its
// reaped children (RUSAGE_CHILDREN), and its unreaped ones that ran from
// dir (childProcs): the function processes count while they run, and a
// process reaped between two readings moves from the last term to the
// second with the same time, so a difference of two readings is the CPU
// used in between. Off Linux the last term is missing.
func cpuTotal(dir string) float64 {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return 0
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		return 0
	}
	total := tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
	if runtime.GOOS != "linux" {
		return total
	}
	procs, _ := childProcs(dir)
	for _, c := range procs {
		total += c.CPU
	}
	return total
}

// counterSourceDir finds the counter function's directory: the flag's, or
// internal/testfn/counter of this module, located from this file's path
// (a build with the source at hand) or `go list -m` (run in the module).
func counterSourceDir(ctx context.Context, flag string) (string, error) {
	isPkg := func(dir string) bool {
		fi, err := os.Stat(filepath.Join(dir, "main.go"))
		return err == nil && !fi.IsDir()
	}
	if flag != "" {
		if !isPkg(flag) {
			return "", fmt.Errorf("--function-dir %s: no main.go there; point it at %s of %s", flag, fnBenchSource, fnBenchModule)
		}
		return filepath.Abs(flag)
	}
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(fnBenchSource))
		if isPkg(dir) {
			return filepath.Clean(dir), nil
		}
		tried = append(tried, dir)
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err == nil {
		if path, root, ok := strings.Cut(strings.TrimSpace(string(out)), " "); ok && path == fnBenchModule {
			dir := filepath.Join(root, filepath.FromSlash(fnBenchSource))
			if isPkg(dir) {
				return dir, nil
			}
			tried = append(tried, dir)
		}
	}
	return "", fmt.Errorf("bench functions: the counter function's source (%s of %s) is not found (tried %v, and `go list -m` in the working directory); run from the repository (go run ./cmd/sabot bench functions) or give --function-dir",
		fnBenchSource, fnBenchModule, tried)
}

func printFunctionsBench(w io.Writer, format string, r *functionsBenchResult) error {
	if format == "json" {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	fmt.Fprintf(w, "functions  counter (%s), platform in process with 1 worker; GOMAXPROCS %d, %d CPUs\n", fnBenchSource, r.GOMAXPROCS, r.NumCPU)
	if len(r.Invoke) > 0 {
		fmt.Fprintf(w, "\ninvoke: each client on its own key, requests back to back; CPU is this process's and the function process's\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "path\tclients\trequests\treq/s\tp50 ms\tp99 ms\tmax ms\tCPU µs/req\n")
		for _, s := range r.Invoke {
			name := "sabot " + s.Mode
			if s.Path == "baseline" {
				name = "baseline (direct call)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.0f\n", name, s.Concurrency, s.Requests, s.RequestsPerSecond, s.P50MS, s.P99MS, s.MaxMS, s.CPUPerRequestUS)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "\nsabot uncommitted / baseline (latency: higher is slower; throughput: lower is slower)\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "clients\tp50 ×\tp99 ×\treq/s ×\n")
		for _, q := range r.Ratios {
			fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.3f\n", q.Concurrency, q.P50Ratio, q.P99Ratio, q.ThroughputRatio)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Stream) > 0 {
		s0, last := r.Stream[0], r.Stream[len(r.Stream)-1]
		fmt.Fprintf(w, "\nstream: %d rows over %d keys, sequence → k → key_by k → counter → blackhole, no checkpoints\n", s0.Rows, s0.Keys)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "max_batch\twall s\trows/s\tCPU s\trows/CPU-s\tdeploy→finished s\n")
		for _, s := range r.Stream {
			fmt.Fprintf(tw, "%d\t%.2f\t%.0f\t%.2f\t%.0f\t%.2f\n", s.MaxBatch, s.WallSeconds, s.RowsPerSecond, s.CPUSeconds, s.RowsPerCPUSecond, s.DeploySeconds)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "max_batch %d / %d: rows per CPU-second × %.2f, rows/s × %.2f\n", s0.MaxBatch, last.MaxBatch, r.StreamRatio, r.StreamRateRatio)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

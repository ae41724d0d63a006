package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/spf13/cobra"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/jobgraph"
	sabotrt "github.com/sabotdev/sabot/worker/runtime"
)

// bench checkpoints runs its jobs in this process on the real runtime, with
// checkpoints written to a file blob store and committed to an in-memory
// committer (benchCommitter) in place of etcd. Three parts:
//
//   - throughput: the counting job without checkpoints, then at each
//     interval, one run after the other; ratios are against the first.
//   - state: the state job fills keyed state of a given size; its first
//     (full) checkpoint, then, in a run restored from it, a checkpoint after
//     1 % of the keys changed. Those runs use a fake clock and a checkpoint
//     interval longer than any run, and the benchmark advances the clock
//     when it wants a checkpoint: the coordinator only triggers on its
//     interval, and the checkpoint must come exactly after the fill.
//   - recovery: the state part's filled state restored into the state job
//     with checkpoints every 200 ms, cancelled after a few (a kill: nothing
//     is flushed or committed on the way out), then restored in a new run.

// Defaults and constants of bench checkpoints.
const (
	// stateSums is how many SUM aggregations the state job keeps per key
	// besides its COUNT: 32 accumulators of 24 bytes, about 0.8 KB of state
	// per key before compression. Each sums its own column, a different
	// multiple of the key, so pebble's compression does not see repeats.
	stateSums = 31
	// stateVertex is the keyed vertex of both jobs.
	stateVertex = "count"
	// farInterval is the checkpoint interval of runs on a fake clock: no
	// advance but the benchmark's own reaches it.
	farInterval = 24 * time.Hour
	// farTimeout is their checkpoint timeout, beyond every advance.
	farTimeout = 30 * 24 * time.Hour
	// changedPerMille of the keys change between the two checkpoints of the
	// state part (1 %).
	changedPerMille = 10
	// calibrationKeys bounds the keys of the run that measures how many
	// checkpointed bytes a key of the state job takes.
	calibrationKeys = 20_000
	// recoveryInterval is the recovery part's checkpoint interval.
	recoveryInterval = 200 * time.Millisecond
	// tickStart is where the keep-alive source of the state part starts:
	// far below zero, so its rows never pass the "value >= 0" filter.
	tickStart = -(1 << 62)
)

// checkpointBenchOptions are bench checkpoints' flags.
type checkpointBenchOptions struct {
	events      int64
	keys        int64
	rate        int64
	backends    []string
	stateMiB    []int
	intervals   []time.Duration
	parallelism int
	parts       []string
	recoveryCPs int
	dir         string
	cpuProfile  string
}

func newBenchCheckpointsCmd(g *globals) *cobra.Command {
	var o checkpointBenchOptions
	cmd := &cobra.Command{
		Use:   "checkpoints",
		Short: "Measure what checkpoints cost: throughput against a run without them, duration against state size, recovery time",
		Long: "bench checkpoints runs jobs in this process on the dataflow runtime, checkpointing to a blob\n" +
			"store on local disk (a file store under --dir) and committing to memory in place of etcd.\n" +
			"Every part runs once per --backend:\n\n" +
			"  throughput  sequence of --events rows → k = value % --keys → keyed COUNT → blackhole,\n" +
			"              first without checkpoints (the baseline), then with each --intervals, one\n" +
			"              run after the other; ratio is events/s over the baseline's (0.93: 7 %\n" +
			"              overhead). A run shorter than its interval has no checkpoint, and says so.\n" +
			"  state       keyed state of each --state-mb (MiB as checkpointed: COUNT and 31 SUMs per\n" +
			"              key; a small first run measures the bytes per key): the first, full\n" +
			"              checkpoint once every key is in state, then, in a run restored from it,\n" +
			"              a checkpoint after 1 % of the keys changed. Pebble uploads only SST\n" +
			"              files the previous checkpoint lacks; heap uploads all state each time.\n" +
			"              On pebble the full checkpoint waits until the fill's compactions are\n" +
			"              done; the second still uploads what compaction rewrote since, notably\n" +
			"              the base level once the first checkpoint's flush is merged into it.\n" +
			"  recovery    the state part's state restored into the state job over the same keys,\n" +
			"              checkpointing every 200ms; after --recovery-checkpoints it is cancelled\n" +
			"              like a kill (nothing flushed or committed); a new run restores the latest.\n" +
			"              Reported from the new run's start: the restore (until the keyed operator\n" +
			"              is open) and the first row at the sink. A cluster adds the worker lease\n" +
			"              TTL (default 5s) before the loss is noticed, then scheduling and\n" +
			"              deploying the new attempt.\n\n" +
			"Durations are wall-clock, trigger to completion. With -o json the result is one JSON line.",
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
			res, err := benchCheckpoints(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printCheckpointBench(cmd.OutOrStdout(), g.output, res)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.events, "events", 0, "rows of each throughput run; 0: 20,000,000 on heap, 1,000,000 on pebble, whose keyed state is about 30x slower (compare ratios within a backend)")
	f.Int64Var(&o.keys, "keys", 1_000_000, "distinct keys of the throughput runs")
	f.Int64Var(&o.rate, "events-per-second", 0, "pace the sources of the throughput and recovery runs (0: as fast as the job goes); paced, ratios only show whether the job keeps up")
	f.StringSliceVar(&o.backends, "backend", []string{"heap"}, "state backends, each running every part: heap, pebble, or heap,pebble")
	f.IntSliceVar(&o.stateMiB, "state-mb", []int{100}, "keyed state sizes in MiB for the state and recovery parts, e.g. 100,1000")
	f.DurationSliceVar(&o.intervals, "intervals", []time.Duration{200 * time.Millisecond, time.Second, 10 * time.Second}, "checkpoint intervals of the throughput part (at least 10ms)")
	f.IntVar(&o.parallelism, "parallelism", 1, "parallelism of every vertex")
	f.StringSliceVar(&o.parts, "parts", []string{"throughput", "state", "recovery"}, "parts to run: throughput, state, recovery")
	f.IntVar(&o.recoveryCPs, "recovery-checkpoints", 3, "checkpoints the recovery part's first run completes before it is killed")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole benchmark to this file")
	f.StringVar(&o.dir, "dir", "", "where to make the scratch directory holding the blob stores and pebble state, removed at the end (default: the system's temporary directory)")
	return cmd
}

// checkpointBenchResult is what bench checkpoints reports; -o json prints it
// as one line.
type checkpointBenchResult struct {
	GOMAXPROCS  int                  `json:"gomaxprocs"`
	Parallelism int                  `json:"parallelism"`
	Keys        int64                `json:"keys"`
	Throughput  []checkpointRunStats `json:"throughput"`
	State       []stateRunStats      `json:"state"`
	Recovery    []recoveryRunStats   `json:"recovery"`
	Notes       []string             `json:"notes"`
	// PeakRSSBytes is the process's peak resident set over all parts.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// checkpointRunStats is one throughput run.
type checkpointRunStats struct {
	Backend         string  `json:"backend"`
	IntervalMS      int64   `json:"interval_ms"` // 0: no checkpoints (the baseline)
	Events          int64   `json:"events"`
	WallSeconds     float64 `json:"wall_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// Ratio is EventsPerSecond over the baseline's.
	Ratio     float64 `json:"ratio"`
	SinkRows  int64   `json:"sink_rows"`
	Completed int     `json:"checkpoints_completed"`
	// Failed counts checkpoints aborted while the job ran; CutOff says one
	// was in flight when the bounded job finished (its history says
	// FAILED: context canceled).
	Failed int  `json:"checkpoints_failed"`
	CutOff bool `json:"last_cut_off"`
	// Over the completed checkpoints; null when none completed.
	MeanDurationMS       *float64 `json:"mean_duration_ms"`
	MaxDurationMS        *float64 `json:"max_duration_ms"`
	MeanSizeBytes        *float64 `json:"mean_size_bytes"`
	MeanIncrementalBytes *float64 `json:"mean_incremental_bytes"`
	Note                 string   `json:"note,omitempty"`
}

// checkpointStat is one completed checkpoint.
type checkpointStat struct {
	ID               int64   `json:"id"`
	DurationMS       float64 `json:"duration_ms"`
	SizeBytes        int64   `json:"size_bytes"`
	IncrementalBytes int64   `json:"incremental_bytes"`
}

// stateRunStats is one state size of the state part.
type stateRunStats struct {
	Backend   string `json:"backend"`
	TargetMiB int    `json:"target_mib"`
	Keys      int64  `json:"keys"`
	// BytesPerKey is what the calibration run measured.
	BytesPerKey float64 `json:"bytes_per_key"`
	FillSeconds float64 `json:"fill_seconds"`
	// SettleSeconds is how long pebble compacted after the fill, before the
	// full checkpoint (0 on heap).
	SettleSeconds float64        `json:"settle_seconds"`
	Full          checkpointStat `json:"full"`
	// RestoreSeconds is from the start of the second run until its keyed
	// operator was open (restored).
	RestoreSeconds float64        `json:"restore_seconds"`
	ChangedKeys    int64          `json:"changed_keys"`
	Changed        checkpointStat `json:"changed"`
	// UploadedFraction is the changed checkpoint's incremental bytes over
	// the full checkpoint's size.
	UploadedFraction float64 `json:"uploaded_fraction"`
}

// recoveryRunStats is one state size of the recovery part.
type recoveryRunStats struct {
	Backend   string `json:"backend"`
	TargetMiB int    `json:"target_mib"`
	Keys      int64  `json:"keys"`
	// RunSeconds is how long the first run ran, until the kill; Completed
	// and MeanDurationMS are its checkpoints.
	RunSeconds     float64 `json:"run_seconds"`
	Completed      int     `json:"checkpoints_completed"`
	MeanDurationMS float64 `json:"mean_checkpoint_duration_ms"`
	CheckpointID   int64   `json:"restored_checkpoint_id"`
	SizeBytes      int64   `json:"restored_size_bytes"`
	// CancelSeconds is cancel to Run returned in the first run (a killed
	// process skips it).
	CancelSeconds float64 `json:"cancel_seconds"`
	// RestoreSeconds and FirstRowSeconds are from the start of the second
	// run until every subtask of its keyed operator was open, and until the
	// first row reached the sink (with parallelism, possibly before).
	RestoreSeconds  float64 `json:"restore_seconds"`
	FirstRowSeconds float64 `json:"first_row_seconds"`
}

func (o *checkpointBenchOptions) validate() error {
	var errs []error
	if o.events < 0 {
		errs = append(errs, fmt.Errorf("--events %d: must not be negative (a benchmark needs a bounded run)", o.events))
	}
	if o.keys <= 0 {
		errs = append(errs, fmt.Errorf("--keys %d: must be positive", o.keys))
	}
	if o.rate < 0 {
		errs = append(errs, fmt.Errorf("--events-per-second %d: must not be negative", o.rate))
	}
	if o.parallelism < 1 || o.parallelism > jobgraph.DefaultMaxParallelism {
		errs = append(errs, fmt.Errorf("--parallelism %d: must be 1 to %d", o.parallelism, jobgraph.DefaultMaxParallelism))
	}
	if len(o.backends) == 0 {
		errs = append(errs, errors.New("--backend: name at least one of heap, pebble"))
	}
	for _, b := range o.backends {
		if _, err := backendOf(b); err != nil {
			errs = append(errs, err)
		}
	}
	for _, mb := range o.stateMiB {
		if mb <= 0 {
			errs = append(errs, fmt.Errorf("--state-mb %d: must be positive", mb))
		}
	}
	for _, iv := range o.intervals {
		if iv < 10*time.Millisecond || iv%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("--intervals %s: must be a whole number of milliseconds, at least 10ms", iv))
		}
	}
	if o.recoveryCPs < 1 {
		errs = append(errs, fmt.Errorf("--recovery-checkpoints %d: must be at least 1", o.recoveryCPs))
	}
	for _, p := range o.parts {
		if p != "throughput" && p != "state" && p != "recovery" {
			errs = append(errs, fmt.Errorf("--parts %q: expected throughput, state or recovery", p))
		}
	}
	return errors.Join(errs...)
}

func backendOf(name string) (sabotv1.StateBackend, error) {
	switch name {
	case "heap":
		return sabotv1.StateBackend_STATE_BACKEND_HEAP, nil
	case "pebble":
		return sabotv1.StateBackend_STATE_BACKEND_PEBBLE, nil
	default:
		return 0, fmt.Errorf("--backend %q: expected heap or pebble", name)
	}
}

// checkpointBench is one invocation's options and scratch directory.
type checkpointBench struct {
	checkpointBenchOptions
	root string
	// bytesPerKey caches calibrations by backend; states the filled states
	// by backend and size.
	bytesPerKey map[string]float64
	states      map[string]*filledState
}

func benchCheckpoints(ctx context.Context, o checkpointBenchOptions) (*checkpointBenchResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(o.dir, "sabot-bench-checkpoints-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	b := &checkpointBench{checkpointBenchOptions: o, root: root, bytesPerKey: map[string]float64{}, states: map[string]*filledState{}}
	defer func() {
		for _, f := range b.states {
			f.close()
		}
	}()
	res := &checkpointBenchResult{GOMAXPROCS: runtime.GOMAXPROCS(0), Parallelism: o.parallelism, Keys: o.keys,
		Throughput: []checkpointRunStats{}, State: []stateRunStats{}, Recovery: []recoveryRunStats{}, Notes: []string{}}
	if slices.Contains(o.parts, "throughput") {
		for _, be := range o.backends {
			runs, err := b.throughput(ctx, be)
			if err != nil {
				return nil, fmt.Errorf("throughput on %s: %w", be, err)
			}
			res.Throughput = append(res.Throughput, runs...)
		}
	}
	if slices.Contains(o.parts, "state") {
		for _, be := range o.backends {
			for _, mib := range o.stateMiB {
				r, err := b.stateSize(ctx, be, mib)
				if err != nil {
					return nil, fmt.Errorf("state of %d MiB on %s: %w", mib, be, err)
				}
				res.State = append(res.State, r)
			}
		}
	}
	if slices.Contains(o.parts, "recovery") {
		for _, be := range o.backends {
			for _, mib := range o.stateMiB {
				r, err := b.recovery(ctx, be, mib)
				if err != nil {
					return nil, fmt.Errorf("recovery of %d MiB on %s: %w", mib, be, err)
				}
				res.Recovery = append(res.Recovery, r)
			}
		}
		res.Notes = append(res.Notes, "recovery in a cluster adds the worker lease TTL (default 5s) before the lost worker is noticed, then scheduling and deploying the new attempt")
	}
	res.PeakRSSBytes = peakRSS()
	return res, nil
}

// --- Part 1: throughput -----------------------------------------------------

// eventsOn is --events, or its default on backend.
func (b *checkpointBench) eventsOn(backend string) int64 {
	switch {
	case b.events > 0:
		return b.events
	case backend == "pebble":
		return 1_000_000
	default:
		return 20_000_000
	}
}

// throughput runs the counting job without checkpoints and then at each
// interval.
func (b *checkpointBench) throughput(ctx context.Context, backend string) ([]checkpointRunStats, error) {
	var runs []checkpointRunStats
	for _, iv := range append([]time.Duration{0}, b.intervals...) {
		r, err := b.throughputRun(ctx, backend, iv)
		if err != nil {
			return nil, err
		}
		r.Ratio = 1
		if len(runs) > 0 {
			r.Ratio = r.EventsPerSecond / runs[0].EventsPerSecond
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func (b *checkpointBench) throughputRun(ctx context.Context, backend string, interval time.Duration) (checkpointRunStats, error) {
	r := checkpointRunStats{Backend: backend, IntervalMS: interval.Milliseconds(), Events: b.eventsOn(backend)}
	be, _ := backendOf(backend)
	p := int32(b.parallelism)
	spec := &sabotv1.JobSpec{Name: "bench-checkpoints-count", StateBackend: be, Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			sequenceVertex("seq", p, 0, ptrTo(r.Events-1), b.rate),
			{Id: "prep", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{
				Columns: []*sabotv1.NamedExpression{{Name: "k", Expr: fmt.Sprintf("value %% %d", b.keys)}},
			}}}},
			countVertex(p, 0),
			blackholeVertex(p),
		},
		Edges: []*sabotv1.Edge{
			{From: "seq", To: "prep", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
			{From: "prep", To: stateVertex, Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"k"}},
			{From: stateVertex, To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
		},
	}}
	if interval > 0 {
		spec.Checkpointing = &sabotv1.Checkpointing{IntervalMs: interval.Milliseconds()}
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return r, err
	}
	dir, err := os.MkdirTemp(b.root, "throughput-")
	if err != nil {
		return r, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	finished := &taskTimes{vertex: "out", state: sabotv1.TaskState_TASK_STATE_FINISHED, want: p}
	cfg := sabotrt.Config{JobID: fmt.Sprintf("bench-throughput-%s-%d", backend, r.IntervalMS), Attempt: 1, Graph: g,
		StateDir: filepath.Join(dir, "state"), OnTaskState: finished.observe}
	com := &benchCommitter{}
	if interval > 0 {
		store, err := blob.OpenFile(filepath.Join(dir, "store"))
		if err != nil {
			return r, err
		}
		defer func() { _ = store.Close() }()
		cfg.Checkpoints = &sabotrt.CheckpointOptions{Store: store, Committer: com}
	}

	freeMemory()
	j := startBenchJob(ctx, cfg)
	<-j.ended
	wall := time.Since(j.start)
	if j.err != nil {
		return r, j.err
	}
	r.WallSeconds = wall.Seconds()
	r.EventsPerSecond = float64(r.Events) / r.WallSeconds
	r.SinkRows = j.rows.Load()

	var (
		durs, sizes, incs []float64
		reasons           []string
	)
	sinksDone, _ := finished.at()
	for _, c := range com.history(1) {
		switch c.info.GetStatus() {
		case sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED:
			if c.ended.After(sinksDone) {
				// In flight when the job finished: the coordinator's
				// context ended under it.
				r.CutOff = true
				continue
			}
			r.Failed++
			if !slices.Contains(reasons, c.info.GetFailureReason()) {
				reasons = append(reasons, c.info.GetFailureReason())
			}
		case sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED:
			s := c.stat()
			durs = append(durs, s.DurationMS)
			sizes = append(sizes, float64(s.SizeBytes))
			incs = append(incs, float64(s.IncrementalBytes))
		default: // in progress when the job finished
		}
	}
	r.Completed = len(durs)
	if r.Completed > 0 {
		r.MeanDurationMS, r.MaxDurationMS = ptrTo(mean(durs)), ptrTo(slices.Max(durs))
		r.MeanSizeBytes, r.MeanIncrementalBytes = ptrTo(mean(sizes)), ptrTo(mean(incs))
	}
	switch {
	case interval > 0 && r.Completed == 0 && wall < interval:
		r.Note = fmt.Sprintf("the run (%.1fs) was shorter than the interval: no checkpoint; raise --events", wall.Seconds())
	case interval > 0 && r.Completed == 0:
		r.Note = "no checkpoint completed before the job finished"
	case interval > 0 && r.Completed < 3:
		r.Note = fmt.Sprintf("only %d checkpoint(s) in %.1fs: a rough figure", r.Completed, wall.Seconds())
	}
	if len(reasons) > 0 {
		r.Note = strings.TrimPrefix(r.Note+"; failed: "+strings.Join(reasons, "; "), "; ")
	}
	return r, nil
}

// --- Part 2: checkpoint duration against state size -------------------------

// filledState is keyed state of one size on one backend, filled and
// checkpointed once (fillAndCheckpoint) and then shared by the state and
// recovery parts, whose runs restore its latest checkpoint.
type filledState struct {
	backend     string
	jobID       string
	dir         string // holds store and stateDir
	store       *blob.FileStore
	com         *benchCommitter
	keys        int64
	bytesPerKey float64
	fill        fillResult
	attempt     int64 // the last run's
}

func (f *filledState) stateDir() string { return filepath.Join(f.dir, "state") }

func (f *filledState) close() {
	_ = f.store.Close()
	_ = os.RemoveAll(f.dir)
}

// filled returns the filled state of mib MiB on backend, filling it the
// first time.
func (b *checkpointBench) filled(ctx context.Context, backend string, mib int) (*filledState, error) {
	key := fmt.Sprintf("%s/%d", backend, mib)
	if f, ok := b.states[key]; ok {
		return f, nil
	}
	bpk, err := b.calibrate(ctx, backend, mib)
	if err != nil {
		return nil, err
	}
	f, err := b.newFilledState(backend, fmt.Sprintf("bench-state-%s-%d", backend, mib), keysFor(mib, bpk))
	if err != nil {
		return nil, err
	}
	f.bytesPerKey = bpk
	f.attempt = 1
	f.fill, err = b.fillAndCheckpoint(ctx, f, "fill", f.keys, fillSettled)
	if err != nil {
		f.close()
		return nil, fmt.Errorf("fill: %w", err)
	}
	b.states[key] = f
	return f, nil
}

func (b *checkpointBench) newFilledState(backend, jobID string, keys int64) (*filledState, error) {
	dir, err := os.MkdirTemp(b.root, jobID+"-")
	if err != nil {
		return nil, err
	}
	store, err := blob.OpenFile(filepath.Join(dir, "store"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &filledState{backend: backend, jobID: jobID, dir: dir, store: store, com: &benchCommitter{}, keys: keys}, nil
}

// calibrate returns the checkpointed bytes per key of the state job on
// backend, measured once per backend by filling a few keys.
func (b *checkpointBench) calibrate(ctx context.Context, backend string, mib int) (float64, error) {
	if bpk, ok := b.bytesPerKey[backend]; ok {
		return bpk, nil
	}
	// As many keys as a first guess (accumulators and key, uncompressed)
	// of the size asks, within bounds.
	keys := min(calibrationKeys, max(100, keysFor(mib, 24*(stateSums+1)+16)))
	f, err := b.newFilledState(backend, "bench-calibrate-"+backend, keys)
	if err != nil {
		return 0, err
	}
	defer f.close()
	f.attempt = 1
	fr, err := b.fillAndCheckpoint(ctx, f, "fill", keys, fillFresh)
	if err != nil {
		return 0, fmt.Errorf("calibrate: %w", err)
	}
	bpk := float64(fr.checkpoint.SizeBytes) / float64(keys)
	b.bytesPerKey[backend] = bpk
	return bpk, nil
}

// keysFor is the number of keys of bpk bytes that make mib MiB.
func keysFor(mib int, bpk float64) int64 {
	return int64(math.Ceil(float64(mib) * (1 << 20) / bpk))
}

// stateSize checkpoints state of about mib MiB once filled, restores it in
// a second run that changes 1 % of the keys, and checkpoints again.
func (b *checkpointBench) stateSize(ctx context.Context, backend string, mib int) (stateRunStats, error) {
	r := stateRunStats{Backend: backend, TargetMiB: mib}
	f, err := b.filled(ctx, backend, mib)
	if err != nil {
		return r, err
	}
	r.Keys, r.BytesPerKey, r.ChangedKeys = f.keys, f.bytesPerKey, max(1, f.keys*changedPerMille/1000)
	r.FillSeconds, r.SettleSeconds, r.Full = f.fill.fill.Seconds(), f.fill.settle.Seconds(), f.fill.checkpoint

	// The second run's source, named differently so that no restored
	// position ends it, emits keys 0..n-1 only; hash partitioning spreads
	// them over every key group, so over all of pebble's key space.
	f.attempt++
	changed, err := b.fillAndCheckpoint(ctx, f, "change", r.ChangedKeys, fillRestored)
	if err != nil {
		return r, fmt.Errorf("change 1 %% of the keys: %w", err)
	}
	r.RestoreSeconds, r.Changed = changed.opened.Seconds(), changed.checkpoint
	if r.Full.SizeBytes > 0 {
		r.UploadedFraction = float64(r.Changed.IncrementalBytes) / float64(r.Full.SizeBytes)
	}
	return r, nil
}

// fillResult is what one fillAndCheckpoint measured.
type fillResult struct {
	fill       time.Duration // run start to every key's row at the sink
	settle     time.Duration // then until pebble's compactions were done
	opened     time.Duration // run start to the keyed operator open
	checkpoint checkpointStat
}

// fillMode is how a fillAndCheckpoint run starts and checkpoints.
type fillMode int

const (
	// fillFresh starts from empty state and checkpoints once every key
	// is in.
	fillFresh fillMode = iota
	// fillSettled is fillFresh, but on pebble the checkpoint waits until
	// the fill's compactions are done, so that the next checkpoint does
	// not count the rest of the fill's compaction backlog as change.
	fillSettled
	// fillRestored restores the latest checkpoint first.
	fillRestored
)

// fillAndCheckpoint runs the state job of f as its next attempt, on a fake
// clock, with a source named source emitting keys 0..keys-1 and a
// keep-alive source. Once every key's row reached the sink it triggers one
// checkpoint, waits for it, and cancels the run.
func (b *checkpointBench) fillAndCheckpoint(ctx context.Context, f *filledState, source string, keys int64, mode fillMode) (fillResult, error) {
	var res fillResult
	be, _ := backendOf(f.backend)
	p := int32(b.parallelism)
	// The keep-alive source: once the fill source finished, a checkpoint
	// needs a running source to inject its barrier. Paced on the fake
	// clock at one row per subtask per second, it emits only when the
	// benchmark advances the clock, and the filter drops its rows.
	tick := sequenceVertex("tick", p, tickStart, nil, int64(p))
	spec := stateJobSpec(be, p, farInterval, "value", sequenceVertex(source, p, 0, ptrTo(keys-1), 0), tick)
	spec.Checkpointing.TimeoutMs = farTimeout.Milliseconds()
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return res, err
	}
	clk := clockwork.NewFakeClock()
	opened := &taskTimes{vertex: stateVertex, state: sabotv1.TaskState_TASK_STATE_RUNNING, want: p}
	cfg := sabotrt.Config{JobID: f.jobID, Attempt: f.attempt, Graph: g, Clock: clk, StateDir: f.stateDir(),
		OnTaskState: opened.observe,
		Checkpoints: &sabotrt.CheckpointOptions{Store: f.store, Committer: f.com}}
	if mode == fillRestored {
		if err := f.restoreInto(&cfg); err != nil {
			return res, err
		}
	}

	freeMemory()
	j := startBenchJob(ctx, cfg)
	defer func() { _ = j.stop() }()
	if err := j.waitFor(ctx, "every key reached the sink", 2*time.Millisecond, func() bool { return j.rows.Load() >= keys }); err != nil {
		return res, err
	}
	res.fill = time.Since(j.start)
	res.opened = opened.since(j.start)
	if mode == fillSettled && be == sabotv1.StateBackend_STATE_BACKEND_PEBBLE {
		if res.settle, err = settle(ctx, j, f.stateDir()); err != nil {
			return res, err
		}
	}
	c, err := checkpointNow(ctx, j, clk, f.com, f.attempt)
	if err != nil {
		return res, err
	}
	res.checkpoint = c.stat()
	return res, j.stop()
}

// restoreInto makes cfg restore f's latest checkpoint.
func (f *filledState) restoreInto(cfg *sabotrt.Config) error {
	md, retained := f.com.latest()
	if md == nil {
		return errors.New("no completed checkpoint to restore")
	}
	cfg.Checkpoints.Restore, cfg.Checkpoints.Retained = md, retained
	// The sources of earlier runs are not all in this one: their
	// positions are dropped.
	cfg.Checkpoints.AllowNonRestoredState = true
	return nil
}

// Settling: pebble's SST files under the state directory unchanged (names
// and sizes) for settleQuiet means its compactions are done; give up
// waiting after settleMax.
const (
	settleQuiet = time.Second
	settleMax   = 10 * time.Minute
)

// settle waits until pebble's SST files under dir stop changing and
// returns how long it waited.
func settle(ctx context.Context, j *benchJob, dir string) (time.Duration, error) {
	start := time.Now()
	last, since := "", start
	for time.Since(since) < settleQuiet && time.Since(start) < settleMax {
		cur, err := sstFiles(dir)
		if err != nil {
			return 0, err
		}
		if cur != last {
			last, since = cur, time.Now()
		}
		select {
		case <-j.ended:
			return 0, fmt.Errorf("job ended while pebble compacted: %w", j.endErr())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return since.Sub(start), nil
}

// sstFiles lists the SST files under dir with their sizes, outside the
// checkpoint directories (*.chk) the runtime hard-links them into.
func sstFiles(dir string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // removed meanwhile (a compaction input)
		case err != nil:
			return err
		case d.IsDir() && strings.HasSuffix(d.Name(), ".chk"):
			return filepath.SkipDir
		case !strings.HasSuffix(d.Name(), ".sst"):
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%d\n", path, info.Size())
		return nil
	})
	return b.String(), err
}

// checkpointNow triggers a checkpoint of run j on clk and waits until it
// completed. The run's interval is farInterval, so advancing clk by it
// triggers the coordinator; the paced keep-alive source takes the trigger
// between two rows, so small advances keep it emitting until it did. If
// the coordinator started its timer after the first advance (a very short
// fill), a second advance a second later reaches it.
func checkpointNow(ctx context.Context, j *benchJob, clk *clockwork.FakeClock, com *benchCommitter, attempt int64) (benchCheckpoint, error) {
	since := time.Now()
	clk.Advance(farInterval)
	advanced := since
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, ok := com.first(attempt, since)
		switch {
		case ok && c.info.GetStatus() == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED:
			return c, nil
		case ok && c.info.GetStatus() == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED:
			return c, fmt.Errorf("checkpoint %d failed: %s", c.info.GetId(), c.info.GetFailureReason())
		case !ok && time.Since(advanced) > time.Second:
			clk.Advance(farInterval)
			advanced = time.Now()
		}
		select {
		case <-j.ended:
			return benchCheckpoint{}, fmt.Errorf("job ended while waiting for a checkpoint: %w", j.endErr())
		case <-ctx.Done():
			return benchCheckpoint{}, ctx.Err()
		case <-tick.C:
		}
		clk.Advance(time.Second)
	}
}

// --- Part 3: recovery -------------------------------------------------------

// recovery restores the filled state of mib MiB into the state job with
// checkpoints every recoveryInterval and a source over all its keys, lets
// it complete --recovery-checkpoints checkpoints, cancels it, and restores
// a new run from the latest.
func (b *checkpointBench) recovery(ctx context.Context, backend string, mib int) (recoveryRunStats, error) {
	r := recoveryRunStats{Backend: backend, TargetMiB: mib}
	f, err := b.filled(ctx, backend, mib)
	if err != nil {
		return r, err
	}
	r.Keys = f.keys
	be, _ := backendOf(backend)
	p := int32(b.parallelism)
	spec := stateJobSpec(be, p, recoveryInterval, fmt.Sprintf("value %% %d", f.keys), sequenceVertex("seq", p, 0, nil, b.rate))
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return r, err
	}

	// The first run, until it completed enough checkpoints.
	f.attempt++
	first := f.attempt
	cfg := sabotrt.Config{JobID: f.jobID, Attempt: first, Graph: g, StateDir: f.stateDir(),
		Checkpoints: &sabotrt.CheckpointOptions{Store: f.store, Committer: f.com}}
	if err := f.restoreInto(&cfg); err != nil {
		return r, err
	}
	freeMemory()
	j := startBenchJob(ctx, cfg)
	defer func() { _ = j.stop() }()
	err = j.waitFor(ctx, fmt.Sprintf("%d checkpoints", b.recoveryCPs), 5*time.Millisecond, func() bool {
		return completed(f.com.history(first)) >= b.recoveryCPs
	})
	if err != nil {
		return r, err
	}
	r.RunSeconds = time.Since(j.start).Seconds()
	cancelled := time.Now()
	if err := j.stop(); err != nil {
		return r, err
	}
	r.CancelSeconds = time.Since(cancelled).Seconds()
	var durs []float64
	for _, c := range f.com.history(first) {
		if c.info.GetStatus() == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
			durs = append(durs, c.stat().DurationMS)
		}
	}
	r.Completed, r.MeanDurationMS = len(durs), mean(durs)

	// The second run, restored from the latest completed checkpoint.
	md, _ := f.com.latest()
	r.CheckpointID = md.GetCheckpointId()
	for _, s := range md.GetOperators() {
		r.SizeBytes += s.GetStateSize()
	}
	f.attempt++
	opened := &taskTimes{vertex: stateVertex, state: sabotv1.TaskState_TASK_STATE_RUNNING, want: p}
	cfg.Attempt, cfg.OnTaskState = f.attempt, opened.observe
	cfg.Checkpoints = &sabotrt.CheckpointOptions{Store: f.store, Committer: f.com}
	if err := f.restoreInto(&cfg); err != nil {
		return r, err
	}
	freeMemory()
	j2 := startBenchJob(ctx, cfg)
	defer func() { _ = j2.stop() }()
	if err := j2.waitFor(ctx, "the first row reached the sink", 500*time.Microsecond, func() bool { return j2.rows.Load() > 0 }); err != nil {
		return r, err
	}
	r.FirstRowSeconds = time.Since(j2.start).Seconds()
	// With parallelism, a subtask restored first may emit before another
	// finished restoring.
	if err := j2.waitFor(ctx, "every keyed subtask was open", time.Millisecond, func() bool { _, ok := opened.at(); return ok }); err != nil {
		return r, err
	}
	r.RestoreSeconds = opened.since(j2.start).Seconds()
	return r, j2.stop()
}

// completed counts the completed checkpoints of h.
func completed(h []benchCheckpoint) int {
	n := 0
	for _, c := range h {
		if c.info.GetStatus() == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
			n++
		}
	}
	return n
}

// --- Jobs ---------------------------------------------------------------------

// stateJobSpec is the state job: sources → filter value >= 0 → map (k =
// keyExpr and the summed columns) → hash by k → COUNT and stateSums SUMs
// per key → blackhole.
func stateJobSpec(backend sabotv1.StateBackend, p int32, interval time.Duration, keyExpr string, sources ...*sabotv1.Vertex) *sabotv1.JobSpec {
	cols := []*sabotv1.NamedExpression{{Name: "k", Expr: keyExpr}}
	for i := range stateSums {
		cols = append(cols, &sabotv1.NamedExpression{Name: fmt.Sprintf("c%d", i), Expr: fmt.Sprintf("(%s) * %d", keyExpr, multiplier(i))})
	}
	spec := &sabotv1.JobSpec{Name: "bench-checkpoints-state", StateBackend: backend,
		Checkpointing: &sabotv1.Checkpointing{IntervalMs: interval.Milliseconds()},
		Graph: &sabotv1.JobGraph{
			Vertices: append(sources,
				&sabotv1.Vertex{Id: "live", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{
					Filter: &sabotv1.FilterOperator{Condition: "value >= 0"},
				}}},
				&sabotv1.Vertex{Id: "prep", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{
					Map: &sabotv1.MapOperator{Columns: cols},
				}}},
				countVertex(p, stateSums),
				blackholeVertex(p),
			),
			Edges: []*sabotv1.Edge{
				{From: "live", To: "prep", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
				{From: "prep", To: stateVertex, Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"k"}},
				{From: stateVertex, To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
			},
		}}
	for _, s := range sources {
		spec.Graph.Edges = append(spec.Graph.Edges, &sabotv1.Edge{From: s.GetId(), To: "live", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD})
	}
	return spec
}

// multiplier is the i-th column's odd 62-bit multiplier (splitmix64 of
// i): products of keys wrap around int64 and look random byte by byte.
func multiplier(i int) int64 {
	z := uint64(i+1) * 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int64(z>>2) | 1
}

func sequenceVertex(id string, p int32, start int64, end *int64, rate int64) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{
		Sequence: &sabotv1.SequenceSource{Start: start, End: end, RowsPerSecond: rate},
	}}}
}

// countVertex is the keyed aggregate: COUNT, and a SUM of each column
// c0..c<sums-1>.
func countVertex(p int32, sums int) *sabotv1.Vertex {
	aggs := []*sabotv1.Aggregation{{Name: "n", Function: sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT}}
	for i := range sums {
		aggs = append(aggs, &sabotv1.Aggregation{Name: fmt.Sprintf("s%d", i), Function: sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM, Field: fmt.Sprintf("c%d", i)})
	}
	return &sabotv1.Vertex{Id: stateVertex, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KeyedAggregate{
		KeyedAggregate: &sabotv1.KeyedAggregate{Aggregations: aggs},
	}}}
}

func blackholeVertex(p int32) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: "out", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}}
}

// benchJob is one Run in its own goroutine, counting the rows reaching its
// sinks.
type benchJob struct {
	start  time.Time
	rows   atomic.Int64
	cancel context.CancelFunc
	ended  chan struct{} // closed when Run returned
	err    error         // Run's result, once ended is closed
}

func startBenchJob(ctx context.Context, cfg sabotrt.Config) *benchJob {
	ctx, cancel := context.WithCancel(ctx)
	j := &benchJob{cancel: cancel, ended: make(chan struct{})}
	cfg.SinkRows = &j.rows
	j.start = time.Now()
	go func() {
		defer close(j.ended)
		j.err = sabotrt.Run(ctx, cfg)
	}()
	return j
}

// endErr is Run's result, or an error saying it returned nil early.
func (j *benchJob) endErr() error {
	if j.err == nil {
		return errors.New("it finished")
	}
	return j.err
}

// waitFor polls cond every poll until it holds. It fails if Run returns
// first or ctx ends.
func (j *benchJob) waitFor(ctx context.Context, what string, poll time.Duration, cond func() bool) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for !cond() {
		select {
		case <-j.ended:
			return fmt.Errorf("job ended before %s: %w", what, j.endErr())
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// stop cancels the run, as a kill would end it, and waits for Run to
// return; a run cancelled so is not an error. Idempotent.
func (j *benchJob) stop() error {
	j.cancel()
	<-j.ended
	if errors.Is(j.err, context.Canceled) {
		return nil
	}
	return j.err
}

// taskTimes records when every subtask of a vertex reported a task state:
// RUNNING once its operators are open (keyed state restored), FINISHED
// once it flushed and closed. Its observe is a Config.OnTaskState.
type taskTimes struct {
	vertex string
	state  sabotv1.TaskState
	want   int32 // the vertex's parallelism
	n      atomic.Int32
	last   atomic.Int64 // unix nanoseconds of the latest report
}

func (o *taskTimes) observe(vertex string, _ int32, s sabotv1.TaskState) {
	if vertex == o.vertex && s == o.state {
		o.last.Store(time.Now().UnixNano())
		o.n.Add(1)
	}
}

// at is when the last subtask reported the state; false if some has not.
func (o *taskTimes) at() (time.Time, bool) {
	if o.n.Load() < o.want {
		return time.Time{}, false
	}
	return time.Unix(0, o.last.Load()), true
}

// since is how long after start every subtask had reported the state; 0
// if some has not.
func (o *taskTimes) since(start time.Time) time.Duration {
	t, ok := o.at()
	if !ok {
		return 0
	}
	return t.Sub(start)
}

// benchCommitter is an in-memory CheckpointCommitter: the latest completed
// checkpoint, as etcd's pointer holds it in a cluster, and the history,
// each entry stamped with the wall-clock time its records arrived, so that
// durations are real even when the run's clock is fake.
type benchCommitter struct {
	mu struct {
		sync.Mutex
		latest   *clusterv1.CheckpointMetadata
		retained []int64
		history  []*benchCheckpoint // in trigger order
	}
}

// benchCheckpoint is one checkpoint of a benchCommitter's history.
type benchCheckpoint struct {
	info      *sabotv1.CheckpointInfo // the latest record
	triggered time.Time               // when the IN_PROGRESS record arrived
	ended     time.Time               // when the COMPLETED or FAILED one did
}

func (c benchCheckpoint) stat() checkpointStat {
	return checkpointStat{ID: c.info.GetId(), DurationMS: float64(c.ended.Sub(c.triggered).Microseconds()) / 1e3,
		SizeBytes: c.info.GetSizeBytes(), IncrementalBytes: c.info.GetIncrementalSizeBytes()}
}

// Commit implements sabotrt.CheckpointCommitter.
func (c *benchCommitter) Commit(_ context.Context, md *clusterv1.CheckpointMetadata, _ string, retained []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.latest, c.mu.retained = md, slices.Clone(retained)
	return nil
}

// Record implements sabotrt.CheckpointCommitter.
func (c *benchCommitter) Record(_ context.Context, info *sabotv1.CheckpointInfo) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checkpoint ids repeat across attempts: a restored attempt numbers on
	// from the checkpoint it restored, not from its predecessor's last.
	var h *benchCheckpoint
	for _, e := range slices.Backward(c.mu.history) {
		if e.info.GetId() == info.GetId() && e.info.GetAttempt() == info.GetAttempt() {
			h = e
			break
		}
	}
	if h == nil {
		h = &benchCheckpoint{triggered: now}
		c.mu.history = append(c.mu.history, h)
	}
	h.info = info
	if info.GetStatus() != sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS {
		h.ended = now
	}
}

func (c *benchCommitter) latest() (*clusterv1.CheckpointMetadata, []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.latest, c.mu.retained
}

// history returns attempt's checkpoints, in trigger order.
func (c *benchCommitter) history(attempt int64) []benchCheckpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []benchCheckpoint
	for _, h := range c.mu.history {
		if h.info.GetAttempt() == attempt {
			out = append(out, *h)
		}
	}
	return out
}

// first returns attempt's first checkpoint triggered at or after since.
func (c *benchCommitter) first(attempt int64, since time.Time) (benchCheckpoint, bool) {
	for _, h := range c.history(attempt) {
		if !h.triggered.Before(since) {
			return h, true
		}
	}
	return benchCheckpoint{}, false
}

// freeMemory returns the previous run's garbage to the OS, so that runs
// start alike.
func freeMemory() { debug.FreeOSMemory() }

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func ptrTo[T any](v T) *T { return &v }

// --- Output -----------------------------------------------------------------

func printCheckpointBench(w io.Writer, format string, r *checkpointBenchResult) error {
	if format == "json" {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	fmt.Fprintf(w, "GOMAXPROCS %d, parallelism %d; checkpoints to a file blob store on local disk; peak RSS %s\n", r.GOMAXPROCS, r.Parallelism, byteSize(r.PeakRSSBytes))
	if len(r.Throughput) > 0 {
		fmt.Fprintf(w, "\nthroughput: sequence → k = value %% %d → keyed COUNT → blackhole; ratio = events/s over the same backend's run without checkpoints\n", r.Keys)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tINTERVAL\tEVENTS\tWALL\tEVENTS/S\tRATIO\tCHECKPOINTS\tMEAN DURATION\tMAX DURATION\tMEAN SIZE\tMEAN INCREMENTAL")
		var notes []string
		for _, t := range r.Throughput {
			iv, cps, md, xd, ms, mi := "none", "-", "-", "-", "-", "-"
			if t.IntervalMS > 0 {
				iv = (time.Duration(t.IntervalMS) * time.Millisecond).String()
				cps = fmt.Sprint(t.Completed)
				if t.Failed > 0 {
					cps += fmt.Sprintf(" (%d failed)", t.Failed)
				}
				if t.CutOff {
					cps += " +1 cut off"
				}
			}
			if t.MeanDurationMS != nil {
				md, xd = msString(*t.MeanDurationMS), msString(*t.MaxDurationMS)
				ms, mi = byteSize(int64(*t.MeanSizeBytes)), byteSize(int64(*t.MeanIncrementalBytes))
			}
			if t.Note != "" {
				cps += " *"
				notes = append(notes, fmt.Sprintf("  * %s, %s: %s", t.Backend, iv, t.Note))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f s\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%s\n", t.Backend, iv, t.Events, t.WallSeconds, t.EventsPerSecond, t.Ratio, cps, md, xd, ms, mi)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if slices.ContainsFunc(r.Throughput, func(t checkpointRunStats) bool { return t.CutOff }) {
			fmt.Fprintln(w, "  +1 cut off: the checkpoint in flight when the job finished, which the history records as FAILED (not counted)")
		}
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if len(r.State) > 0 {
		fmt.Fprintf(w, "\nstate: keyed COUNT + %d SUMs per key. FULL: the first checkpoint once every key is in state (pebble: and its compactions settled);\n"+
			"CHANGED: the next, in a run restored from it, after %d %% of the keys changed\n", stateSums, changedPerMille/10)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tTARGET\tKEYS\tB/KEY\tFILL\tSETTLE\tFULL: DURATION\tSIZE\tUPLOADED\tRESTORE\tCHANGED KEYS\tCHANGED: DURATION\tSIZE\tUPLOADED\tUPLOADED/FULL")
		for _, s := range r.State {
			fmt.Fprintf(tw, "%s\t%d MiB\t%d\t%.0f\t%.2f s\t%.1f s\t%s\t%s\t%s\t%.2f s\t%d\t%s\t%s\t%s\t%.3f\n", s.Backend, s.TargetMiB, s.Keys, s.BytesPerKey, s.FillSeconds, s.SettleSeconds,
				msString(s.Full.DurationMS), byteSize(s.Full.SizeBytes), byteSize(s.Full.IncrementalBytes), s.RestoreSeconds,
				s.ChangedKeys, msString(s.Changed.DurationMS), byteSize(s.Changed.SizeBytes), byteSize(s.Changed.IncrementalBytes), s.UploadedFraction)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Recovery) > 0 {
		fmt.Fprintf(w, "\nrecovery: the filled state restored into a run checkpointing every %s, cancelled (like a kill) once CHECKPOINTS completed, restarted from the latest;\n"+
			"RESTORE and FIRST ROW count from the new run's start\n", recoveryInterval)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tTARGET\tKEYS\tRAN\tCHECKPOINTS\tMEAN DURATION\tRESTORED\tSIZE\tCANCEL\tRESTORE (OPEN)\tFIRST ROW")
		for _, c := range r.Recovery {
			fmt.Fprintf(tw, "%s\t%d MiB\t%d\t%.2f s\t%d\t%s\t#%d\t%s\t%.2f s\t%.3f s\t%.3f s\n", c.Backend, c.TargetMiB, c.Keys, c.RunSeconds, c.Completed,
				msString(c.MeanDurationMS), c.CheckpointID, byteSize(c.SizeBytes), c.CancelSeconds, c.RestoreSeconds, c.FirstRowSeconds)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "\nnote: "+n)
	}
	return nil
}

// msString renders milliseconds: 12.3 ms, 4.56 s.
func msString(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

package runtime_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

const (
	unspecified = sabotv1.Partitioning_PARTITIONING_UNSPECIFIED
	forward     = sabotv1.Partitioning_PARTITIONING_FORWARD
	rebalance   = sabotv1.Partitioning_PARTITIONING_REBALANCE
	broadcast   = sabotv1.Partitioning_PARTITIONING_BROADCAST
	hash        = sabotv1.Partitioning_PARTITIONING_HASH
)

func TestSequenceToPrint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		srcP, sinkP int32
		part        sabotv1.Partitioning
		start, end  int64
		batch       int
	}{
		{"p1 chained", 1, 1, unspecified, 1, 5000, 100},
		{"p3 chained", 3, 3, forward, 1, 5000, 100},
		{"p3 chained uneven split", 3, 3, forward, -7, 3, 2},
		{"p3 to p2 rebalance", 3, 2, unspecified, 1, 5000, 64},
		{"p2 to p5 rebalance, more subtasks than batches", 2, 5, rebalance, 1, 3, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := graph(t, 0,
				[]*sabotv1.Vertex{seqVertex("seq", tc.srcP, tc.start, ptr(tc.end), 0), printVertex("out", tc.sinkP, "evens")},
				edge("seq", "out", tc.part))
			var out lines
			err := runWithin(t, 20*time.Second, runtime.Config{
				JobID: "j", Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: tc.batch, QueueCapacity: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			var values []int64
			for _, l := range out.all() {
				p := parsePrinted(t, l)
				if p.prefix != "evens" || p.subtask < 0 || p.subtask >= int(tc.sinkP) {
					t.Fatalf("bad line %q", l)
				}
				values = append(values, intOf(t, p.row["value"]))
			}
			checkExactlyOnce(t, values, tc.start, tc.end)
		})
	}
}

func TestPrintLineFormat(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 1, 4, ptr[int64](4), 0), printVertex("out", 1, "evens")},
		edge("seq", "out", forward))
	var out lines
	if err := runtime.Run(t.Context(), runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t)}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.all(), []string{`evens> [0] {"value":4}`}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("print output %q, want %q", got, want)
	}
}

// readFiles returns every value in the part files of vertex sink in dir,
// and the number of rows per file.
func readFiles(t *testing.T, dir, sink string, p int) ([]int64, []int) {
	t.Helper()
	var values []int64
	counts := make([]int, p)
	for s := range p {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("part-%s-%d.jsonl", sink, s)))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row map[string]int64
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s line %q: %v", f.Name(), sc.Text(), err)
			}
			values = append(values, row["value"])
			counts[s]++
		}
		_ = f.Close()
	}
	return values, counts
}

func TestRebalanceToFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out", "nested")
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 1, ptr[int64](10000), 0), fileVertex("sink", 3, dir)},
		edge("seq", "sink", rebalance))
	cfg := runtime.Config{JobID: "j", Graph: g, Allocator: checked(t), BatchSize: 100, QueueCapacity: 4}
	for attempt := range 2 { // the second run must rewrite, not append
		cfg.Attempt = int64(attempt)
		if err := runWithin(t, 20*time.Second, cfg); err != nil {
			t.Fatal(err)
		}
		values, counts := readFiles(t, dir, "sink", 3)
		checkExactlyOnce(t, values, 1, 10000)
		for s, n := range counts {
			// 100 batches of 100 rows from 2 senders, round robin over 3.
			if n < 3000 || n > 3600 {
				t.Errorf("attempt %d: subtask %d got %d rows; rebalance should spread ~3333", attempt, s, n)
			}
		}
	}
}

func TestHashEdgeRoutesByKeyGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		maxP       int32
		srcP, dstP int32
	}{
		{"default max parallelism", 0, 2, 4},
		{"max parallelism 7", 7, 3, 5},
		{"one receiver", 0, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := graph(t, tc.maxP, []*sabotv1.Vertex{seqVertex("seq", tc.srcP, -500, ptr[int64](2000), 0), printVertex("out", tc.dstP, "")},
				edge("seq", "out", hash, "value"))
			var out lines
			if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 128}); err != nil {
				t.Fatal(err)
			}
			var values []int64
			for _, l := range out.all() {
				p := parsePrinted(t, l)
				v := intOf(t, p.row["value"])
				values = append(values, v)
				// Independent of the column hasher: murmur3 of the key's
				// 8 little-endian bytes.
				h := runtime.Murmur3(binary.LittleEndian.AppendUint64(nil, uint64(v)), 0)
				want := jobgraph.SubtaskForKeyGroup(g.MaxParallelism, int(tc.dstP), runtime.KeyGroup(h, g.MaxParallelism))
				if p.subtask != want {
					t.Errorf("key %d reached subtask %d, jobgraph says %d", v, p.subtask, want)
				}
			}
			checkExactlyOnce(t, values, -500, 2000)
		})
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 1, ptr[int64](1000), 0), printVertex("out", 3, "")},
		edge("seq", "out", broadcast))
	var out lines
	if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	per := make([][]int64, 3)
	for _, l := range out.all() {
		p := parsePrinted(t, l)
		per[p.subtask] = append(per[p.subtask], intOf(t, p.row["value"]))
	}
	for s, vs := range per {
		t.Run(fmt.Sprint("subtask ", s), func(t *testing.T) { checkExactlyOnce(t, vs, 1, 1000) })
	}
}

// Two sources into one sink: a forward edge that is not chained (the sink
// has two inputs), and end-of-input only once both inputs ended.
func TestUnionOfTwoInputs(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{
		seqVertex("a", 2, 1, ptr[int64](1000), 0),
		seqVertex("b", 2, 1001, ptr[int64](3000), 0),
		printVertex("out", 2, ""),
	}, edge("a", "out", unspecified), edge("b", "out", unspecified))
	var out lines
	if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 37, QueueCapacity: 1}); err != nil {
		t.Fatal(err)
	}
	var values []int64
	for _, l := range out.all() {
		values = append(values, intOf(t, parsePrinted(t, l).row["value"]))
	}
	checkExactlyOnce(t, values, 1, 3000)
}

// Fan-out from one vertex: a chained sink and a rebalanced one.
func TestChainedAndExchangeOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := graph(t, 0, []*sabotv1.Vertex{
		seqVertex("seq", 2, 1, ptr[int64](2000), 0),
		printVertex("p", 2, "p"),
		fileVertex("f", 3, dir),
	}, edge("seq", "p", forward), edge("seq", "f", rebalance))
	var out lines
	if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	var printedValues []int64
	for _, l := range out.all() {
		printedValues = append(printedValues, intOf(t, parsePrinted(t, l).row["value"]))
	}
	checkExactlyOnce(t, printedValues, 1, 2000)
	fileValues, _ := readFiles(t, dir, "f", 3)
	checkExactlyOnce(t, fileValues, 1, 2000)
}

func TestTaskStates(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 1, ptr[int64](10), 0), printVertex("out", 2, "")},
		edge("seq", "out", forward))
	var mu sync.Mutex
	states := map[string][]sabotv1.TaskState{}
	err := runtime.Run(t.Context(), runtime.Config{Graph: g, PrintOut: &lines{}, Allocator: checked(t),
		OnTaskState: func(v string, s int32, st sabotv1.TaskState) {
			mu.Lock()
			defer mu.Unlock()
			k := fmt.Sprintf("%s[%d]", v, s)
			states[k] = append(states[k], st)
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := []sabotv1.TaskState{sabotv1.TaskState_TASK_STATE_DEPLOYING, sabotv1.TaskState_TASK_STATE_RUNNING, sabotv1.TaskState_TASK_STATE_FINISHED}
	for _, k := range []string{"seq[0]", "seq[1]", "out[0]", "out[1]"} {
		if fmt.Sprint(states[k]) != fmt.Sprint(want) {
			t.Errorf("%s went through %v, want %v", k, states[k], want)
		}
	}
}

// slowWriter takes a while per write, like a slow sink, and counts writes.
type slowWriter struct {
	delay  time.Duration
	mu     sync.Mutex
	writes int
	reach  int
	ready  chan struct{}
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay) // simulated slowness, not an assertion
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes == w.reach {
		close(w.ready)
	}
	return len(p), nil
}

func TestBackpressureBoundsMemoryAndCancelIsPrompt(t *testing.T) {
	t.Parallel()
	const (
		batch    = 1024
		capacity = 2
	)
	// An unbounded, unpaced source into a slow sink through a queue: the
	// source must block, not buffer.
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 1, 0, nil, 0), printVertex("out", 1, "")},
		edge("seq", "out", rebalance))
	mem := &peakAllocator{CheckedAllocator: checked(t)}
	w := &slowWriter{delay: time.Millisecond, reach: 50, ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runtime.Run(ctx, runtime.Config{Graph: g, PrintOut: w, Allocator: mem, BatchSize: batch, QueueCapacity: capacity})
	}()
	select {
	case <-w.ready:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the sink never got 50 batches")
	}
	// 50 batches went through; at most the queue plus one batch in each
	// task's hands (and the one being built) may be alive at any time.
	batchBytes := 8*batch + 64
	if peak, bound := mem.peak(), (capacity+4)*batchBytes; peak > bound {
		t.Errorf("peak memory %d bytes, want at most %d (queue of %d batches)", peak, bound, capacity)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("cancel took %s", d)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of cancel")
	}
}

func TestFailingSinkNamesVertexAndSubtask(t *testing.T) {
	t.Parallel()
	t.Run("write error mid-stream", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full")
		}
		dir := t.TempDir()
		// Subtask 1's file is /dev/full: writes fail with ENOSPC once the
		// buffer flushes.
		if err := os.Symlink("/dev/full", filepath.Join(dir, "part-sink-1.jsonl")); err != nil {
			t.Fatal(err)
		}
		g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 0, nil, 0), fileVertex("sink", 2, dir)},
			edge("seq", "sink", forward))
		err := runWithin(t, 20*time.Second, runtime.Config{JobID: "job1", Graph: g, Allocator: checked(t)})
		var te *runtime.TaskError
		if !errors.As(err, &te) {
			t.Fatalf("Run returned %v, want a *TaskError", err)
		}
		if te.JobID != "job1" || te.Vertex != "sink" || te.Subtask != 1 {
			t.Errorf("error names job %q vertex %q subtask %d, want job1/sink/1: %v", te.JobID, te.Vertex, te.Subtask, err)
		}
		t.Log(err)
	})
	t.Run("open error", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		file := filepath.Join(dir, "not-a-dir")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 3, 0, nil, 0), fileVertex("sink", 3, filepath.Join(file, "x"))},
			edge("seq", "sink", rebalance))
		err := runWithin(t, 20*time.Second, runtime.Config{JobID: "job2", Graph: g, Allocator: checked(t)})
		var te *runtime.TaskError
		if !errors.As(err, &te) || te.Vertex != "sink" {
			t.Fatalf("Run returned %v, want a *TaskError for vertex sink", err)
		}
	})
}

func TestPacedSourceWithFakeClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		p    int32
		rate int64
		step time.Duration // one row per subtask is due per step
	}{
		{"p1 at 10 rows/s", 1, 10, 100 * time.Millisecond},
		{"p2 at 10 rows/s", 2, 10, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 10
			// Chained: a row is printed before its source waits again.
			g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", tc.p, 1, ptr[int64](n), tc.rate), printVertex("out", tc.p, "")},
				edge("seq", "out", forward))
			clock := clockwork.NewFakeClock()
			var out lines
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- runtime.Run(ctx, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), Clock: clock})
			}()
			rows := int(tc.p) // the first row of each subtask is due at once
			for rows < n {
				if err := clock.BlockUntilContext(ctx, int(tc.p)); err != nil {
					t.Fatal(err)
				}
				if got := len(out.all()); got != rows {
					t.Fatalf("after %s: %d rows printed, want %d", clock.Since(time.Time{}), got, rows)
				}
				clock.Advance(tc.step)
				rows += int(tc.p)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var values []int64
			for _, l := range out.all() {
				values = append(values, intOf(t, parsePrinted(t, l).row["value"]))
			}
			checkExactlyOnce(t, values, 1, n)
		})
	}
}

func TestPartialPlacementIsRefused(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 1, ptr[int64](10), 0), printVertex("out", 2, "")},
		edge("seq", "out", forward))
	err := runtime.Run(t.Context(), runtime.Config{Graph: g, Subtasks: []*clusterv1.SubtaskRef{
		{VertexId: "seq", Subtask: 0, Parallelism: 2}, {VertexId: "out", Subtask: 0, Parallelism: 2},
	}})
	if !errors.Is(err, runtime.ErrRemoteExchange) {
		t.Fatalf("Run returned %v, want ErrRemoteExchange", err)
	}
	// A full placement runs.
	var refs []*clusterv1.SubtaskRef
	for _, v := range g.Vertices {
		for s := range v.Parallelism {
			refs = append(refs, &clusterv1.SubtaskRef{VertexId: v.ID, Subtask: int32(s), Parallelism: int32(v.Parallelism)})
		}
	}
	if err := runtime.Run(t.Context(), runtime.Config{Graph: g, Subtasks: refs, PrintOut: &lines{}, Allocator: checked(t)}); err != nil {
		t.Fatal(err)
	}
}

func TestMurmur3Vectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		seed uint32
		want uint32
	}{
		{"", 0, 0},
		{"", 1, 0x514e28b7},
		{"", 0xffffffff, 0x81f16f39},
		{"\x00\x00\x00\x00", 0, 0x2362f9de},
		{"a", 0x9747b28c, 0x7fa09ea6},
		{"abc", 0, 0xb3dd93fa},
		{"Hello, world!", 0x9747b28c, 0x24884cba},
		{"The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd},
	} {
		if got := runtime.Murmur3(tc.in, tc.seed); got != tc.want {
			t.Errorf("Murmur3(%q, %#x) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
		if got := runtime.Murmur3([]byte(tc.in), tc.seed); got != tc.want {
			t.Errorf("Murmur3([]byte(%q), %#x) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
	}
}

// A paced source waiting on its timer stops promptly on cancel.
func TestCancelPacedSource(t *testing.T) {
	t.Parallel()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 2, 0, nil, 1), printVertex("out", 3, "")},
		edge("seq", "out", rebalance))
	w := &slowWriter{reach: 1, ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runtime.Run(ctx, runtime.Config{Graph: g, PrintOut: w, Allocator: checked(t)})
	}()
	select {
	case <-w.ready: // the first row is printed; the sources now wait ~2 s for the next
	case <-time.After(10 * time.Second):
		t.Fatal("no row printed")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of cancel")
	}
}

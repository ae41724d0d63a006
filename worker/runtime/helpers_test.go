package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// graph builds and resolves a job from vertices and edges.
func graph(t testing.TB, maxP int32, vs []*sabotv1.Vertex, es ...*sabotv1.Edge) *jobgraph.Graph {
	t.Helper()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{
		Name:           "test",
		MaxParallelism: maxP,
		Graph:          &sabotv1.JobGraph{Vertices: vs, Edges: es},
	})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return g
}

func seqVertex(id string, p int32, start int64, end *int64, rate int64) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{
		Sequence: &sabotv1.SequenceSource{Start: start, End: end, RowsPerSecond: rate},
	}}}
}

func printVertex(id string, p int32, prefix string) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{
		Print: &sabotv1.PrintSink{Prefix: prefix},
	}}}
}

func fileVertex(id string, p int32, dir string) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_File{
		File: &sabotv1.FileSink{Path: dir},
	}}}
}

func mapVertex(id string, p int32, cols ...string) *sabotv1.Vertex {
	m := &sabotv1.MapOperator{}
	for i := 0; i < len(cols); i += 2 {
		m.Columns = append(m.Columns, &sabotv1.NamedExpression{Name: cols[i], Expr: cols[i+1]})
	}
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: m}}}
}

func filterVertex(id string, p int32, cond string) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{
		Filter: &sabotv1.FilterOperator{Condition: cond},
	}}}
}

func edge(from, to string, part sabotv1.Partitioning, keys ...string) *sabotv1.Edge {
	return &sabotv1.Edge{From: from, To: to, Partitioning: part, KeyFields: keys}
}

func ptr[T any](v T) *T { return &v }

// lines is a concurrency-safe io.Writer collecting print output.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// printed is one parsed print line.
type printed struct {
	prefix  string
	subtask int
	row     map[string]any
}

func parsePrinted(t testing.TB, line string) printed {
	t.Helper()
	var p printed
	rest := line
	if i := strings.Index(rest, "> ["); i >= 0 {
		p.prefix, rest = rest[:i], rest[i+2:]
	}
	var js string
	if _, err := fmt.Sscanf(rest, "[%d]", &p.subtask); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	js = rest[strings.Index(rest, "] ")+2:]
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&p.row); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return p
}

func intOf(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// checkExactlyOnce asserts values are exactly lo..hi, each once.
func checkExactlyOnce(t testing.TB, values []int64, lo, hi int64) {
	t.Helper()
	seen := make(map[int64]int, len(values))
	for _, v := range values {
		seen[v]++
		if v < lo || v > hi {
			t.Errorf("value %d outside [%d, %d]", v, lo, hi)
		}
	}
	for v := lo; v <= hi; v++ {
		if seen[v] != 1 {
			t.Errorf("value %d seen %d times, want 1", v, seen[v])
		}
	}
}

// checked returns a checked allocator asserted empty at the test's end.
func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// runWithin runs the job and fails the test if Run has not returned by
// the deadline.
func runWithin(t *testing.T, d time.Duration, cfg runtime.Config) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runtime.Run(ctx, cfg) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cancel()
		t.Fatalf("Run did not return within %s (after cancel: %v)", d, <-done)
		return nil
	}
}

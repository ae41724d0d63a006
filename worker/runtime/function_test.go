package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	sabot "github.com/sabotdev/sabot/sdk/go"
	"github.com/sabotdev/sabot/worker"
	"github.com/sabotdev/sabot/worker/function"
	"github.com/sabotdev/sabot/worker/runtime"
)

var (
	sumState  = sabot.NewValue("sum", sabot.Int64())
	seenState = sabot.NewList("seen", sabot.Int64(), sabot.Lazy())
)

// summer keeps a running sum per key (eager value) and every value seen
// (a lazy list); it sends {key, sum, seen} to "sums", where seen is the
// length of the list read lazily within the call every 10th value (-1
// otherwise).
var summer = sabot.Function{
	Name:    "summer",
	States:  []sabot.State{sumState, seenState},
	Outputs: []string{"sums"},
	OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
		var in struct{ V int64 }
		if err := msg.JSON(&in); err != nil {
			return err
		}
		sum, _, err := sumState.Get(ctx)
		if err != nil {
			return err
		}
		sum += in.V
		if err := sumState.Set(ctx, sum); err != nil {
			return err
		}
		if err := seenState.Append(ctx, in.V); err != nil {
			return err
		}
		seen := int64(-1)
		if in.V%10 == 0 {
			items, err := seenState.Get(ctx)
			if err != nil {
				return err
			}
			seen = int64(len(items))
		}
		return ctx.Send("sums", map[string]any{"key": ctx.Key(), "sum": sum, "seen": seen, "v": in.V})
	},
}

// serveFunctions serves fns over the function protocol on loopback and
// returns their registration (a URL function) and a host reaching it.
func serveFunctions(t *testing.T, fn sabot.Function) (*sabotv1.Function, runtime.FunctionHost) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sabot.ServeListener(ctx, ln, fn) }()
	h := function.NewHost(function.HostConfig{Dir: t.TempDir()})
	t.Cleanup(func() {
		h.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &sabotv1.Function{Spec: fn.Spec(), Source: &sabotv1.Function_Url{Url: "http://" + ln.Addr().String()}}, worker.FunctionHost(h)
}

func functionVertex(id string, p int32, reg *sabotv1.Function, outputs map[string][]*sabotv1.Column) *sabotv1.Vertex {
	step := &sabotv1.FunctionStep{Name: reg.GetSpec().GetName(), Function: reg, Outputs: map[string]*sabotv1.OutputColumns{}}
	for name, cols := range outputs {
		step.Outputs[name] = &sabotv1.OutputColumns{Columns: cols}
	}
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: step}}}
}

func int64Col(name string) *sabotv1.Column {
	return &sabotv1.Column{Name: name, Type: sabotv1.ColumnType_COLUMN_TYPE_INT64}
}

// TestFunctionStep runs seq (one subtask: values in order) → key by v mod 7 → summer (a function process
// on loopback) → print, at parallelism 2 on both backends, and checks that
// every key's sums arrive in input order and add up, and that lazy reads
// within a call see the list as of that message.
func TestFunctionStep(t *testing.T) {
	t.Parallel()
	const n = 3000
	reg, host := serveFunctions(t, summer)
	for _, b := range stateBackends {
		t.Run(strings.ToLower(b.String()), func(t *testing.T) {
			t.Parallel()
			fv := functionVertex("sum", 2, reg, map[string][]*sabotv1.Column{"sums": {
				{Name: "key", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING}, int64Col("sum"), int64Col("seen"), int64Col("v")}})
			side := edge("sum", "out", forward)
			side.SideOutput = "sums"
			g := resolveWith(t, b, []*sabotv1.Vertex{
				seqVertex("seq", 1, 1, ptr[int64](n), 0),
				mapVertex("prep", 1, "k", "CAST(value % 7 AS VARCHAR)", "v", "value"),
				fv,
				printVertex("out", 2, "s"),
			}, edge("seq", "prep", forward), edge("prep", "sum", hash, "k"), side)
			var out lines
			err := runWithin(t, 60*time.Second, runtime.Config{JobID: "fn", Graph: g, PrintOut: &out, StateDir: t.TempDir(),
				FunctionHost: host, BatchSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			type row struct {
				Key          string
				Sum, Seen, V int64
			}
			last := map[string]row{}
			counts := map[string]int64{}
			rows := 0
			for _, l := range out.all() {
				_, js, ok := strings.Cut(l, "] ")
				if !ok {
					t.Fatalf("line %q", l)
				}
				var r row
				if err := json.Unmarshal([]byte(js), &r); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				rows++
				counts[r.Key]++
				prev := last[r.Key]
				if r.V <= prev.V || r.Sum != prev.Sum+r.V {
					t.Fatalf("key %s: %+v after %+v: out of order or lost", r.Key, r, prev)
				}
				if r.V%10 == 0 && r.Seen != counts[r.Key] {
					t.Fatalf("key %s: lazy list read saw %d values at the %d-th", r.Key, r.Seen, counts[r.Key])
				}
				last[r.Key] = r
			}
			if rows != n {
				t.Fatalf("%d output rows for %d inputs", rows, n)
			}
			for k := range 7 {
				var want int64
				for v := int64(1); v <= n; v++ {
					if v%7 == int64(k) {
						want += v
					}
				}
				if got := last[fmt.Sprint(k)].Sum; got != want {
					t.Errorf("key %d: sum %d, want %d", k, got, want)
				}
			}
		})
	}
}

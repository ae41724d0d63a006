package window_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// driver plays the runtime for a script: it builds an Operator[int64,
// string] from an init line, feeds (key, timestamp, value) rows, advances
// time, and records what comes out, in order.
type driver struct {
	bk    *backend
	k     *state.Keyed
	op    *window.Operator[int64, string]
	init  *ddCase // the last init, replayed by restart
	opID  string  // operator id of the last init
	inits int
	out   []string
}

func parseInt(t *testing.T, s string) int64 {
	t.Helper()
	switch s {
	case "min":
		return math.MinInt64
	case "max":
		return math.MaxInt64
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (d *driver) intArg(t *testing.T, c *ddCase, key, def string) int64 {
	t.Helper()
	return parseInt(t, c.arg(key, def))
}

func (d *driver) domain(c *ddCase) window.TimeDomain {
	if c.arg("domain", "event") == "proc" {
		return window.ProcessingTime
	}
	return window.EventTime
}

// sumAgg sums values; merge adds. Result "sum=N".
func sumAgg(merge bool) window.AggregateFunction[int64, int64, string] {
	a := window.AggregateFunction[int64, int64, string]{
		Create: func() int64 { return 0 },
		Add:    func(acc, v int64) int64 { return acc + v },
		Result: func(acc int64) string { return "sum=" + strconv.FormatInt(acc, 10) },
		Codec:  state.Int64Codec{},
	}
	if merge {
		a.Merge = func(a, b int64) int64 { return a + b }
	}
	return a
}

func (d *driver) function(t *testing.T, c *ddCase) window.Function[int64, string] {
	t.Helper()
	switch fn := c.arg("fn", "sum"); fn {
	case "sum":
		return window.Aggregate(sumAgg(true))
	case "sum-nomerge":
		return window.Aggregate(sumAgg(false))
	case "list":
		return window.Process(func(info window.Info, in []int64, emit func(string) error) error {
			return emit(fmt.Sprintf("list=%v n=%d", in, info.Count))
		})
	case "info":
		return window.AggregateProcess(sumAgg(true), func(info window.Info, in []string, emit func(string) error) error {
			return emit(fmt.Sprintf("%s n=%d wm=%s proc=%d", in[0], info.Count, fmtTS(info.Watermark), info.ProcessingTime))
		})
	case "each":
		// Emits one result per element: a window function may emit several.
		return window.Process(func(_ window.Info, in []int64, emit func(string) error) error {
			for _, v := range in {
				if err := emit("v=" + strconv.FormatInt(v, 10)); err != nil {
					return err
				}
			}
			return nil
		})
	default:
		t.Fatalf("line %d: unknown fn %q", c.line, fn)
		return window.Function[int64, string]{}
	}
}

func fmtTS(ts int64) string {
	switch ts {
	case math.MinInt64:
		return "min"
	case math.MaxInt64:
		return "max"
	}
	return strconv.FormatInt(ts, 10)
}

func (d *driver) assigner(t *testing.T, c *ddCase) (window.Assigner[int64], error) {
	t.Helper()
	dom := d.domain(c)
	switch a := c.arg("assigner", "tumbling"); a {
	case "tumbling":
		return window.Tumbling[int64](dom, d.intArg(t, c, "size", "10"), d.intArg(t, c, "offset", "0"))
	case "sliding":
		return window.Sliding[int64](dom, d.intArg(t, c, "size", "10"), d.intArg(t, c, "slide", "5"), d.intArg(t, c, "offset", "0"))
	case "session":
		return window.Session[int64](dom, d.intArg(t, c, "gap", "10"))
	case "dynsession":
		// The element value is its gap.
		return window.DynamicSession(dom, func(v int64) int64 { return v })
	case "cumulate":
		return window.Cumulate[int64](dom, d.intArg(t, c, "step", "5"), d.intArg(t, c, "max", "15"), d.intArg(t, c, "offset", "0"))
	case "global":
		return window.Global[int64](), nil
	default:
		t.Fatalf("line %d: unknown assigner %q", c.line, a)
		return nil, nil
	}
}

func (d *driver) trigger(t *testing.T, c *ddCase) (window.Trigger[int64], error) {
	t.Helper()
	spec := c.arg("trigger", "")
	kind, n, _ := strings.Cut(spec, ":")
	var tr window.Trigger[int64]
	var err error
	switch kind {
	case "":
	case "event":
		tr = window.EventTimeTrigger[int64]()
	case "proc":
		tr = window.ProcessingTimeTrigger[int64]()
	case "count":
		tr, err = window.CountTrigger[int64](parseInt(t, n))
	case "continuous":
		tr, err = window.ContinuousEventTimeTrigger[int64](parseInt(t, n))
	case "never":
		tr = window.NeverTrigger[int64]()
	default:
		t.Fatalf("line %d: unknown trigger %q", c.line, spec)
	}
	if err != nil || c.arg("purging", "false") != "true" {
		return tr, err
	}
	if tr == nil {
		a, err := d.assigner(t, c)
		if err != nil {
			return nil, err
		}
		tr = a.DefaultTrigger()
	}
	return window.PurgingTrigger(tr)
}

func (d *driver) evictor(t *testing.T, c *ddCase) (window.Evictor[int64], error) {
	t.Helper()
	spec := c.arg("evictor", "")
	after := c.arg("evict", "before") == "after"
	kind, n, _ := strings.Cut(spec, ":")
	switch kind {
	case "":
		return nil, nil
	case "count":
		return window.CountEvictor[int64](int(parseInt(t, n)), after)
	case "time":
		return window.TimeEvictor[int64](parseInt(t, n), after)
	case "delta":
		// delta(a, last) = |a - last|
		return window.DeltaEvictor(float64(parseInt(t, n)), func(a, b int64) float64 { return math.Abs(float64(a - b)) }, after)
	default:
		t.Fatalf("line %d: unknown evictor %q", c.line, spec)
		return nil, nil
	}
}

// build makes the Keyed and Operator from the init case.
func (d *driver) build(t *testing.T, c *ddCase) error {
	t.Helper()
	k, err := state.NewKeyed(d.bk.b, d.opID)
	must(t, err)
	d.k = k
	cfg := window.Config[int64, string]{
		Name:            c.arg("name", ""),
		AllowedLateness: d.intArg(t, c, "lateness", "0"),
		Function:        d.function(t, c),
		Codec:           state.Int64Codec{},
		Emit: func(key []byte, w window.Window, out string) error {
			d.out = append(d.out, fmt.Sprintf("emit %s %s %s", key, w, out))
			return nil
		},
	}
	if c.arg("codec", "") == "none" {
		cfg.Codec = nil
	}
	if c.arg("late", "drop") == "side" {
		cfg.Late = func(key []byte, ts, v int64) error {
			d.out = append(d.out, fmt.Sprintf("late %s %d %d", key, ts, v))
			return nil
		}
	}
	if cfg.Assigner, err = d.assigner(t, c); err != nil {
		return err
	}
	if cfg.Trigger, err = d.trigger(t, c); err != nil {
		return err
	}
	if cfg.Evictor, err = d.evictor(t, c); err != nil {
		return err
	}
	d.op, err = window.New(d.k, cfg)
	return err
}

// flush returns and clears the recorded output; "-" when there is none.
func (d *driver) flush() string {
	if len(d.out) == 0 {
		return "-"
	}
	s := strings.Join(d.out, "\n")
	d.out = d.out[:0]
	return s
}

func (d *driver) result(err error) string {
	if err != nil {
		d.out = append(d.out, "error: "+err.Error())
	}
	return d.flush()
}

func (d *driver) run(t *testing.T, c *ddCase) string {
	t.Helper()
	pos := c.positional()
	switch c.cmd {
	case "init":
		// Each init is a new operator in the same backend.
		d.init = c
		d.inits++
		d.opID = "op" + strconv.Itoa(d.inits)
		return d.result(d.build(t, c))
	case "add":
		// Rows "key ts value"; value defaults to 1.
		for _, l := range c.input {
			f := strings.Fields(l)
			if len(f) < 2 {
				t.Fatalf("line %d: row %q: want key ts [value]", c.line, l)
			}
			v := int64(1)
			if len(f) > 2 {
				v = parseInt(t, f[2])
			}
			setKey(t, d.k, f[0])
			if err := d.op.ProcessElement(parseInt(t, f[1]), v); err != nil {
				d.out = append(d.out, fmt.Sprintf("error: %s %s: %v", f[0], f[1], err))
			}
		}
		return d.flush()
	case "watermark":
		return d.result(d.op.AdvanceWatermark(parseInt(t, pos[0])))
	case "proc":
		return d.result(d.op.AdvanceProcessingTime(parseInt(t, pos[0])))
	case "state":
		return dumpState(t, d.bk.b, d.opID)
	case "dropped":
		return strconv.FormatInt(d.op.LateRecordsDropped(), 10)
	case "restart":
		// A new Keyed and Operator over the same stored state (pebble:
		// restored from a checkpoint); the watermark starts over at min.
		d.bk.restart(t)
		return d.result(d.build(t, d.init))
	case "next-proc":
		ts, ok := d.op.NextProcessingTime()
		if !ok {
			return "none"
		}
		return strconv.FormatInt(ts, 10)
	default:
		t.Fatalf("line %d: unknown command %q", c.line, c.cmd)
		return ""
	}
}

// TestScripts runs every testdata script on both backends. The scripts
// read as the Flink rules they check; both backends must print the same.
func TestScripts(t *testing.T) {
	t.Parallel()
	for _, path := range scripts(t) {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			for _, kind := range []string{"heap", "pebble"} {
				t.Run(kind, func(t *testing.T) {
					d := &driver{bk: openBackend(t, kind)}
					// With -rewrite the heap run writes, pebble then checks.
					runScript(t, path, *rewrite && kind == "heap", d.run)
				})
			}
		})
	}
}

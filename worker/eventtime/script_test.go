package eventtime_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// epoch is the fake clock's start; scripts print processing times relative
// to it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// driver holds the state a script builds up, and plays the task: it turns
// each call's results into the elements a task would send downstream.
type driver struct {
	clock *clockwork.FakeClock
	gen   eventtime.Generator
	marks map[int]bool // rows of the current events call marked "*"

	tick eventtime.Periodic

	mux    *eventtime.Multiplexer
	splits map[string]*eventtime.Split

	merger *eventtime.InputMerger

	sentIdle bool // the status last sent downstream
}

func newDriver() *driver {
	return &driver{clock: clockwork.NewFakeClockAt(epoch), splits: map[string]*eventtime.Split{}}
}

func fmtWM(wm int64) string {
	switch wm {
	case math.MinInt64:
		return "min"
	case math.MaxInt64:
		return "max"
	default:
		return strconv.FormatInt(wm, 10)
	}
}

func parseTS(t *testing.T, s string) int64 {
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

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// events parses "10 12* 11": event times, "*" marking a punctuated row.
func (d *driver) events(t *testing.T, args []string) []int64 {
	t.Helper()
	d.marks = map[int]bool{}
	ts := make([]int64, len(args))
	for i, a := range args {
		if s, ok := strings.CutSuffix(a, "*"); ok {
			d.marks[i], a = true, s
		}
		ts[i] = parseTS(t, a)
	}
	return ts
}

// mark is the MarkFunc of script punctuated generators: a "*" row's
// timestamp is a watermark.
func (d *driver) mark(row int, ts int64) (int64, bool) { return ts, d.marks[row] }

func (d *driver) newGen(t *testing.T, c *ddCase, kind string) eventtime.Generator {
	t.Helper()
	switch kind {
	case "bounded":
		return eventtime.NewBoundedOutOfOrderness(parseDur(t, c.arg("delay", "0s")))
	case "monotonous":
		return eventtime.NewMonotonous()
	case "punctuated":
		return eventtime.NewPunctuated(d.mark)
	case "none":
		return eventtime.Strategy{}.NewGenerator()
	default:
		t.Fatalf("line %d: unknown generator %q", c.line, kind)
		return nil
	}
}

// emitted formats a generator result.
func emitted(wm int64, ok bool) string {
	if !ok {
		return "-"
	}
	return "watermark " + fmtWM(wm)
}

// send formats what a task sends after a multiplexer or merger call, per
// the status protocol: "active" before the watermark, "idle" after it.
func (d *driver) send(wm int64, advanced, idle bool) string {
	var out []string
	if !idle && d.sentIdle {
		out, d.sentIdle = append(out, "status active"), false
	}
	if advanced {
		out = append(out, "watermark "+fmtWM(wm))
	}
	if idle && !d.sentIdle {
		out, d.sentIdle = append(out, "status idle"), true
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "\n")
}

func (d *driver) since() string { return d.clock.Now().Sub(epoch).String() }

func (d *driver) run(t *testing.T, c *ddCase) string {
	t.Helper()
	pos := c.positional()
	switch c.cmd {
	// Generators.
	case "gen":
		d.gen = d.newGen(t, c, pos[0])
		return ""
	case "event":
		ts := d.events(t, pos)
		return emitted(d.gen.OnEvent(ts[0]))
	case "events":
		return emitted(d.gen.OnEvents(d.events(t, pos)))
	case "periodic":
		return emitted(d.gen.OnPeriodicEmit())

	// Periodic pacing.
	case "pace":
		d.tick = eventtime.NewPeriodic(parseDur(t, c.arg("interval", "0s")), d.clock.Now())
		if d.tick.Next().IsZero() {
			return "disabled"
		}
		return "next " + d.tick.Next().Sub(epoch).String()
	case "advance":
		d.clock.Advance(parseDur(t, pos[0]))
		if d.tick.Due(d.clock.Now()) {
			return fmt.Sprintf("due at %s, next %s", d.since(), d.tick.Next().Sub(epoch))
		}
		return "-"

	// Multiplexer.
	case "mux":
		d.mux = eventtime.NewMultiplexer(parseDur(t, c.arg("idle", "0s")))
		d.sentIdle = false
		d.splits = map[string]*eventtime.Split{}
		return ""
	case "add":
		s, err := d.mux.AddSplit(pos[0], d.newGen(t, c, pos[1]))
		if err != nil {
			return "error: " + err.Error()
		}
		d.splits[pos[0]] = s
		return d.send(d.mux.Watermark(), false, d.mux.Idle())
	case "remove":
		wm, adv, err := d.mux.RemoveSplit(pos[0])
		if err != nil {
			return "error: " + err.Error()
		}
		delete(d.splits, pos[0])
		return d.send(wm, adv, d.mux.Idle())
	case "split":
		s := d.splits[pos[0]]
		ts := d.events(t, pos[1:])
		var wm int64
		var adv bool
		if len(ts) == 1 {
			wm, adv = s.OnEvent(ts[0])
		} else {
			wm, adv = s.OnEvents(ts)
		}
		return d.send(wm, adv, d.mux.Idle())
	case "tick":
		// Processing time passes; the task runs its periodic step.
		d.clock.Advance(parseDur(t, pos[0]))
		wm, adv := d.mux.OnPeriodicEmit(d.clock.Now())
		return d.send(wm, adv, d.mux.Idle())
	case "finish":
		wm, adv := d.mux.EndOfInput()
		return d.send(wm, adv, d.mux.Idle())
	case "splits":
		var out []string
		for _, id := range pos {
			s := d.splits[id]
			out = append(out, fmt.Sprintf("%s: watermark %s idle=%t", id, fmtWM(s.Watermark()), s.Idle()))
		}
		out = append(out, fmt.Sprintf("combined: watermark %s idle=%t", fmtWM(d.mux.Watermark()), d.mux.Idle()))
		return strings.Join(out, "\n")

	// InputMerger.
	case "merger":
		n, err := strconv.Atoi(c.arg("n", "1"))
		if err != nil {
			t.Fatal(err)
		}
		d.merger = eventtime.NewInputMerger(n)
		d.sentIdle = false
		return ""
	case "wm":
		wm, adv := d.merger.Update(d.ch(t, pos[0]), parseTS(t, pos[1]))
		return d.send(wm, adv, d.merger.Idle())
	case "idle", "active":
		wm, adv := d.merger.SetIdle(d.ch(t, pos[0]), c.cmd == "idle")
		return d.send(wm, adv, d.merger.Idle())
	case "end":
		wm, adv := d.merger.EndOfInput(d.ch(t, pos[0]))
		return d.send(wm, adv, d.merger.Idle())
	default:
		t.Fatalf("line %d: unknown command %q", c.line, c.cmd)
		return ""
	}
}

func (d *driver) ch(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScripts runs every testdata script: each reads as the rule it checks.
func TestScripts(t *testing.T) {
	t.Parallel()
	for _, path := range scripts(t, "") {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			d := newDriver()
			runScript(t, path, d.run)
		})
	}
}

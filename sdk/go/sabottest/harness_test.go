package sabottest_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	sabot "github.com/sabotdev/sabot/sdk/go"
	"github.com/sabotdev/sabot/sdk/go/sabottest"
)

func TestMain(m *testing.M) {
	// Every harness stops its function process and session in its cleanup.
	goleak.VerifyTestMain(m)
}

var count = sabot.NewValue("count", sabot.Int64())

var counter = sabot.Function{
	Name:    "counter",
	States:  []sabot.State{count},
	Outputs: []string{"counts"},
	OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
		n, _, err := count.Get(ctx)
		if err != nil {
			return err
		}
		n++
		if err := count.Set(ctx, n); err != nil {
			return err
		}
		if string(msg.Payload) == "bad" {
			return errors.New("bad message") // after a write: the write must not apply
		}
		if msg.Invoked() {
			return ctx.Reply(strconv.FormatInt(n, 10))
		}
		return ctx.Send("counts", n)
	},
}

func TestCounter(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, counter)
	for range 2 {
		if err := h.Send("counter", "alice", "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Send("counter", "bob", "hi"); err != nil {
		t.Fatal(err)
	}
	reply, err := h.Invoke("counter", "alice", "how many?")
	if err != nil || string(reply) != "3" {
		t.Fatalf("invoke: %q, %v; want 3", reply, err)
	}
	if n, ok := sabottest.Value(h, count, "counter", "alice"); !ok || n != 3 {
		t.Fatalf("alice: %d, %v", n, ok)
	}
	if n, ok := sabottest.Value(h, count, "counter", "bob"); !ok || n != 1 {
		t.Fatalf("bob: %d, %v", n, ok)
	}
	var got []string
	for _, r := range h.Outputs("counts") {
		got = append(got, r.Key+"="+string(r.Payload)) // JSON numbers
	}
	if want := []string{"alice=1", "alice=2", "bob=1"}; !slices.Equal(got, want) {
		t.Fatalf("outputs %q, want %q", got, want)
	}

	// A failed invocation has no effect.
	err = h.Send("counter", "alice", "bad")
	var ie *sabottest.InvocationError
	if !errors.As(err, &ie) || ie.Key != "alice" || ie.Message != "bad message" {
		t.Fatalf("bad message: %v", err)
	}
	if n, _ := sabottest.Value(h, count, "counter", "alice"); n != 3 {
		t.Fatalf("alice after a failure: %d, want 3", n)
	}
	if err := h.Send("nobody", "k", "x"); err == nil {
		t.Fatal("send to an unserved function: no error")
	}
}

func TestProcessingTimeTimer(t *testing.T) {
	t.Parallel()
	buffer := sabot.NewList("buffer", sabot.String())
	deadline := sabot.NewValue("deadline", sabot.Int64())
	// Flushes a key's buffer after a minute without messages.
	fn := sabot.Function{
		Name:    "idle",
		States:  []sabot.State{buffer, deadline},
		Outputs: []string{"flushed"},
		OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			if old, ok, err := deadline.Get(ctx); err != nil {
				return err
			} else if ok {
				if err := ctx.DeleteTimer("flush", time.UnixMilli(old), sabot.ProcessingTime); err != nil {
					return err
				}
			}
			at := ctx.ProcessingTime().Add(time.Minute)
			return errors.Join(buffer.Append(ctx, string(msg.Payload)), deadline.Set(ctx, at.UnixMilli()), ctx.SetTimer("flush", at))
		},
		OnTimer: func(ctx *sabot.Context, tm sabot.Timer) error {
			if tm.Name != "flush" || tm.Domain != sabot.ProcessingTime || !ctx.ProcessingTime().Equal(tm.Time) {
				return fmt.Errorf("timer %+v at %v", tm, ctx.ProcessingTime())
			}
			items, err := buffer.Get(ctx)
			if err != nil {
				return err
			}
			return errors.Join(ctx.Send("flushed", strings.Join(items, ",")), buffer.Clear(ctx), deadline.Clear(ctx))
		},
	}
	h := sabottest.New(t, fn)
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	start := h.Now()
	step(h.Send("idle", "k", "a"))
	step(h.AdvanceProcessingTime(30 * time.Second))
	step(h.Send("idle", "k", "b")) // moves the timer to start+90s
	step(h.AdvanceProcessingTime(59 * time.Second))
	if out := h.Outputs("flushed"); len(out) != 0 {
		t.Fatalf("flushed early: %v", out)
	}
	if tm := h.Timers("idle", "k"); len(tm) != 1 || !tm[0].Time.Equal(start.Add(90*time.Second)) {
		t.Fatalf("timers %v", tm)
	}
	step(h.AdvanceProcessingTime(time.Second))
	out := h.Outputs("flushed")
	if len(out) != 1 || string(out[0].Payload) != "a,b" || out[0].Key != "k" {
		t.Fatalf("flushed %v", out)
	}
	if items := sabottest.List(h, buffer, "idle", "k"); items != nil {
		t.Fatalf("buffer after the flush: %q", items)
	}
	if tm := h.Timers("idle", "k"); len(tm) != 0 {
		t.Fatalf("timers after the flush: %v", tm)
	}
	if !h.Now().Equal(start.Add(90 * time.Second)) {
		t.Fatalf("clock %v", h.Now())
	}
}

func TestEventTimeTimerAndWatermark(t *testing.T) {
	t.Parallel()
	sum := sabot.NewValue("sum", sabot.Int64())
	// Sums a key's values per 10s event-time window.
	fn := sabot.Function{
		Name:    "window",
		States:  []sabot.State{sum},
		Outputs: []string{"sums"},
		OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			et, ok := msg.EventTime()
			if !ok {
				return errors.New("no event time")
			}
			var v int64
			if err := msg.JSON(&v); err != nil {
				return err
			}
			s, _, err := sum.Get(ctx)
			if err != nil {
				return err
			}
			return errors.Join(sum.Set(ctx, s+v), ctx.SetEventTimer("end", et.Truncate(10*time.Second).Add(10*time.Second)))
		},
		OnTimer: func(ctx *sabot.Context, tm sabot.Timer) error {
			et, ok := ctx.EventTime()
			if !ok || !et.Equal(tm.Time) || ctx.Watermark().Before(tm.Time) {
				return fmt.Errorf("event time %v, %v; watermark %v; timer %v", et, ok, ctx.Watermark(), tm.Time)
			}
			s, _, err := sum.Get(ctx)
			if err != nil {
				return err
			}
			return errors.Join(ctx.Send("sums", fmt.Sprintf("%d@%d", s, tm.Time.Unix())), sum.Clear(ctx))
		},
	}
	h := sabottest.New(t, fn)
	base := time.Unix(1000, 0)
	for i, v := range []int{1, 2, 3} {
		if err := h.SendAt("window", "k", base.Add(time.Duration(i)*3*time.Second), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.AdvanceWatermark(base.Add(9 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if out := h.Outputs("sums"); len(out) != 0 {
		t.Fatalf("fired early: %v", out)
	}
	if err := h.AdvanceWatermark(base.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if out := h.Outputs("sums"); len(out) != 1 || string(out[0].Payload) != "6@1010" {
		t.Fatalf("sums %v", out)
	}
}

func TestTTLExpiresByProcessingTime(t *testing.T) {
	t.Parallel()
	last := sabot.NewValue("last", sabot.String(), sabot.WithTTL(time.Hour))
	fn := sabot.Function{
		Name:    "ttl",
		States:  []sabot.State{last},
		Outputs: []string{"previous"},
		OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			prev, ok, err := last.Get(ctx)
			if err != nil {
				return err
			}
			if !ok {
				prev = "<none>"
			}
			return errors.Join(ctx.Send("previous", prev), last.Set(ctx, string(msg.Payload)))
		},
	}
	h := sabottest.New(t, fn)
	for _, step := range []struct {
		advance time.Duration
		send    string
	}{{0, "a"}, {59 * time.Minute, "b"}, {time.Hour, "c"}} {
		if err := h.AdvanceProcessingTime(step.advance); err != nil {
			t.Fatal(err)
		}
		if err := h.Send("ttl", "k", step.send); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range h.Outputs("previous") {
		got = append(got, string(r.Payload))
	}
	// b was written 59 minutes after a (within the TTL); c an hour after
	// b (expired).
	if want := []string{"<none>", "a", "<none>"}; !slices.Equal(got, want) {
		t.Fatalf("previous %q, want %q", got, want)
	}
	if err := h.AdvanceProcessingTime(time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok := sabottest.Value(h, last, "ttl", "k"); ok {
		t.Fatalf("value after its TTL: %q", v)
	}
}

func TestMessagesBetweenFunctions(t *testing.T) {
	t.Parallel()
	fns := []sabot.Function{
		{Name: "ping", OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			return errors.Join(
				ctx.SendTo("pong/"+ctx.Key(), "now", 0),
				ctx.SendTo("pong/later", "later", 5*time.Second),
				ctx.SendAtEventTime("pong/event", "event", time.Unix(50, 0)),
				ctx.SendTo("elsewhere/k", "out", 0),
			)
		}},
		{Name: "pong", Outputs: []string{"got"}, OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			return ctx.Send("got", msg.From+">"+ctx.Key()+":"+string(msg.Payload))
		}},
	}
	h := sabottest.New(t, fns...)
	got := func() []string {
		var s []string
		for _, r := range h.Outputs("got") {
			s = append(s, string(r.Payload))
		}
		return s
	}
	if err := h.Send("ping", "k", ""); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ping/k>k:now"}; !slices.Equal(got(), want) {
		t.Fatalf("got %q, want %q", got(), want)
	}
	if err := h.AdvanceProcessingTime(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.AdvanceWatermark(time.Unix(50, 0)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ping/k>k:now", "ping/k>later:later", "ping/k>event:event"}; !slices.Equal(got(), want) {
		t.Fatalf("got %q, want %q", got(), want)
	}
	sent := h.Sent()
	if len(sent) != 1 || sent[0].Address != "elsewhere/k" || sent[0].From != "ping/k" || string(sent[0].Payload) != "out" {
		t.Fatalf("sent %+v", sent)
	}
}

func TestHandlerMisuseIsAnError(t *testing.T) {
	t.Parallel()
	other := sabot.NewValue("other", sabot.String())
	fn := sabot.Function{Name: "misuse", Outputs: []string{"out"}, OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
		switch string(msg.Payload) {
		case "reply":
			return ctx.Reply("x")
		case "output":
			return ctx.Send("nope", "x")
		case "state":
			return other.Set(ctx, "x")
		case "timer":
			return ctx.SetTimer("t", ctx.ProcessingTime())
		case "address":
			return ctx.SendTo("no-key", "x", 0)
		case "panic":
			var xs []int
			_ = xs[len(ctx.Key())] // a runtime panic: index out of range
		}
		return nil
	}}
	h := sabottest.New(t, fn)
	for _, tc := range []struct{ payload, want string }{
		{"reply", sabot.ErrNotInvoked.Error()},
		{"output", sabot.ErrUndeclaredOutput.Error() + `: "nope"`},
		{"state", sabot.ErrUndeclaredState.Error() + `: "other"`},
		{"timer", sabot.ErrNoTimerHandler.Error()},
		{"address", sabot.ErrInvalidAddress.Error()},
		{"panic", "panic: runtime error: index out of range"},
	} {
		t.Run(tc.payload, func(t *testing.T) {
			err := h.Send("misuse", "k", tc.payload)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Invoked, a reply is fine, once.
	if reply, err := h.Invoke("misuse", "k", "reply"); err != nil || string(reply) != "x" {
		t.Fatalf("invoke: %q, %v", reply, err)
	}
}

func TestLazyStateAcrossPages(t *testing.T) {
	t.Parallel()
	const n = 1300 // more than two pages of the SDK's 512
	seen := sabot.NewMap("seen", sabot.Int64(), sabot.String(), sabot.Lazy())
	log := sabot.NewList("log", sabot.Int64(), sabot.Lazy())
	fn := sabot.Function{Name: "lazy", States: []sabot.State{seen, log}, Outputs: []string{"stats"}, OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
		if string(msg.Payload) == "fill" {
			for i := range int64(n) {
				if err := errors.Join(seen.Put(ctx, i-n/2, strconv.FormatInt(i, 10)), log.Append(ctx, i)); err != nil {
					return err
				}
			}
			return nil
		}
		es, err := seen.Entries(ctx)
		if err != nil {
			return err
		}
		items, err := log.Get(ctx)
		if err != nil {
			return err
		}
		v, ok, err := seen.Get(ctx, 0)
		if err != nil {
			return err
		}
		ordered := slices.IsSortedFunc(es, func(a, b sabot.Entry[int64, string]) int { return int(a.Key - b.Key) })
		return ctx.Send("stats", fmt.Sprintf("%d %v %d %d %q %v", len(es), ordered, len(items), items[n-1], v, ok))
	}}
	h := sabottest.New(t, fn)
	if err := h.Send("lazy", "k", "fill"); err != nil {
		t.Fatal(err)
	}
	if err := h.Send("lazy", "k", "read"); err != nil {
		t.Fatal(err)
	}
	out := h.Outputs("stats")
	if want := fmt.Sprintf(`%d true %d %d "650" true`, n, n, n-1); len(out) != 1 || string(out[0].Payload) != want {
		t.Fatalf("stats %v, want %q", out, want)
	}
	if es := sabottest.Map(h, seen, "lazy", "k"); len(es) != n || es[0].Key != -n/2 {
		t.Fatalf("stored map: %d entries, first %v", len(es), es[0])
	}
}

// scriptStep is one harness operation of a scripted test: move the clock, then
// send a command to the function's key "k".
type scriptStep struct {
	advance time.Duration
	send    string
}

func runSteps(t *testing.T, h *sabottest.Harness, function string, steps []scriptStep) {
	t.Helper()
	for _, s := range steps {
		if err := h.AdvanceProcessingTime(s.advance); err != nil {
			t.Fatal(err)
		}
		if err := h.Send(function, "k", s.send); err != nil {
			t.Fatal(err)
		}
	}
}

func payloads(rs []sabottest.Record) []string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r.Payload))
	}
	return s
}

// TestListTTLPerElement checks that list TTL counts per element, as on the
// worker: older elements expire while newer ones stay, and a Replace writes
// every element anew. 600 elements a write make a lazy read span two pages.
func TestListTTLPerElement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []sabot.StateOption
	}{
		{"eager", []sabot.StateOption{sabot.WithTTL(time.Hour)}},
		{"lazy", []sabot.StateOption{sabot.WithTTL(time.Hour), sabot.Lazy()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := sabot.NewList("log", sabot.String(), tc.opts...)
			fn := sabot.Function{Name: "list", States: []sabot.State{log}, Outputs: []string{"got"}, OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
				cmd := strings.Fields(string(msg.Payload))
				switch cmd[0] {
				case "add": // add <prefix> <n>: appends prefix0 … prefix(n-1)
					n, err := strconv.Atoi(cmd[2])
					if err != nil {
						return err
					}
					items := make([]string, n)
					for i := range items {
						items[i] = cmd[1] + strconv.Itoa(i)
					}
					return log.Append(ctx, items...)
				case "replace": // writes the live elements anew
					items, err := log.Get(ctx)
					if err != nil {
						return err
					}
					return log.Replace(ctx, items)
				default: // get: count, first..last
					items, err := log.Get(ctx)
					if err != nil || len(items) == 0 {
						return errors.Join(err, ctx.Send("got", "0"))
					}
					return ctx.Send("got", fmt.Sprintf("%d %s..%s", len(items), items[0], items[len(items)-1]))
				}
			}}
			h := sabottest.New(t, fn)
			runSteps(t, h, "list", []scriptStep{
				{0, "add a 600"},
				{30 * time.Minute, "add b 600"},
				{0, "get"},
				{30 * time.Minute, "get"}, // a: exactly its TTL old
			})
			if items := sabottest.List(h, log, "list", "k"); len(items) != 600 || items[0] != "b0" {
				t.Fatalf("stored list: %d items, first %q", len(items), items[0])
			}
			runSteps(t, h, "list", []scriptStep{
				{0, "replace"},            // b counts from here on
				{45 * time.Minute, "get"}, // unreplaced, b would have expired 15 minutes ago
				{0, "add c 1"},
				{15 * time.Minute, "get"}, // b expires, c stays
				{45 * time.Minute, "get"}, // c too
			})
			if items := sabottest.List(h, log, "list", "k"); items != nil {
				t.Fatalf("stored list after every TTL: %q", items)
			}
			want := []string{"1200 a0..b599", "600 b0..b599", "600 b0..b599", "1 c0..c0", "0"}
			if got := payloads(h.Outputs("got")); !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// TestMapTTLPerEntry checks that map TTL counts per entry, as on the worker:
// a Put refreshes only its entry, and an expired entry reads as absent, by
// key and in Entries.
func TestMapTTLPerEntry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []sabot.StateOption
	}{
		{"eager", []sabot.StateOption{sabot.WithTTL(time.Hour)}},
		{"lazy", []sabot.StateOption{sabot.WithTTL(time.Hour), sabot.Lazy()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := sabot.NewMap("seen", sabot.String(), sabot.String(), tc.opts...)
			fn := sabot.Function{Name: "map", States: []sabot.State{seen}, Outputs: []string{"got"}, OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
				cmd := strings.Fields(string(msg.Payload))
				if cmd[0] == "put" { // put <key> <value>
					return seen.Put(ctx, cmd[1], cmd[2])
				}
				// show: a and b by key (before Entries, so a lazy map reads
				// them by key), then all entries.
				var out []string
				for _, k := range []string{"a", "b"} {
					v, ok, err := seen.Get(ctx, k)
					if err != nil {
						return err
					}
					if !ok {
						v = "-"
					}
					out = append(out, k+":"+v)
				}
				es, err := seen.Entries(ctx)
				if err != nil {
					return err
				}
				for _, e := range es {
					out = append(out, e.Key+"="+e.Value)
				}
				return ctx.Send("got", strings.Join(out, " "))
			}}
			h := sabottest.New(t, fn)
			runSteps(t, h, "map", []scriptStep{
				{0, "put a 1"},
				{0, "put b 1"},
				{30 * time.Minute, "put b 2"}, // refreshes b, not a
				{0, "show"},
				{30 * time.Minute, "show"}, // a expires, b stays
			})
			if es := sabottest.Map(h, seen, "map", "k"); len(es) != 1 || es[0].Key != "b" || es[0].Value != "2" {
				t.Fatalf("stored map: %v", es)
			}
			runSteps(t, h, "map", []scriptStep{{30 * time.Minute, "show"}}) // b too
			if es := sabottest.Map(h, seen, "map", "k"); es != nil {
				t.Fatalf("stored map after every TTL: %v", es)
			}
			want := []string{"a:1 b:2 a=1 b=2", "a:- b:2 b=2", "a:- b:-"}
			if got := payloads(h.Outputs("got")); !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

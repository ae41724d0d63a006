package eventtime_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// seeded returns a random source and logs its seed so a failure replays.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// TestMergerOracle drives an InputMerger with random watermarks and
// statuses. Always: the output never decreases. While no channel has ever
// been idle, the output equals the oracle, the minimum over the channels'
// highest watermarks.
func TestMergerOracle(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	for range 200 {
		n := 1 + r.IntN(5)
		v := eventtime.NewInputMerger(n)
		high := make([]int64, n)
		for i := range high {
			high[i] = eventtime.MinWatermark
		}
		everIdle := false
		last := v.Watermark()
		for range 100 {
			ch := r.IntN(n)
			var out int64
			var adv bool
			switch op := r.IntN(10); {
			case op < 7:
				wm := r.Int64N(1000)
				out, adv = v.Update(ch, wm)
				high[ch] = max(high[ch], wm)
			case op < 9:
				everIdle = true
				out, adv = v.SetIdle(ch, r.IntN(2) == 0)
			default:
				everIdle = true // an ended channel behaves as above MaxWatermark
				out, adv = v.EndOfInput(ch)
			}
			if out < last || (adv && out == last) || (!adv && out != last) {
				t.Fatalf("output %d (advanced %t) after %d", out, adv, last)
			}
			last = out
			if !everIdle {
				lo := high[0]
				for _, h := range high {
					lo = min(lo, h)
				}
				if out != lo {
					t.Fatalf("output %d, oracle min %d over %v", out, lo, high)
				}
			}
		}
	}
}

// TestMultiplexerOracle drives a Multiplexer of bounded generators with
// random events, periodic steps and split churn, without idleness. After
// each periodic step the combined watermark is the oracle's running
// maximum of min over splits of (max timestamp - delay - 1), and it never
// decreases.
func TestMultiplexerOracle(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	const delay = 7
	for range 200 {
		m := eventtime.NewMultiplexer(0)
		maxTS := map[string]int64{}
		splits := map[string]*eventtime.Split{}
		ids := []string{"a", "b", "c", "d"}
		now := time.Unix(0, 0)
		want := eventtime.MinWatermark
		emitted := map[string]int64{} // a split's partial watermark, as the oracle sees it
		for range 100 {
			id := ids[r.IntN(len(ids))]
			switch op := r.IntN(10); {
			case op < 6:
				s := splits[id]
				if s == nil {
					continue
				}
				batch := make([]int64, 1+r.IntN(8))
				for i := range batch {
					batch[i] = r.Int64N(1000)
					maxTS[id] = max(maxTS[id], batch[i])
				}
				s.OnEvents(batch)
			case op < 7:
				if splits[id] != nil {
					continue
				}
				s, err := m.AddSplit(id, eventtime.NewBoundedOutOfOrderness(delay*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				splits[id], maxTS[id], emitted[id] = s, eventtime.MinWatermark, eventtime.MinWatermark
			case op < 8:
				if splits[id] == nil {
					continue
				}
				if _, _, err := m.RemoveSplit(id); err != nil {
					t.Fatal(err)
				}
				delete(splits, id)
				delete(maxTS, id)
				delete(emitted, id)
				if wm := oracleMin(emitted); len(emitted) > 0 && wm > want {
					want = wm
				}
			default:
				now = now.Add(eventtime.DefaultInterval)
				before := m.Watermark()
				got, adv := m.OnPeriodicEmit(now)
				for id, ts := range maxTS {
					if ts != eventtime.MinWatermark {
						emitted[id] = max(emitted[id], ts-delay-1)
					}
				}
				if wm := oracleMin(emitted); len(emitted) > 0 && wm > want {
					want = wm
				}
				if got != want || adv != (got > before) {
					t.Fatalf("OnPeriodicEmit = %d, %t; oracle %d (splits %s)", got, adv, want, strings.Join(keys(emitted), ","))
				}
			}
			if m.Watermark() != want {
				t.Fatalf("combined %d, oracle %d", m.Watermark(), want)
			}
		}
	}
}

func oracleMin(m map[string]int64) int64 {
	lo := eventtime.MaxWatermark
	for _, v := range m {
		lo = min(lo, v)
	}
	return lo
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCallerBugsPanic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"channel out of range", func() { eventtime.NewInputMerger(2).Update(2, 0) }, "eventtime: input channel 2 out of range [0, 2)"},
		{"negative channel", func() { eventtime.NewInputMerger(1).SetIdle(-1, true) }, "eventtime: input channel -1 out of range [0, 1)"},
		{"no channels", func() { eventtime.NewInputMerger(0) }, "eventtime: input merger needs at least one channel, got 0"},
		{"split after remove", func() {
			m := eventtime.NewMultiplexer(0)
			s, _ := m.AddSplit("p0", eventtime.NewMonotonous())
			_, _, _ = m.RemoveSplit("p0")
			s.OnEvent(1)
		}, `eventtime: split "p0" used after RemoveSplit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if got := recover(); got != tc.want {
					t.Errorf("panic %v, want %q", got, tc.want)
				}
			}()
			tc.f()
		})
	}
}

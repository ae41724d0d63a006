package eventtime_test

import (
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// A source task with two Kafka partitions, bounded out-of-orderness of 5 ms
// and a one-minute idle timeout, paced by an injected clock.
func Example() {
	clock := clockwork.NewFakeClock()
	strategy := eventtime.Strategy{
		Kind:              eventtime.KindBoundedOutOfOrderness,
		MaxOutOfOrderness: 5 * time.Millisecond,
		IdleTimeout:       time.Minute,
	}
	if err := strategy.Validate(); err != nil {
		panic(err)
	}
	mux := strategy.NewMultiplexer()
	p0, _ := mux.AddSplit("orders-0", strategy.NewGenerator())
	p1, _ := mux.AddSplit("orders-1", strategy.NewGenerator())
	tick := eventtime.NewPeriodic(strategy.PeriodicInterval(), clock.Now())

	// The task's loop: a batch per split, then the periodic step when due.
	p0.OnEvents([]int64{1000, 1020, 1010})
	p1.OnEvents([]int64{990, 1001})
	clock.Advance(eventtime.DefaultInterval)
	if tick.Due(clock.Now()) {
		if wm, ok := mux.OnPeriodicEmit(clock.Now()); ok {
			fmt.Println("watermark", wm) // min(1020, 1001) - 5 - 1
		}
	}

	// orders-1 goes quiet; after the idle timeout orders-0 alone decides.
	for range 2 {
		p0.OnEvents([]int64{2000})
		clock.Advance(time.Minute)
		if tick.Due(clock.Now()) {
			if wm, ok := mux.OnPeriodicEmit(clock.Now()); ok {
				fmt.Println("watermark", wm, "idle", p1.Idle())
			}
		}
	}

	// End of input fires everything.
	wm, _ := mux.EndOfInput()
	fmt.Println("final", wm == eventtime.MaxWatermark)
	// Output:
	// watermark 995
	// watermark 1994 idle true
	// final true
}

// A two-input task (a join): the output watermark is the minimum over the
// inputs; an idle input is left out; an ended input counts as the maximum.
func ExampleInputMerger() {
	v := eventtime.NewInputMerger(2)
	v.Update(0, 100)
	fmt.Println(v.Update(1, 50))
	fmt.Println(v.SetIdle(1, true))
	fmt.Println(v.Update(0, 200))
	v.SetIdle(1, false)
	fmt.Println(v.Update(1, 300))
	fmt.Println(v.EndOfInput(0))
	// Output:
	// 50 true
	// 100 true
	// 200 true
	// 200 false
	// 300 true
}

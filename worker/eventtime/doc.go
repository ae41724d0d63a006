// Package eventtime generates and merges watermarks: the event-time clock
// of a job. It owns the rules; the runtime (worker/runtime) owns the tasks
// that apply them and the elements that carry watermarks and idle/active
// status between tasks.
//
// Timestamps and watermarks are int64 milliseconds since the epoch. A
// watermark t says no later record has an event time <= t. MinWatermark
// (math.MinInt64) means none yet; MaxWatermark (math.MaxInt64) is the
// final watermark at end of input, which fires every event-time timer.
//
// The semantics follow Flink's documentation and implementation
// ("Generating Watermarks", "Timely Stream Processing" and the classes
// named below), so jobs ported from Flink behave alike:
//
//   - Generators (Flink's WatermarkGenerator). BoundedOutOfOrderness emits
//     periodically maxTimestamp - maxDelay - 1 and nothing before the first
//     event (BoundedOutOfOrdernessWatermarks); NewMonotonous is the same
//     with zero delay, maxTimestamp - 1 (AscendingTimestampsWatermarks);
//     Punctuated emits from marked records, not periodically. No generator
//     returns a watermark at or below one it returned before. The batch
//     form, OnEvents over a batch's event-time column, is the hot path and
//     allocates nothing.
//   - Periodic emission: Periodic paces calls to OnPeriodicEmit in
//     processing time at the auto-watermark interval (Flink's
//     pipeline.auto-watermark-interval, DefaultInterval = 200 ms), at fixed
//     delay, from a clock the task injects.
//   - Per-split watermarks: Multiplexer gives each split of a source
//     subtask its own generator and emits the minimum over active splits,
//     never decreasing (WatermarkOutputMultiplexer). With an idle timeout
//     (WatermarkStrategy.withIdleness) a split without events is left out
//     of the minimum until its next event; the output holds rather than
//     going back when it returns. All splits idle makes the output idle.
//   - Multi-input tasks: InputMerger takes the minimum over active, aligned
//     input channels, never decreasing, ignores idle channels, realigns a
//     returning channel only once it catches up, flushes to the maximum
//     when the last active channel turns idle, and counts an ended channel
//     as MaxWatermark (StatusWatermarkValve). As in Flink, one ended
//     channel with every other channel idle takes the output to
//     MaxWatermark.
//   - Timestamp assignment: Millis and Extractor read a batch's event-time
//     column (timestamp of any unit, int64 ms, date64) into int64
//     milliseconds without per-row allocation; a null is an error naming
//     the row, for the runtime's bad-record policy.
//   - Configuration: Strategy is the manifest's watermark settings, with
//     Validate and a per-split generator factory.
//
// Differences from Flink, all at batch granularity: a punctuated watermark
// takes effect after the batch holding its marker, not between rows; and
// idleness is checked at periodic emissions, so a split turns idle between
// the timeout and the timeout plus one interval after its last event.
//
// Status protocol. Idle/active status travels with watermarks. After a
// call that may change it, a task compares Multiplexer.Idle or
// InputMerger.Idle with the status it last sent and sends the new one: an
// "active" status before any watermark, an "idle" status after the
// watermark the same call returned. A receiving task delivers them to its
// InputMerger with SetIdle; watermarks on an idle channel are ignored.
//
// Concurrency. Nothing here is safe for concurrent use: every generator,
// Periodic, Multiplexer, Split, InputMerger and Extractor is owned by one
// task and used from that task's goroutine, which is how the hot path
// stays free of locks. Nothing here starts goroutines or reads a clock:
// processing time is passed in.
//
// A source task's loop, in outline (see Example):
//
//	mux := strategy.NewMultiplexer()
//	split, _ := mux.AddSplit("orders-0", strategy.NewGenerator())
//	tick := eventtime.NewPeriodic(strategy.PeriodicInterval(), clock.Now())
//	for each batch of the split:
//		ts, err := extract.Extract(batch)      // bad-record policy on err
//		wm, adv, err := split.OnBatch(batch, ts)
//		send status if mux.Idle() changed; send batch; if adv, send wm
//		if tick.Due(clock.Now()) { wm, adv = mux.OnPeriodicEmit(clock.Now()); … }
//	at end of input: wm, _ = mux.EndOfInput() // MaxWatermark
package eventtime

// Package window is the window engine of the dataflow runtime: Flink's
// WindowOperator and EvictingWindowOperator, with their assigners,
// triggers and evictors, over any element type and independent of Arrow.
//
// It owns the semantics: which windows an element belongs to, when a
// window fires, what it emits, what is late, when its state goes. It does
// not own batches, keys or the clock: the runtime's window operator
// (worker/runtime) sets the current key, feeds elements one at a time,
// passes watermarks and processing time, and turns the results into
// batches.
//
// # State
//
// Everything the engine remembers lives in the state backend of the
// state.Keyed it is built on, partitioned by key group, so a checkpoint of
// the backend is a checkpoint of the windows and a restore needs nothing
// else:
//
//	<name>-acc       value per (key, window): element count + accumulator (Aggregate, Reduce, AggregateProcess)
//	<name>-list      list per (key, window): the elements (Process)
//	<name>-elements  list per (key, window): elements with timestamps (any Function with an Evictor)
//	<name>-merging   value per key: the merging window set (session assigners)
//	<name>-trigger-* trigger state per (key, window) (CountTrigger's count, ContinuousEventTimeTrigger's next firing)
//	_timers/<name>/  event-time and processing-time timers per (key, window)
//
// The namespace of a window is AppendNamespace's 16 bytes (order
// preserving); the merging set lives in the default namespace. Only the
// processing time and the late-records counter are held in memory: the
// runtime advances processing time again after a restore, and the counter
// is a metric.
//
// # Semantics
//
// The control flow is Flink's (WindowOperator.processElement, onEventTime,
// onProcessingTime, and the merge callback of MergingWindowSet):
//
//   - ProcessElement assigns the element's windows. For each window that is
//     not late (event time: MaxTimestamp + AllowedLateness > watermark) it
//     adds the element to the contents, calls the trigger's OnElement,
//     emits on FIRE, clears the contents on PURGE, and sets the cleanup
//     timer at MaxTimestamp + AllowedLateness (event time) or MaxTimestamp
//     (processing time); none for a window ending at the end of time.
//   - An element none of whose windows took it and whose timestamp is late
//     (ts + AllowedLateness ≤ watermark) goes to Config.Late, or is
//     dropped and counted (LateRecordsDropped). An element that got no
//     window for another reason (a custom assigner returned none) is
//     ignored, as in Flink.
//   - A timer calls the trigger's OnEventTime/OnProcessingTime for its
//     window, emits or purges as told, and at the window's cleanup time
//     clears contents, trigger state and timers, and the merging-set entry.
//   - FIRE keeps the contents: each later firing (early firings of a
//     ContinuousEventTimeTrigger, or a late element within the allowed
//     lateness, which the EventTimeTrigger fires at once) emits the result
//     over everything so far. Windows are cleaned only by their cleanup
//     timer, never by firing.
//   - Merging assigners (sessions) keep per key the in-flight windows and,
//     for each, the state window whose namespace holds its contents. A new
//     window that intersects or touches in-flight ones merges with them
//     into the covering window: the trigger's OnMerge is called for it,
//     then Clear for each merged window, whose cleanup timers are deleted,
//     and the contents of the merged state windows are folded into the
//     surviving one (accumulators with AggregateFunction.Merge, lists
//     appended). Timers are per in-flight window, so a merged-away window
//     never fires. As in Flink the new window is merged before it is
//     checked for lateness: a late element whose window reaches a live
//     session joins it; one that reaches nothing live is late.
//   - Emitted results carry (key, window, value); their event time is
//     window.MaxTimestamp(), as in Flink.
//
// # Decisions where Flink is silent or different
//
//   - Time is int64 milliseconds. Processing time is what the caller
//     passes to AdvanceProcessingTime (starting at 0), never a wall clock;
//     processing-time assigners use the latest value, so the runtime
//     advances it before the elements it should apply to (say, per batch).
//   - Sliding accepts slide > size, as Flink: an element between windows
//     belongs to none and is dropped (it is not late). Constructors reject
//     sizes, gaps, counts and intervals ≤ 0 with ErrInvalidConfig naming
//     the setting.
//   - Cumulate follows Flink SQL's CUMULATE(step, size, offset) for the
//     DataStream-style engine: windows of a max-window share its start,
//     aligned to maxSize.
//   - Merging: the merged window keeps the state window of the earliest
//     merged window; other state windows are folded in start order (list
//     windows list the earliest window's elements first). A new window
//     equal to an in-flight one joins it.
//   - Info.Count, the number of elements behind a result, is stored with
//     the accumulator of incremental aggregates (a uvarint beside it).
//   - TimeEvictor follows Flink's code: with m the newest timestamp among
//     the elements it keeps timestamps > m - size (evicts ≤ m - size).
//   - With an evictor, the function is called even when every element was
//     evicted before it (an aggregate then emits the result of an empty
//     accumulator), as in Flink's EvictingWindowOperator; a window whose
//     list is empty in state does not fire.
//   - Timers of merged-away windows are all deleted, so nothing fires for
//     a window that no longer exists. Flink deletes the cleanup timer and
//     calls the trigger's clear, but ContinuousEventTimeTrigger's onMerge
//     merges away the state that its clear needs to find the pending early
//     firing, which then fires into nothing; here OnMerge first deletes the
//     merged windows' early firings (TriggerContext.InWindow), and Clear
//     also deletes the end-of-window timer.
//   - Timers due at the same time fire in (key group, key, window) order,
//     the timer service's order; keys compare length first.
//   - Triggers create their partitioned state in Open, on the operator's
//     Keyed; the engine sets the namespace to the window before every other
//     call. A stateful trigger value serves one Operator.
//
// # Calling it from the runtime
//
// One Operator per operator subtask, on the task's goroutine; the engine
// starts no goroutine and holds no lock. Callbacks (Emit, Late, the
// Function, triggers, evictors) run on that goroutine during the call that
// caused them and must not call the Operator.
//
//	k, _ := state.NewKeyed(backend, "window-1")
//	tumbling, _ := window.Tumbling[int64](window.EventTime, 60_000, 0)
//	op, err := window.New(k, window.Config[int64, int64]{
//		Assigner:        tumbling,
//		AllowedLateness: 5_000,
//		Function: window.Reduce(func(a, b int64) int64 { return a + b }, state.Int64Codec{}),
//		Emit: func(key []byte, w window.Window, total int64) error {
//			return sums.Append(key, w, total) // the runtime's batch builder; key is valid during the call
//		},
//		Late: func(key []byte, ts int64, v int64) error { return late.Append(key, ts, v) },
//	})
//	// per input row:
//	k.SetCurrentKey(keyBytes, keyGroup)
//	op.ProcessElement(rowTimestamp, rowValue)
//	// per watermark, after the rows before it:
//	op.AdvanceWatermark(wm)
//	// per batch, and when NextProcessingTime is due:
//	op.AdvanceProcessingTime(nowMillis)
//
// The element type is the runtime's choice: a value per row (as above), a
// row index into a retained batch, or a small struct, with a Codec when
// windows keep elements (Process, evictors). Timestamps and the Emit
// window's MaxTimestamp are int64 milliseconds, the runtime's event-time
// column. A watermark of math.MaxInt64 (end of input) fires and cleans
// every event-time window; processing-time windows wait for processing
// time, and the global window is never cleaned up.
//
// Every error is returned to the caller, wrapping ErrInvalidConfig,
// ErrInvalidGap, ErrNoTimestamp or ErrLateMerge, a callback's error, or
// a state backend error; after an error from ProcessElement or an Advance
// call the task fails and restores from its last checkpoint.
package window

package window

import (
	"math"
	"strings"

	"github.com/sabotdev/sabot/worker/state"
)

// DefaultName is Config.Name's default.
const DefaultName = "window"

// Config configures an Operator.
type Config[T, OUT any] struct {
	// Name prefixes the operator's state names ("<name>-acc",
	// "<name>-list", "<name>-elements", "<name>-merging",
	// "<name>-trigger-...") and names its timer service, so two window
	// operators can share a Keyed. Default DefaultName; no '/'.
	Name string
	// Assigner assigns elements to windows. Required.
	Assigner Assigner[T]
	// Trigger decides when windows fire. Default: Assigner.DefaultTrigger().
	// A merging assigner needs a trigger that CanMerge.
	Trigger Trigger[T]
	// Evictor, if set, makes windows keep their elements (even for an
	// aggregate) and evict some at each firing. Default none.
	Evictor Evictor[T]
	// AllowedLateness in milliseconds (event time only, ≥ 0, default 0):
	// windows keep their contents until the watermark passes
	// MaxTimestamp + AllowedLateness, so late elements within it update
	// (and, with the event-time trigger, re-fire) the window. Ignored for
	// processing-time windows, as in Flink.
	AllowedLateness int64
	// Function computes the results. Required.
	Function Function[T, OUT]
	// Codec encodes elements; required when elements are kept (Process,
	// or any Function with an Evictor).
	Codec state.Codec[T]
	// Emit receives each result with its key (valid during the call only)
	// and window; the result's timestamp is w.MaxTimestamp(), as in Flink.
	// Required. An error fails the Operator call that fired the window.
	Emit func(key []byte, w Window, out OUT) error
	// Late receives elements that arrived after all their windows were
	// cleaned up (Flink's sideOutputLateData). Default nil: such elements
	// are dropped and counted in LateRecordsDropped.
	Late func(key []byte, ts int64, v T) error
}

// core is the untyped part of an Operator that triggers, contents and the
// merging set share: the keyed state context, timers and clocks.
type core struct {
	k        *state.Keyed
	timers   *state.TimerService
	procTime int64
	ns       []byte // the current namespace, encoded
	cur      Window // the window ns holds, when nsSet
	nsSet    bool
}

// setNS makes w the current namespace.
func (c *core) setNS(w Window) {
	if c.nsSet && c.cur == w {
		return
	}
	c.ns = AppendNamespace(c.ns[:0], w)
	c.k.SetCurrentNamespace(c.ns)
	c.cur, c.nsSet = w, true
}

// setVoidNS makes the default namespace current (the merging set's).
func (c *core) setVoidNS() {
	c.k.SetCurrentNamespace(nil)
	c.nsSet = false
}

// Operator is the window engine of one operator subtask: Flink's
// WindowOperator and EvictingWindowOperator. See the package doc for the
// call protocol. Not safe for concurrent use; it runs on the task's
// goroutine and starts none.
type Operator[T, OUT any] struct {
	c         core
	assigner  Assigner[T]
	eventTime bool
	trigger   Trigger[T]
	lateness  int64
	contents  contents[T, OUT]
	set       *mergingSet // merging assigners only
	emit      func(key []byte, w Window, out OUT) error
	late      func(key []byte, ts int64, v T) error

	tctx        TriggerContext
	info        Info
	wins        []Window // scratch for the assigner
	lateDropped int64

	// method values bound once, so calls allocate no closures
	emitFn      func(OUT) error
	mergeFn     mergeFunc
	onEventFn   func(state.Timer) error
	onProcessFn func(state.Timer) error
}

// New builds the window operator of one subtask on k (the operator's keyed
// context; the Operator changes its current namespace, and its current key
// when timers fire). It registers its states and its timer service on k,
// loading stored timers (restore), and opens the trigger. It fails with
// ErrInvalidConfig naming the setting for a bad Config, and with the state
// package's errors for a state conflict.
func New[T, OUT any](k *state.Keyed, cfg Config[T, OUT]) (*Operator[T, OUT], error) {
	if k == nil {
		return nil, configError("keyed state", "must not be nil")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Assigner == nil {
		return nil, configError("assigner", "must not be nil")
	}
	if cfg.Trigger == nil {
		cfg.Trigger = cfg.Assigner.DefaultTrigger()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	timers, err := k.TimerService(cfg.Name)
	if err != nil {
		return nil, err
	}
	op := &Operator[T, OUT]{
		c:         core{k: k, timers: timers},
		assigner:  cfg.Assigner,
		eventTime: cfg.Assigner.IsEventTime(),
		trigger:   cfg.Trigger,
		lateness:  cfg.AllowedLateness,
		emit:      cfg.Emit,
		late:      cfg.Late,
	}
	if !op.eventTime {
		op.lateness = 0
	}
	op.tctx.c = &op.c
	op.emitFn = op.emitOne
	op.mergeFn = op.mergeWindows
	op.onEventFn = op.onEventTime
	op.onProcessFn = op.onProcessingTime

	switch fn := cfg.Function; {
	case cfg.Evictor != nil:
		st, err := state.List(k, state.ListDescriptor[Timestamped[T]]{Name: cfg.Name + "-elements", Codec: timestampedCodec[T]{cfg.Codec}})
		if err != nil {
			return nil, err
		}
		op.contents = &evictingContents[T, OUT]{c: &op.c, st: st, ev: cfg.Evictor, fn: fn.overList()}
	case fn.incremental != nil:
		if op.contents, err = fn.incremental(&op.c, cfg.Name); err != nil {
			return nil, err
		}
	default:
		st, err := state.List(k, state.ListDescriptor[T]{Name: cfg.Name + "-list", Codec: cfg.Codec})
		if err != nil {
			return nil, err
		}
		op.contents = &listContents[T, OUT]{c: &op.c, st: st, fn: fn.overList()}
	}
	if cfg.Assigner.Merging() {
		if op.set, err = newMergingSet(&op.c, cfg.Name); err != nil {
			return nil, err
		}
	}
	if err := cfg.Trigger.Open(k, cfg.Name+"-trigger"); err != nil {
		return nil, err
	}
	return op, nil
}

func (cfg *Config[T, OUT]) validate() error {
	fn := &cfg.Function
	switch {
	case strings.Contains(cfg.Name, "/"):
		return configError("name", "%q must not contain '/'", cfg.Name)
	case fn.kind == "":
		return configError("function", "must be built with Aggregate, Reduce, Process or AggregateProcess")
	case fn.err != nil:
		return fn.err
	case cfg.Emit == nil:
		return configError("emit", "must not be nil")
	case cfg.AllowedLateness < 0:
		return configError("allowed lateness", "%d must be ≥ 0", cfg.AllowedLateness)
	case cfg.Evictor != nil && cfg.Codec == nil:
		return configError("codec", "an element codec is required with an evictor (windows keep their elements)")
	case fn.incremental == nil && cfg.Codec == nil:
		return configError("codec", "an element codec is required with a %s function (windows keep their elements)", fn.kind)
	}
	if cfg.Assigner.Merging() {
		if !cfg.Trigger.CanMerge() {
			return configError("trigger", "a merging assigner needs a trigger that can merge")
		}
		if cfg.Evictor == nil && fn.incremental != nil && !fn.mergeable {
			return configError("aggregate Merge", "required by a merging assigner (sessions) without an evictor")
		}
	}
	return nil
}

// ProcessElement adds the element (v, ts) of the current key (set on the
// Keyed by the caller) to its windows, runs the trigger and emits what
// fires. An element all of whose windows are already cleaned up (event
// time: MaxTimestamp + AllowedLateness ≤ watermark) and whose timestamp is
// late (ts + AllowedLateness ≤ watermark) goes to Config.Late, or is
// counted as dropped. Errors come from the assigner (ErrInvalidGap,
// ErrNoTimestamp), merging (ErrLateMerge), the callbacks and the state
// backend; after one the task fails and restores.
func (op *Operator[T, OUT]) ProcessElement(ts int64, v T) error {
	op.c.nsSet = false // the caller may have changed the namespace
	wins, err := op.assigner.AssignWindows(v, ts, op.c.procTime, op.wins[:0])
	op.wins = wins[:0]
	if err != nil {
		return err
	}
	skipped := true
	if op.set != nil {
		if skipped, err = op.processMerging(v, ts, wins); err != nil {
			return err
		}
	} else {
		for _, w := range wins {
			if op.isWindowLate(w) {
				continue
			}
			skipped = false
			if err := op.processWindow(v, ts, w, w); err != nil {
				return err
			}
		}
	}
	if skipped && op.isElementLate(ts) {
		if op.late != nil {
			return op.late(op.c.k.CurrentKey(), ts, v)
		}
		op.lateDropped++
	}
	return nil
}

// processMerging is ProcessElement's merging branch: each window goes
// through the merging set first.
func (op *Operator[T, OUT]) processMerging(v T, ts int64, wins []Window) (skipped bool, err error) {
	skipped = true
	if err := op.set.load(); err != nil {
		return skipped, err
	}
	for _, w := range wins {
		actual, err := op.set.add(w, op.mergeFn)
		if err != nil {
			return skipped, err
		}
		if op.isWindowLate(actual) {
			op.set.retire(actual)
			continue
		}
		skipped = false
		sw, ok := op.set.stateWindow(actual)
		if !ok {
			panicf("window %s is not in the in-flight window set", actual)
		}
		if err := op.processWindow(v, ts, actual, sw); err != nil {
			return skipped, err
		}
	}
	return skipped, op.set.persist()
}

// processWindow adds the element to window w, whose contents live in
// state window sw, and acts on the trigger.
func (op *Operator[T, OUT]) processWindow(v T, ts int64, w, sw Window) error {
	op.c.setNS(sw)
	if err := op.contents.add(v, ts); err != nil {
		return err
	}
	op.c.setNS(w)
	op.tctx.window = w
	res, err := op.trigger.OnElement(v, ts, w, &op.tctx)
	if err != nil {
		return err
	}
	if err := op.act(res, w, sw); err != nil {
		return err
	}
	op.c.setNS(w)
	return op.registerCleanupTimer(w)
}

// act emits and purges per the trigger result.
func (op *Operator[T, OUT]) act(res TriggerResult, w, sw Window) error {
	if res.IsFire() {
		op.c.setNS(sw)
		op.info = Info{
			Key: op.c.k.CurrentKey(), Window: w,
			Watermark: op.c.timers.CurrentWatermark(), ProcessingTime: op.c.procTime,
		}
		if err := op.contents.fire(&op.info, op.emitFn); err != nil {
			return err
		}
	}
	if res.IsPurge() {
		op.c.setNS(sw)
		return op.contents.clear()
	}
	return nil
}

func (op *Operator[T, OUT]) emitOne(out OUT) error {
	return op.emit(op.info.Key, op.info.Window, out)
}

// mergeWindows is the merge function of the merging set (Flink's
// WindowOperator merge callback).
func (op *Operator[T, OUT]) mergeWindows(result Window, merged []Window, sw Window, mergedState []Window) error {
	if op.eventTime && op.cleanupTime(result) <= op.c.timers.CurrentWatermark() {
		return lateMerge(result, "watermark", op.c.timers.CurrentWatermark())
	}
	if !op.eventTime && result.MaxTimestamp() <= op.c.procTime {
		return lateMerge(result, "processing time", op.c.procTime)
	}
	op.c.setNS(result)
	op.tctx.window, op.tctx.merged = result, merged
	err := op.trigger.OnMerge(result, &op.tctx)
	op.tctx.merged = nil
	if err != nil {
		return err
	}
	for _, m := range merged {
		op.c.setNS(m)
		op.tctx.window = m
		if err := op.trigger.Clear(m, &op.tctx); err != nil {
			return err
		}
		if err := op.deleteCleanupTimer(m); err != nil {
			return err
		}
	}
	return op.contents.merge(sw, mergedState)
}

// onEventTime and onProcessingTime are the timer callbacks: the timer
// service has set the current key and namespace (the window).
func (op *Operator[T, OUT]) onEventTime(t state.Timer) error      { return op.onTimer(t, true) }
func (op *Operator[T, OUT]) onProcessingTime(t state.Timer) error { return op.onTimer(t, false) }

func (op *Operator[T, OUT]) onTimer(t state.Timer, eventTime bool) error {
	w, err := DecodeNamespace(t.Namespace)
	if err != nil {
		return err
	}
	op.c.cur, op.c.nsSet = w, true
	sw := w
	if op.set != nil {
		if err := op.set.load(); err != nil {
			return err
		}
		var ok bool
		if sw, ok = op.set.stateWindow(w); !ok {
			// A timer of a window merged away or cleaned up, left behind by
			// a trigger that did not delete it: nothing to do (Flink).
			return nil
		}
		op.c.setNS(w)
	}
	op.tctx.window = w
	var res TriggerResult
	if eventTime {
		res, err = op.trigger.OnEventTime(t.Timestamp, w, &op.tctx)
	} else {
		res, err = op.trigger.OnProcessingTime(t.Timestamp, w, &op.tctx)
	}
	if err != nil {
		return err
	}
	if err := op.act(res, w, sw); err != nil {
		return err
	}
	if eventTime == op.eventTime && t.Timestamp == op.cleanupTime(w) {
		if err := op.clearAll(w, sw); err != nil {
			return err
		}
	}
	if op.set != nil {
		return op.set.persist()
	}
	return nil
}

// clearAll deletes everything of window w at its cleanup time: contents,
// trigger state and timers, and its merging-set entry.
func (op *Operator[T, OUT]) clearAll(w, sw Window) error {
	op.c.setNS(sw)
	if err := op.contents.clear(); err != nil {
		return err
	}
	op.c.setNS(w)
	op.tctx.window = w
	if err := op.trigger.Clear(w, &op.tctx); err != nil {
		return err
	}
	if op.set != nil {
		op.set.retire(w)
	}
	return nil
}

// cleanupTime is when w's state goes: MaxTimestamp + AllowedLateness in
// event time (math.MaxInt64 on overflow: never), MaxTimestamp in
// processing time.
func (op *Operator[T, OUT]) cleanupTime(w Window) int64 {
	return satAdd(w.MaxTimestamp(), op.lateness)
}

func (op *Operator[T, OUT]) registerCleanupTimer(w Window) error {
	t := op.cleanupTime(w)
	switch {
	case t == math.MaxInt64:
		return nil // the end of time: never cleaned up (global window)
	case op.eventTime:
		return op.c.timers.RegisterEventTimeTimer(t)
	default:
		return op.c.timers.RegisterProcessingTimeTimer(t)
	}
}

func (op *Operator[T, OUT]) deleteCleanupTimer(w Window) error {
	t := op.cleanupTime(w)
	switch {
	case t == math.MaxInt64:
		return nil
	case op.eventTime:
		return op.c.timers.DeleteEventTimeTimer(t)
	default:
		return op.c.timers.DeleteProcessingTimeTimer(t)
	}
}

// isWindowLate: an event-time window already cleaned up.
func (op *Operator[T, OUT]) isWindowLate(w Window) bool {
	return op.eventTime && op.cleanupTime(w) <= op.c.timers.CurrentWatermark()
}

// isElementLate: Flink's isElementLate, ts + lateness ≤ watermark.
func (op *Operator[T, OUT]) isElementLate(ts int64) bool {
	return op.eventTime && satAdd(ts, op.lateness) <= op.c.timers.CurrentWatermark()
}

// satAdd is a + b for b ≥ 0, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// AdvanceWatermark moves event time to wm (it never goes back) and fires
// every event-time timer at or before it, in timestamp order: triggers
// fire windows and cleanup timers clear them. It changes the Keyed's
// current key: set it again before the next ProcessElement.
func (op *Operator[T, OUT]) AdvanceWatermark(wm int64) error {
	return op.c.timers.AdvanceWatermark(wm, op.onEventFn)
}

// AdvanceProcessingTime moves processing time to now (milliseconds; it
// never goes back) and fires every processing-time timer at or before it.
// Processing-time assigners put elements into the windows of this time,
// so call it before the elements it should apply to (say, once per input
// batch). Processing time starts at 0. Like AdvanceWatermark it changes the
// current key.
func (op *Operator[T, OUT]) AdvanceProcessingTime(now int64) error {
	op.c.procTime = max(op.c.procTime, now)
	return op.c.timers.AdvanceProcessingTime(op.c.procTime, op.onProcessFn)
}

// CurrentWatermark is the last watermark (math.MinInt64 before the first).
func (op *Operator[T, OUT]) CurrentWatermark() int64 { return op.c.timers.CurrentWatermark() }

// CurrentProcessingTime is the last time given to AdvanceProcessingTime.
func (op *Operator[T, OUT]) CurrentProcessingTime() int64 { return op.c.procTime }

// NextProcessingTime is the earliest processing-time timer, if any: when
// the runtime should call AdvanceProcessingTime next.
func (op *Operator[T, OUT]) NextProcessingTime() (int64, bool) {
	return op.c.timers.NextProcessingTime()
}

// LateRecordsDropped counts late elements dropped for want of a Late
// callback (Flink's numLateRecordsDropped). In memory: it restarts at 0.
func (op *Operator[T, OUT]) LateRecordsDropped() int64 { return op.lateDropped }

package sabot

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// stateReader serves a running call's lazy state reads: a session asks the
// worker over the stream. It fills in the read's id.
type stateReader interface {
	readState(ctx context.Context, r *sabotv1.StateRead) (*sabotv1.StateReadResult, error)
}

// engine runs calls: the one path from a sabotv1.Call to its CallResult,
// shared by the session server and (through it) sabottest. It holds no
// state between calls and is safe for concurrent use.
type engine struct {
	fns   map[string]*function
	names string // the served names, for errors
	desc  *sabotv1.DescribeResponse
}

func newEngine(fns []Function) (*engine, error) {
	desc, err := Describe(fns...)
	if err != nil {
		return nil, err
	}
	e := &engine{fns: make(map[string]*function, len(fns)), desc: desc}
	names := make([]string, 0, len(fns))
	for _, f := range fns {
		e.fns[f.Name] = compileFunction(f)
		names = append(names, f.Name)
	}
	slices.Sort(names)
	e.names = strings.Join(names, ", ")
	return e, nil
}

// handleCall runs the invocations of a call and returns its result, one
// InvocationResult per invocation in the call's order.
//
// The invocations are distinct keys, so they run concurrently, on at most
// GOMAXPROCS goroutines per call; the events of one invocation run in order
// on one goroutine. Invocations waiting for lazy reads hold their goroutine,
// so a call with many lazy readers is bounded by the worker's read latency,
// not by CPU.
func (e *engine) handleCall(ctx context.Context, call *sabotv1.Call, rd stateReader) *sabotv1.CallResult {
	invs := call.GetInvocations()
	res := &sabotv1.CallResult{Id: call.GetId(), Results: make([]*sabotv1.InvocationResult, len(invs))}
	// Even one invocation runs on its own goroutine: a handler calling
	// runtime.Goexit (t.FailNow in a test) then ends that goroutine only,
	// and the call still gets a result.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(invs), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(invs) {
					return
				}
				res.Results[i] = e.invoke(ctx, call, invs[i], rd)
			}
		})
	}
	wg.Wait()
	for i, r := range res.Results {
		if r == nil {
			res.Results[i] = &sabotv1.InvocationResult{
				Error: "sabot: invocation not completed: a handler called runtime.Goexit (t.FailNow in a handler?)",
			}
		}
	}
	return res
}

// invoke runs the events of one invocation in order. Any failure makes the
// result an error alone: the worker applies none of the invocation.
func (e *engine) invoke(ctx context.Context, call *sabotv1.Call, inv *sabotv1.Invocation, rd stateReader) *sabotv1.InvocationResult {
	fn := e.fns[inv.GetFunction()]
	if fn == nil {
		return &sabotv1.InvocationResult{Error: fmt.Sprintf("sabot: unknown function %q (serving %s)", inv.GetFunction(), e.names)}
	}
	c := &Context{ctx: ctx, call: call, fn: fn, key: inv.GetKey(), rd: rd, slots: make([]stateSlot, len(fn.decls))}
	for i, d := range fn.decls {
		c.slots[i] = stateSlot{d: d, known: !d.lazy}
	}
	for _, v := range inv.GetState() {
		i := fn.stateIndex(v.GetState())
		if i < 0 {
			return &sabotv1.InvocationResult{Error: fmt.Sprintf("sabot: worker sent state %q, not declared by function %q", v.GetState(), fn.Name)}
		}
		if err := c.slots[i].load(v); err != nil {
			return &sabotv1.InvocationResult{Error: err.Error()}
		}
	}
	for _, ev := range inv.GetEvents() {
		if err := c.handle(ev); err != nil {
			return &sabotv1.InvocationResult{Error: err.Error()}
		}
	}
	r := &sabotv1.InvocationResult{Messages: c.messages, Timers: c.timers, Replies: c.replies}
	for i := range c.slots {
		for _, m := range c.slots[i].muts {
			if m != nil {
				r.Mutations = append(r.Mutations, m)
			}
		}
	}
	return r
}

// handle runs the handler of one event, turning a panic into an error.
func (c *Context) handle(ev *sabotv1.Event) (err error) {
	c.msg, c.timer, c.replied = nil, nil, false
	defer func() {
		if v := recover(); v != nil {
			err = panicError(v)
		}
	}()
	switch k := ev.GetKind().(type) {
	case *sabotv1.Event_Message:
		c.msg = k.Message
		return c.fn.OnMessage(c, messageOf(k.Message))
	case *sabotv1.Event_Timer:
		if c.fn.OnTimer == nil {
			return fmt.Errorf("%w: %q got timer %q", ErrNoTimerHandler, c.fn.Name, k.Timer.GetName())
		}
		c.timer = k.Timer
		return c.fn.OnTimer(c, Timer{
			Name:   k.Timer.GetName(),
			Time:   time.UnixMilli(k.Timer.GetTimestampMs()),
			Domain: domainOf(k.Timer.GetDomain()),
		})
	default:
		return fmt.Errorf("sabot: event is neither a message nor a timer")
	}
}

// panicStackFrames bounds the stack a panic reports.
const panicStackFrames = 12

// panicError describes a handler's panic with the handler's part of the
// stack: the frames from the panic up to the engine, at most
// panicStackFrames of them.
func panicError(v any) error {
	var pcs [64]uintptr
	n := runtime.Callers(2, pcs[:]) // from this function's caller: the deferred recover
	frames := runtime.CallersFrames(pcs[:n])
	var b strings.Builder
	fmt.Fprintf(&b, "panic: %v\n", v)
	seenPanic, started, count := false, false, 0
	for {
		f, more := frames.Next()
		switch {
		case !seenPanic:
			seenPanic = f.Function == "runtime.gopanic"
		case !started && strings.HasPrefix(f.Function, "runtime."):
			// runtime.panicmem, sigpanic and the like: not the handler's.
		case strings.HasSuffix(f.Function, ".(*Context).handle"):
			return fmt.Errorf("%s", strings.TrimSuffix(b.String(), "\n"))
		default:
			started = true
			if count == panicStackFrames {
				b.WriteString("...\n")
				return fmt.Errorf("%s", strings.TrimSuffix(b.String(), "\n"))
			}
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
			count++
		}
		if !more {
			return fmt.Errorf("%s", strings.TrimSuffix(b.String(), "\n"))
		}
	}
}

// Package sabottest runs Sabot functions in tests, with an in-memory worker:
// a store for the keys' state, timers, a processing-time clock and a
// watermark that the test moves, and the outputs and messages the functions
// send.
//
// The harness runs the functions the way a worker does: it serves them with
// sabot.ServeListener on a loopback port and drives one Session over HTTP/2
// with the generated ConnectRPC client. Every event becomes a Call (its key's
// eager state attached); lazy reads are answered from the store; the
// mutations, timers and messages of the result are applied as the worker
// applies them (nothing of a failed invocation). So a test exercises the
// real protocol path, codecs included.
//
// State TTL counts as on the worker, on the harness's processing-time clock,
// per piece of state: a value expires TTL after its last Set; a list element
// TTL after it was appended (a Replace writes all its elements anew, so they
// all start again); a map entry TTL after its last Put, independently of the
// map's other entries. An expired value or map entry reads as absent, an
// expired element or entry is left out of lists, pages and Entries, and a
// list or map all of whose elements expired reads as empty. This holds for
// the eager state sent with a call, for lazy reads, and for Value, List and
// Map.
//
//	h := sabottest.New(t, counter)
//	if err := h.Send("counter", "alice", "hi"); err != nil {
//		t.Fatal(err)
//	}
//	n, _ := sabottest.Value(h, count, "counter", "alice") // 1
//
// Methods of a Harness are serialized: they may be called from several
// goroutines, but one event is handled at a time, each event in its own
// call. A handler must not call the harness (it would wait for itself).
package sabottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

// startMs is where the harness's processing-time clock starts:
// 2024-01-01T00:00:00Z.
const startMs = 1_704_067_200_000

// maxCascade bounds the calls one harness operation makes, so that
// functions sending messages to each other forever fail the test instead of
// hanging it.
const maxCascade = 10_000

// Record is a message sent to a named output.
type Record struct {
	// Key is the key of the function instance that sent it.
	Key     string
	Payload []byte
}

// Sent is a message sent to an address the harness does not serve.
type Sent struct {
	// From is the sender's address, "function/key".
	From    string
	Address string
	Payload []byte
	// Delay is the processing-time delay asked for (SendTo).
	Delay time.Duration
	// AtEventTime is the event time asked for (SendAtEventTime), if any.
	AtEventTime time.Time
}

// InvocationError is the failure of one invocation: the handler returned an
// error or panicked. Nothing of the invocation was applied.
type InvocationError struct {
	Function, Key string
	// Message is the error string of the result ("panic: …" for a panic).
	Message string
}

func (e *InvocationError) Error() string {
	return fmt.Sprintf("sabottest: %s/%s: %s", e.Function, e.Key, e.Message)
}

// Harness is an in-memory worker for a set of functions. Create it with New.
type Harness struct {
	t      testing.TB
	specs  map[string]*sabotv1.FunctionSpec
	stream *connect.BidiStreamForClient[sabotv1.SessionRequest, sabotv1.SessionResponse]

	mu        sync.Mutex // serializes operations; guards everything below
	nowMs     int64
	wmMs      int64
	nextCall  uint64
	nextReply uint64
	seq       int // orders delayed messages due at the same time
	store     map[stateID]*stored
	timers    map[timerID]struct{}
	delayed   []*delivery // to served functions, waiting for the clock or watermark
	queue     []*delivery // to served functions, due now
	outputs   map[string][]Record
	sent      []Sent
	replies   map[string][]byte
}

type stateID struct{ fn, key, state string }

// stored is the state of one declaration for one key. Each piece carries
// its own write time, because the worker's TTL applies per value, list
// element and map entry (worker/state's TTLConfig), not per state.
type stored struct {
	val     stamped            // a value
	items   []stamped          // a list, in append order
	entries map[string]stamped // a map
}

// stamped is a piece of state and when it was written, on the harness's
// processing-time clock.
type stamped struct {
	b  []byte
	ms int64
}

type timerID struct {
	fn, key, name string
	ms            int64
	domain        sabot.TimeDomain
}

// delivery is a message (or fired timer) for a served function instance.
type delivery struct {
	fn, key string
	ev      *sabotv1.Event
	dueMs   int64 // delayed: when it is due, by domain
	domain  sabot.TimeDomain
	seq     int // FIFO among equal due times
}

// New serves fns with sabot.ServeListener on a loopback port, connects to
// it as a worker, and stops both when the test ends. Invalid functions fail
// the test. The processing-time clock starts at 2024-01-01T00:00:00Z and
// the watermark before any event time.
func New(t testing.TB, fns ...sabot.Function) *Harness {
	t.Helper()
	if _, err := sabot.Describe(fns...); err != nil {
		t.Fatalf("sabottest: %v", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sabottest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sabot.ServeListener(ctx, l, fns...) }() // ends with the cleanup below

	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	client := sabotv1connect.NewFunctionProcessServiceClient(&http.Client{Transport: tr}, "http://"+l.Addr().String())
	h := &Harness{
		t:       t,
		specs:   make(map[string]*sabotv1.FunctionSpec),
		nowMs:   startMs,
		wmMs:    math.MinInt64,
		store:   make(map[stateID]*stored),
		timers:  make(map[timerID]struct{}),
		outputs: make(map[string][]Record),
		replies: make(map[string][]byte),
	}
	// Ordered: end the session (the process sees the worker close), drop
	// the now idle connection (else the process's stop waits a second for
	// the client to answer its GOAWAY), then stop the process.
	t.Cleanup(func() {
		if h.stream != nil {
			_ = h.stream.CloseRequest()
			for {
				if _, err := h.stream.Receive(); err != nil {
					break
				}
			}
			_ = h.stream.CloseResponse()
		}
		tr.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("sabottest: serve: %v", err)
		}
	})

	desc, err := client.Describe(ctx, connect.NewRequest(&sabotv1.DescribeRequest{}))
	if err != nil {
		t.Fatalf("sabottest: describe: %v", err)
	}
	for _, f := range desc.Msg.GetFunctions() {
		h.specs[f.GetName()] = f
	}
	h.stream = client.Session(ctx)
	return h
}

// Now is the harness's processing time.
func (h *Harness) Now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.UnixMilli(h.nowMs)
}

// Watermark is the harness's watermark.
func (h *Harness) Watermark() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.UnixMilli(h.wmMs)
}

// Send streams payload (encoded as sabot.EncodeMessage does) to the
// function's instance for key, without event time, and runs it with every
// message it causes that is due now. It returns the failures of those
// invocations (*InvocationError), joined.
func (h *Harness) Send(function, key string, payload any) error {
	return h.send(function, key, payload, nil, "")
}

// SendAt is Send with an event time.
func (h *Harness) SendAt(function, key string, eventTime time.Time, payload any) error {
	ms := eventTime.UnixMilli()
	return h.send(function, key, payload, &ms, "")
}

// Invoke sends payload as an invoked message, as a client's Invoke does, and
// returns the function's reply: nil when the handler did not reply.
func (h *Harness) Invoke(function, key string, payload any) ([]byte, error) {
	h.mu.Lock()
	h.nextReply++
	id := fmt.Sprintf("reply-%d", h.nextReply)
	h.mu.Unlock()
	err := h.send(function, key, payload, nil, id)
	h.mu.Lock()
	defer h.mu.Unlock()
	reply := h.replies[id]
	delete(h.replies, id)
	return reply, err
}

func (h *Harness) send(function, key string, payload any, eventMs *int64, replyID string) error {
	h.t.Helper()
	b, err := sabot.EncodeMessage(payload)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.specs[function] == nil {
		return fmt.Errorf("sabottest: function %q is not served", function)
	}
	h.queue = append(h.queue, &delivery{fn: function, key: key, ev: &sabotv1.Event{Kind: &sabotv1.Event_Message{
		Message: &sabotv1.Message{Payload: b, EventTimeMs: eventMs, ReplyId: replyID},
	}}})
	return h.runQueueLocked()
}

// AdvanceProcessingTime moves the processing-time clock d forward, firing
// the processing-time timers and delivering the delayed messages that fall
// due, in time order; while one fires, the clock reads its time. It returns
// the invocations' failures, joined.
func (h *Harness) AdvanceProcessingTime(d time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return h.advanceLocked(sabot.ProcessingTime, h.nowMs+d.Milliseconds())
}

// AdvanceWatermark moves the watermark to t (never back), firing the
// event-time timers and delivering the messages sent at event times up to
// t, in time order.
func (h *Harness) AdvanceWatermark(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := t.UnixMilli()
	if ms <= h.wmMs {
		return nil
	}
	h.wmMs = ms
	return h.advanceLocked(sabot.EventTime, ms)
}

// advanceLocked fires what is due in domain d up to ms, earliest first;
// what a firing sets up that is also due fires too. h.mu must be held.
func (h *Harness) advanceLocked(d sabot.TimeDomain, ms int64) error {
	var errs []error
	for {
		next := h.nextDueLocked(d, ms)
		if next == nil {
			break
		}
		if d == sabot.ProcessingTime && next.dueMs > h.nowMs {
			h.nowMs = next.dueMs
		}
		h.queue = append(h.queue, next)
		if err := h.runQueueLocked(); err != nil {
			errs = append(errs, err)
		}
	}
	if d == sabot.ProcessingTime && ms > h.nowMs {
		h.nowMs = ms
	}
	return errors.Join(errs...)
}

// nextDueLocked takes the earliest timer or delayed message of domain d due
// at or before ms. Timers fire before messages due at the same time, timers
// in (time, function, key, name) order. h.mu must be held.
func (h *Harness) nextDueLocked(d sabot.TimeDomain, ms int64) *delivery {
	var best *timerID
	for id := range h.timers {
		if id.domain != d || id.ms > ms {
			continue
		}
		if best == nil || timerLess(id, *best) {
			best = &id
		}
	}
	if best != nil {
		delete(h.timers, *best)
		return &delivery{fn: best.fn, key: best.key, dueMs: best.ms, ev: &sabotv1.Event{Kind: &sabotv1.Event_Timer{
			Timer: &sabotv1.FiredTimer{Name: best.name, TimestampMs: best.ms, Domain: sabotv1.TimeDomain(best.domain)},
		}}}
	}
	bi := -1
	for i, dl := range h.delayed {
		if dl.domain != d || dl.dueMs > ms {
			continue
		}
		if bi < 0 || dl.dueMs < h.delayed[bi].dueMs || dl.dueMs == h.delayed[bi].dueMs && dl.seq < h.delayed[bi].seq {
			bi = i
		}
	}
	if bi < 0 {
		return nil
	}
	dl := h.delayed[bi]
	h.delayed = slices.Delete(h.delayed, bi, bi+1)
	return dl
}

func timerLess(a, b timerID) bool {
	if a.ms != b.ms {
		return a.ms < b.ms
	}
	if a.fn != b.fn {
		return a.fn < b.fn
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.name < b.name
}

// runQueueLocked runs the due deliveries, one call each, until none is
// left. h.mu must be held.
func (h *Harness) runQueueLocked() error {
	var errs []error
	for n := 0; len(h.queue) > 0; n++ {
		if n == maxCascade {
			h.queue = nil
			return errors.Join(append(errs, fmt.Errorf("sabottest: more than %d calls in a row: functions sending to each other forever?", maxCascade))...)
		}
		dl := h.queue[0]
		h.queue = h.queue[1:]
		if err := h.callLocked(dl); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// callLocked makes one call with one invocation and applies its result.
// h.mu must be held.
func (h *Harness) callLocked(dl *delivery) error {
	spec := h.specs[dl.fn]
	inv := &sabotv1.Invocation{Function: dl.fn, Key: []byte(dl.key), Events: []*sabotv1.Event{dl.ev}}
	for _, s := range spec.GetStates() {
		if s.GetLazy() {
			continue
		}
		if v := h.stateValueLocked(dl.fn, dl.key, s); v != nil {
			inv.State = append(inv.State, v)
		}
	}
	h.nextCall++
	call := &sabotv1.Call{Id: h.nextCall, Invocations: []*sabotv1.Invocation{inv}, WatermarkMs: h.wmMs, ProcessingTimeMs: h.nowMs}
	if err := h.stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_Call{Call: call}}); err != nil {
		return fmt.Errorf("sabottest: session: %w", err)
	}
	for {
		resp, err := h.stream.Receive()
		if err != nil {
			return fmt.Errorf("sabottest: session: %w", err)
		}
		switch k := resp.GetKind().(type) {
		case *sabotv1.SessionResponse_Read:
			res := h.readLocked(call, k.Read)
			if err := h.stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_ReadResult{ReadResult: res}}); err != nil {
				return fmt.Errorf("sabottest: session: %w", err)
			}
		case *sabotv1.SessionResponse_Result:
			if k.Result.GetId() != call.GetId() || len(k.Result.GetResults()) != 1 {
				return fmt.Errorf("sabottest: result %d with %d invocations for call %d with 1", k.Result.GetId(), len(k.Result.GetResults()), call.GetId())
			}
			return h.applyLocked(dl.fn, dl.key, spec, k.Result.GetResults()[0])
		default:
			return fmt.Errorf("sabottest: session response with neither a read nor a result")
		}
	}
}

// readLocked answers a lazy read from the store, as the worker does.
func (h *Harness) readLocked(call *sabotv1.Call, r *sabotv1.StateRead) *sabotv1.StateReadResult {
	res := &sabotv1.StateReadResult{Id: r.GetId()}
	if r.GetCallId() != call.GetId() {
		res.Error = fmt.Sprintf("read for call %d, running %d", r.GetCallId(), call.GetId())
		return res
	}
	inv := call.GetInvocations()[0]
	if !bytes.Equal(r.GetKey(), inv.GetKey()) {
		res.Error = fmt.Sprintf("read of key %q, not in the call", r.GetKey())
		return res
	}
	spec := stateSpec(h.specs[inv.GetFunction()], r.GetState())
	if spec == nil {
		res.Error = fmt.Sprintf("state %q not declared by function %q", r.GetState(), inv.GetFunction())
		return res
	}
	// Expired pieces are dropped first, so offsets and pages count only
	// live elements and entries, as on the worker. The clock does not move
	// during a call, so the pages of one read agree.
	st := h.liveLocked(stateID{inv.GetFunction(), string(inv.GetKey()), r.GetState()}, spec)
	kind := spec.GetKind()
	switch w := r.GetWhat().(type) {
	case *sabotv1.StateRead_Value:
		if kind != sabotv1.StateKind_STATE_KIND_VALUE {
			res.Error = fmt.Sprintf("value read of %v state %q", kind, r.GetState())
		} else if st != nil {
			res.Found, res.Value = true, st.val.b
		}
	case *sabotv1.StateRead_MapKey:
		if kind != sabotv1.StateKind_STATE_KIND_MAP {
			res.Error = fmt.Sprintf("map key read of %v state %q", kind, r.GetState())
		} else if st != nil {
			e, ok := st.entries[string(w.MapKey)]
			res.Value, res.Found = e.b, ok
		}
	case *sabotv1.StateRead_Page:
		limit := int(w.Page.GetLimit())
		if limit <= 0 {
			limit = 1000 // the worker's default
		}
		switch kind {
		case sabotv1.StateKind_STATE_KIND_LIST:
			if st == nil {
				break
			}
			from := min(max(int(w.Page.GetOffset()), 0), len(st.items))
			to := min(from+limit, len(st.items))
			res.Items, res.More, res.Found = payloads(st.items[from:to]), to < len(st.items), len(st.items) > 0
		case sabotv1.StateKind_STATE_KIND_MAP:
			if st == nil {
				break
			}
			res.Found = len(st.entries) > 0
			after := w.Page.GetAfter()
			for _, k := range slices.Sorted(maps.Keys(st.entries)) {
				if len(after) > 0 && k <= string(after) {
					continue
				}
				if len(res.Entries) == limit {
					res.More = true
					break
				}
				res.Entries = append(res.Entries, &sabotv1.MapEntry{Key: []byte(k), Value: st.entries[k].b})
			}
		default:
			res.Error = fmt.Sprintf("page read of %v state %q", kind, r.GetState())
		}
	default:
		res.Error = "read of nothing"
	}
	return res
}

// applyLocked applies an invocation's result: all of it, or nothing of a
// failed one. h.mu must be held.
func (h *Harness) applyLocked(fn, key string, spec *sabotv1.FunctionSpec, r *sabotv1.InvocationResult) error {
	if r.GetError() != "" {
		return &InvocationError{Function: fn, Key: key, Message: r.GetError()}
	}
	for _, m := range r.GetMutations() {
		id := stateID{fn, key, m.GetState()}
		ss := stateSpec(spec, m.GetState())
		if ss == nil {
			return fmt.Errorf("sabottest: %s/%s: mutation of undeclared state %q", fn, key, m.GetState())
		}
		st := h.liveLocked(id, ss)
		if st == nil {
			st = &stored{}
		}
		// Each write stamps only what it writes: the rest of a list or map
		// keeps its own time, as the worker's per-element TTL does.
		now := h.nowMs
		switch op := m.GetOp().(type) {
		case *sabotv1.StateMutation_Clear:
			delete(h.store, id)
			continue
		case *sabotv1.StateMutation_Set:
			st.val = stamped{op.Set, now}
		case *sabotv1.StateMutation_Append:
			for _, b := range op.Append.GetItems() {
				st.items = append(st.items, stamped{b, now})
			}
		case *sabotv1.StateMutation_Replace:
			st.items = make([]stamped, 0, len(op.Replace.GetItems()))
			for _, b := range op.Replace.GetItems() {
				st.items = append(st.items, stamped{b, now})
			}
		case *sabotv1.StateMutation_Put:
			if st.entries == nil {
				st.entries = make(map[string]stamped)
			}
			st.entries[string(op.Put.GetKey())] = stamped{op.Put.GetValue(), now}
		case *sabotv1.StateMutation_Remove:
			delete(st.entries, string(op.Remove))
		default:
			return fmt.Errorf("sabottest: %s/%s: empty mutation of %q", fn, key, m.GetState())
		}
		h.store[id] = st
	}
	for _, tc := range r.GetTimers() {
		id := timerID{fn: fn, key: key, name: tc.GetName(), ms: tc.GetTimestampMs(), domain: sabot.ProcessingTime}
		if tc.GetDomain() == sabotv1.TimeDomain_TIME_DOMAIN_EVENT {
			id.domain = sabot.EventTime
		}
		if tc.GetDelete() {
			delete(h.timers, id)
		} else {
			h.timers[id] = struct{}{}
		}
	}
	for _, rp := range r.GetReplies() {
		h.replies[rp.GetReplyId()] = rp.GetPayload()
	}
	from := fn + "/" + key
	for _, m := range r.GetMessages() {
		if out, ok := m.GetTarget().(*sabotv1.OutgoingMessage_Output); ok {
			h.outputs[out.Output] = append(h.outputs[out.Output], Record{Key: key, Payload: m.GetPayload()})
			continue
		}
		h.routeLocked(from, m)
	}
	return nil
}

// routeLocked delivers a message to an address: to a served function now,
// later (delay, event time), or to Sent when it is not served here.
func (h *Harness) routeLocked(from string, m *sabotv1.OutgoingMessage) {
	addr := m.GetAddress()
	fn, key, _ := cutAddress(addr)
	if h.specs[fn] == nil {
		s := Sent{From: from, Address: addr, Payload: m.GetPayload(), Delay: time.Duration(m.GetDelayMs()) * time.Millisecond}
		if m.AtEventTimeMs != nil {
			s.AtEventTime = time.UnixMilli(m.GetAtEventTimeMs())
		}
		h.sent = append(h.sent, s)
		return
	}
	msg := &sabotv1.Message{Payload: m.GetPayload(), From: from}
	dl := &delivery{fn: fn, key: key, ev: &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: msg}}, seq: h.seq}
	h.seq++
	switch {
	case m.AtEventTimeMs != nil:
		msg.EventTimeMs = m.AtEventTimeMs
		if m.GetAtEventTimeMs() <= h.wmMs {
			h.queue = append(h.queue, dl)
			return
		}
		dl.domain, dl.dueMs = sabot.EventTime, m.GetAtEventTimeMs()
		h.delayed = append(h.delayed, dl)
	case m.GetDelayMs() > 0:
		dl.domain, dl.dueMs = sabot.ProcessingTime, h.nowMs+m.GetDelayMs()
		h.delayed = append(h.delayed, dl)
	default:
		h.queue = append(h.queue, dl)
	}
}

func cutAddress(addr string) (fn, key string, ok bool) {
	for i := 0; i < len(addr); i++ {
		if addr[i] == '/' {
			return addr[:i], addr[i+1:], true
		}
	}
	return addr, "", false
}

// liveLocked is the stored state of id with its expired pieces dropped, or
// nil when nothing of it is left. Like the worker's TTL (CleanupOnRead,
// NeverReturnExpired), it expires each value, list element and map entry on
// its own, once the processing-time clock reaches its write time plus the
// TTL; an expired piece is deleted, as the worker deletes it when a read
// finds it. h.mu must be held.
func (h *Harness) liveLocked(id stateID, spec *sabotv1.StateSpec) *stored {
	st := h.store[id]
	if st == nil {
		return nil
	}
	if ttl := spec.GetTtlMs(); ttl > 0 {
		expired := func(p stamped) bool { return h.nowMs >= p.ms+ttl }
		switch spec.GetKind() {
		case sabotv1.StateKind_STATE_KIND_VALUE:
			if expired(st.val) {
				delete(h.store, id)
				return nil
			}
		default:
			st.items = slices.DeleteFunc(st.items, expired)
			maps.DeleteFunc(st.entries, func(_ string, p stamped) bool { return expired(p) })
		}
	}
	if spec.GetKind() != sabotv1.StateKind_STATE_KIND_VALUE && len(st.items) == 0 && len(st.entries) == 0 {
		delete(h.store, id) // an empty list or map reads as absent
		return nil
	}
	return st
}

// payloads are the bytes of ps, in order.
func payloads(ps []stamped) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = p.b
	}
	return out
}

// stateValueLocked is the eager state sent with a call; nil when absent
// or empty.
func (h *Harness) stateValueLocked(fn, key string, spec *sabotv1.StateSpec) *sabotv1.StateValue {
	st := h.liveLocked(stateID{fn, key, spec.GetName()}, spec)
	if st == nil {
		return nil
	}
	v := &sabotv1.StateValue{State: spec.GetName()}
	switch spec.GetKind() {
	case sabotv1.StateKind_STATE_KIND_VALUE:
		v.Value = &sabotv1.StateValue_Bytes{Bytes: st.val.b}
	case sabotv1.StateKind_STATE_KIND_LIST:
		if len(st.items) == 0 {
			return nil
		}
		v.Value = &sabotv1.StateValue_List{List: &sabotv1.ListValue{Items: payloads(st.items)}}
	case sabotv1.StateKind_STATE_KIND_MAP:
		if len(st.entries) == 0 {
			return nil
		}
		m := &sabotv1.MapValue{}
		for _, k := range slices.Sorted(maps.Keys(st.entries)) {
			m.Entries = append(m.Entries, &sabotv1.MapEntry{Key: []byte(k), Value: st.entries[k].b})
		}
		v.Value = &sabotv1.StateValue_Map{Map: m}
	default:
		return nil
	}
	return v
}

func stateSpec(f *sabotv1.FunctionSpec, name string) *sabotv1.StateSpec {
	for _, s := range f.GetStates() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// Outputs are the records sent so far to a named output, in order.
func (h *Harness) Outputs(output string) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.outputs[output])
}

// Sent are the messages sent so far to addresses of functions the harness
// does not serve, in order.
func (h *Harness) Sent() []Sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

// Timers are the pending timers of a function instance, in time order.
func (h *Harness) Timers(function, key string) []sabot.Timer {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []timerID
	for id := range h.timers {
		if id.fn == function && id.key == key {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b timerID) int {
		if timerLess(a, b) {
			return -1
		}
		if timerLess(b, a) {
			return 1
		}
		return int(a.domain) - int(b.domain)
	})
	out := make([]sabot.Timer, len(ids))
	for i, id := range ids {
		out[i] = sabot.Timer{Name: id.name, Time: time.UnixMilli(id.ms), Domain: id.domain}
	}
	return out
}

// raw is a copy of the live stored state of a declaration for a function
// instance (expired pieces left out), or nil.
func (h *Harness) raw(s sabot.State, function, key string) *stored {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	spec := stateSpec(h.specs[function], s.Name())
	if spec == nil {
		h.t.Fatalf("sabottest: function %q does not declare state %q", function, s.Name())
	}
	st := h.liveLocked(stateID{function, key, s.Name()}, spec)
	if st == nil {
		return nil
	}
	return &stored{val: st.val, items: slices.Clone(st.items), entries: maps.Clone(st.entries)}
}

// Value is the stored value of a Value state of a function instance, and
// whether it has one (an expired one, TTL after its last Set, has none). A decode error fails the
// test.
func Value[T any](h *Harness, v *sabot.Value[T], function, key string) (T, bool) {
	h.t.Helper()
	var zero T
	st := h.raw(v, function, key)
	if st == nil {
		return zero, false
	}
	x, err := v.Codec().Decode(st.val.b)
	if err != nil {
		h.t.Fatalf("sabottest: state %q of %s/%s: %v", v.Name(), function, key, err)
	}
	return x, true
}

// List is the stored list of a List state of a function instance, without
// its expired elements (nil when empty or all expired). A decode error fails
// the test.
func List[T any](h *Harness, l *sabot.List[T], function, key string) []T {
	h.t.Helper()
	st := h.raw(l, function, key)
	if st == nil || len(st.items) == 0 {
		return nil
	}
	out := make([]T, len(st.items))
	for i, p := range st.items {
		x, err := l.Codec().Decode(p.b)
		if err != nil {
			h.t.Fatalf("sabottest: state %q of %s/%s, item %d: %v", l.Name(), function, key, i, err)
		}
		out[i] = x
	}
	return out
}

// Map is the stored map of a Map state of a function instance, without its
// expired entries, in key order (nil when empty or all expired). A decode
// error fails the test.
func Map[K, V any](h *Harness, m *sabot.Map[K, V], function, key string) []sabot.Entry[K, V] {
	h.t.Helper()
	st := h.raw(m, function, key)
	if st == nil || len(st.entries) == 0 {
		return nil
	}
	var out []sabot.Entry[K, V]
	for _, k := range slices.Sorted(maps.Keys(st.entries)) {
		mk, err := m.KeyCodec().Decode([]byte(k))
		if err != nil {
			h.t.Fatalf("sabottest: state %q of %s/%s, key %q: %v", m.Name(), function, key, k, err)
		}
		mv, err := m.ValueCodec().Decode(st.entries[k].b)
		if err != nil {
			h.t.Fatalf("sabottest: state %q of %s/%s, key %q: %v", m.Name(), function, key, k, err)
		}
		out = append(out, sabot.Entry[K, V]{Key: mk, Value: mv})
	}
	return out
}

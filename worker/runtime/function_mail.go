package runtime

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/state"
)

// FunctionMessenger delivers the messages functions send to other
// functions, or to keys another subtask owns (Config.Messenger; the
// worker's routes them like Invoke requests). Deliver returns nil once the
// receiver took the message with its effect committed; an error is
// retried. A request carries an idempotency key, so a repeated delivery
// takes effect once.
type FunctionMessenger interface {
	Deliver(ctx context.Context, req *sabotv1.InvokeRequest) error
}

// Function-to-function messages. A message to an address this subtask does
// not own is written, in the same atomic apply as the rest of the sender's
// result, to the sender key group's outbox (list state under a reserved
// key) with an idempotency key derived from the sender's address and a
// per-sender-key sequence number (also state). Once a checkpoint holding
// it completes, the subtask's mailer goroutine delivers it through the
// messenger (retrying until it succeeds); then the task
// removes it from the outbox. Messages from one subtask to one receiver
// arrive in the order they were sent (see mailer). A restored subtask delivers what its
// outboxes hold again; the receiver's idempotency record drops repeats. A
// sender that crashed before the checkpoint replays the same messages
// with the same sequence numbers, so nothing is duplicated either.
const (
	fnStateOutbox = "sabot.outbox"
	fnStateOutSeq = "sabot.outseq"
	// mailBackoffCap bounds the wait between delivery attempts.
	mailBackoffCap = 5 * time.Second
	// maxMailInFlight bounds the deliveries one subtask runs at once.
	maxMailInFlight = 256
	// maxMailBatch bounds the messages of one delivery.
	maxMailBatch = 500
)

// outboxKey is the reserved key of every key group's outbox: user keys
// are strings from rows or requests, which cannot start with NUL. (A
// string constant: the state API copies the key it is given.)
const outboxKey = "\x00sabot.outbox"

// mailEntry is one message in an outbox.
type mailEntry struct {
	kg  uint16
	req *sabotv1.InvokeRequest
}

// fnMail is a function subtask's messages on their way out. The task adds
// and removes, the coordinator releases, the mailer delivers.
type fnMail struct {
	mu        sync.Mutex
	pending   untilCommitted[mailEntry] // written, waiting for a checkpoint to complete
	ready     []mailEntry               // durable, to deliver
	delivered []mailEntry               // delivered, to remove from the outbox
	signal    chan struct{}
}

func newFnMail() *fnMail { return &fnMail{signal: make(chan struct{}, 1)} }

func (m *fnMail) notify() {
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *fnMail) add(e mailEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending.add(e)
}

// durable adds restored entries: a completed checkpoint holds them.
func (m *fnMail) durable(es []mailEntry) {
	m.mu.Lock()
	m.ready = append(m.ready, es...)
	m.mu.Unlock()
	m.notify()
}

func (m *fnMail) snapshotted(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending.snapshotted(id)
}

func (m *fnMail) completed(id int64) {
	m.mu.Lock()
	done := m.pending.completed(id)
	m.ready = append(m.ready, done...)
	m.mu.Unlock()
	if len(done) > 0 {
		m.notify()
	}
}

func (m *fnMail) takeReady() []mailEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.ready
	m.ready = nil
	return r
}

func (m *fnMail) done(e mailEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delivered = append(m.delivered, e)
}

func (m *fnMail) takeDelivered() []mailEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.delivered
	m.delivered = nil
	return d
}

// mailer delivers the ready messages until ctx ends: the subtask's one
// goroutine besides its task, started by Open and stopped by Close. It
// delivers in rounds: the messages ready at the start of a round are
// grouped by receiver, in the order they were sent; each receiver's go in
// one batched request (maxMailBatch at most, then the next), receivers
// concurrently (maxMailInFlight at once), each request retried until
// delivered; the next round starts when all are. So the messages from one
// subtask to one receiver arrive in the order they were sent, and a
// receiver many messages go to costs a request per batch, not per message
// (a delivery waits for the receiver's checkpoint).
func (f *functionOp) mailer(ctx context.Context) {
	sem := make(chan struct{}, maxMailInFlight)
	for {
		round := f.mail.takeReady()
		if len(round) == 0 {
			select {
			case <-f.mail.signal:
				continue
			case <-ctx.Done():
				return
			}
		}
		var (
			order []string
			byTo  = map[string][]mailEntry{}
		)
		for _, e := range round {
			to := e.req.GetFunction() + "/" + e.req.GetKey()
			if _, ok := byTo[to]; !ok {
				order = append(order, to)
			}
			byTo[to] = append(byTo[to], e)
		}
		var wg sync.WaitGroup
		for _, to := range order {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			es := byTo[to]
			wg.Go(func() {
				defer func() { <-sem }()
				for len(es) > 0 {
					n := min(len(es), maxMailBatch)
					if !f.deliver(ctx, es[:n]) {
						return
					}
					for _, e := range es[:n] {
						f.mail.done(e)
					}
					f.inbox.poke()
					es = es[n:]
				}
			})
		}
		wg.Wait()
	}
}

// deliver sends es, messages to one receiver in order, as one request,
// until it is delivered (true) or ctx ends (false).
func (f *functionOp) deliver(ctx context.Context, es []mailEntry) bool {
	req := proto.CloneOf(es[0].req)
	for _, e := range es[1:] {
		req.Batch = append(req.Batch, &sabotv1.BatchedMessage{Payload: e.req.GetPayload(), IdempotencyKey: e.req.GetIdempotencyKey()})
	}
	backoff := 100 * time.Millisecond
	for {
		err := f.messenger.Deliver(ctx, req)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		f.logger.Warn("function messages not delivered yet", "function", f.name, "to", req.GetFunction()+"/"+req.GetKey(),
			"messages", len(es), "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, mailBackoffCap)
	}
}

// post writes a message to another function (or another subtask's key) to
// the outbox of the sender's key group. The current key is the sender's.
func (f *functionOp) post(fn, key string, payload []byte, from []byte, kg uint16) error {
	if f.messenger == nil {
		return fmt.Errorf("function %q: message to %s/%s: this worker delivers no messages to other functions or subtasks", f.name, fn, key)
	}
	seq, _, err := f.outseq.Value()
	if err != nil {
		return err
	}
	seq++
	if err := f.outseq.Update(seq); err != nil {
		return err
	}
	req := &sabotv1.InvokeRequest{Function: fn, Key: key, Payload: payload, From: f.name + "/" + string(from),
		IdempotencyKey: fmt.Sprintf("sabot-msg/%s/%s/%d", f.name, from, seq), JobId: ""}
	enc, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if err := f.setKey([]byte(outboxKey), kg); err != nil {
		return err
	}
	if err := f.outbox.Add(enc); err != nil {
		return err
	}
	f.mail.add(mailEntry{kg: kg, req: req})
	return f.setKey(from, kg)
}

// openOutboxes finds the messages restored outboxes hold: they were in a
// completed checkpoint, so they go out again (the receivers drop
// repeats).
func (f *functionOp) openOutboxes() error {
	var es []mailEntry
	for kg := f.info.KeyGroupStart; kg <= f.info.KeyGroupEnd; kg++ {
		if err := f.setKey([]byte(outboxKey), uint16(kg)); err != nil {
			return err
		}
		items, err := f.outbox.Get()
		if err != nil {
			return err
		}
		for _, it := range items {
			req := new(sabotv1.InvokeRequest)
			if err := proto.Unmarshal(it, req); err != nil {
				return fmt.Errorf("function %q: outbox of key group %d: %w", f.name, kg, err)
			}
			es = append(es, mailEntry{kg: uint16(kg), req: req})
		}
	}
	if len(es) > 0 {
		f.logger.Info("function messages restored for delivery", "function", f.name, "subtask", f.info.Subtask, "messages", len(es))
		f.mail.durable(es)
	}
	return nil
}

// removeDelivered removes delivered messages from their outboxes.
func (f *functionOp) removeDelivered() error {
	d := f.mail.takeDelivered()
	if len(d) == 0 {
		return nil
	}
	byKG := map[uint16][]string{}
	for _, e := range d {
		byKG[e.kg] = append(byKG[e.kg], e.req.GetIdempotencyKey())
	}
	for kg, ids := range byKG {
		if err := f.setKey([]byte(outboxKey), kg); err != nil {
			return err
		}
		items, err := f.outbox.Get()
		if err != nil {
			return err
		}
		keep := items[:0]
		for _, it := range items {
			req := new(sabotv1.InvokeRequest)
			if err := proto.Unmarshal(it, req); err != nil {
				return err
			}
			if !slices.Contains(ids, req.GetIdempotencyKey()) {
				keep = append(keep, it)
			}
		}
		if len(keep) == 0 {
			err = f.outbox.Clear()
		} else {
			err = f.outbox.Update(keep)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// outboxStates registers the outbox and sequence states.
func (f *functionOp) outboxStates(k *state.Keyed) error {
	var err error
	if f.outbox, err = state.List(k, state.ListDescriptor[[]byte]{Name: fnStateOutbox, Codec: state.BytesCodec{}}); err != nil {
		return err
	}
	f.outseq, err = state.Value(k, state.ValueDescriptor[int64]{Name: fnStateOutSeq, Codec: state.Int64Codec{}})
	return err
}

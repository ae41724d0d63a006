package runtime

import (
	"context"
	"sync"

	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Gate is a task's input side of the exchange: every channel of every
// non-chained input edge of the task's head vertex, merged. Channel c of a
// gate is sender subtask c-off(e) of input edge e, where off(e) is the sum
// of the parallelism of the head's earlier inputs (see channelOffsets).
type Gate interface {
	// NumChannels is the number of sending subtasks, over all inputs.
	NumChannels() int
	// Recv blocks until an element arrives on any channel, or ctx ends.
	// The caller owns the element's batch reference.
	Recv(ctx context.Context) (channel int, el Element, err error)
}

// Sender is one sending subtask's end of one channel.
type Sender interface {
	// Send hands el, and its batch reference, to the channel. It blocks
	// while the receiver's buffer is full and returns ctx.Err() if ctx ends
	// first; the reference is released on error, so the caller never
	// releases after Send.
	Send(ctx context.Context, el Element) error
	// SendPriority hands a control element (an unaligned checkpoint's
	// barrier) to the receiver ahead of everything buffered: it takes no
	// credit and is received before any queued element. The element
	// carries the sequence number of the last element sent before it, so
	// the receiver knows which buffered elements it overtook.
	SendPriority(ctx context.Context, el Element) error
}

// Exchange provides the channels of one job attempt's non-chained edges.
// The local implementation hands batches over Go channels; the network
// implementation (netexchange.go) serializes them as Arrow IPC with
// credit-based flow control, behind the same two methods.
type Exchange interface {
	Gate(v *jobgraph.Vertex, subtask int) Gate
	Sender(e *jobgraph.Edge, from, to int) Sender
}

// envelope is an element on a local gate, tagged with its channel.
type envelope struct {
	channel int
	el      Element
}

// stashed is an element held back in a gate, with its arrival order.
type stashed struct {
	el      Element
	arrival uint64
}

// overtaker is a Gate whose buffered elements can be inspected: an
// unaligned checkpoint stores the elements its barrier overtook.
type overtaker interface {
	// Buffered calls fn for every element of channel c waiting in the
	// gate, in order, without taking them.
	Buffered(c int, fn func(el Element))
}

// blocker is a Gate that can hold back channels: checkpoint barrier
// alignment blocks each channel whose barrier arrived until every channel
// delivered it. Elements of a blocked channel stay buffered (bounded by
// the channel's credits) and come out, in order, once it is unblocked.
type blocker interface {
	Block(channel int)
	UnblockAll()
}

// localGate is one receiving subtask's input buffer: a bounded Go channel
// shared by all its senders, plus per-channel credits. A sender takes one
// of its channel's credits per element and the receiver returns it when
// Recv hands the element out, so a channel never has more than its
// credits in the gate, even while alignment holds it back (its elements
// then wait in the channel's stash, not in the shared queue, so the other
// channels keep flowing). The shared queue holds QueueCapacity elements
// per receiving subtask, however many senders there are.
//
// A gate of the network exchange also has remote channels (enableRemote):
// their elements are put by the stream reading them off the network
// (putRemote, putPriority) into a queue of their own, sized so that a put
// never blocks while senders honour their credits, and handing one out
// returns the credit through the channel's hook instead of the credits
// channel. A broken stream fails the gate: Recv returns its error.
type localGate struct {
	ch       chan envelope
	channels int
	credits  []chan struct{} // per channel; nil: unlimited (tests)
	blocked  []bool
	stash    [][]stashed // per channel: received while blocked, in order
	nstash   int
	arrivals uint64        // stashed elements so far: their arrival order
	prio     chan envelope // priority elements, ahead of everything
	sent     []uint64      // per channel: elements sent; each index is written by its one sender only

	// Remote channels (network exchange); all nil for a local gate.
	remote   chan envelope // elements of every remote channel, in arrival order
	returns  []func()      // per channel: returns a credit to a remote sender; nil for a local channel
	failed   chan struct{} // closed by fail
	failErr  error         // set before failed is closed
	failOnce sync.Once
}

func newLocalGate(channels, capacity int) *localGate {
	g := &localGate{ch: make(chan envelope, capacity), channels: channels,
		credits: make([]chan struct{}, channels), blocked: make([]bool, channels), stash: make([][]stashed, channels),
		prio: make(chan envelope, channels*16), sent: make([]uint64, channels)}
	for i := range g.credits {
		g.credits[i] = make(chan struct{}, capacity)
	}
	return g
}

func (g *localGate) NumChannels() int { return g.channels }

// enableRemote makes the channels with a non-nil entry in returns remote:
// their elements arrive through putRemote, and handing one out calls the
// channel's entry to return its credit. capacity is the credits of each
// channel, which bounds what the remote queue must hold. Called before any
// element moves.
func (g *localGate) enableRemote(returns []func(), capacity int) {
	n := 0
	for _, r := range returns {
		if r != nil {
			n++
		}
	}
	g.returns = returns
	g.remote = make(chan envelope, n*capacity)
	g.failed = make(chan struct{})
}

// putRemote hands an element received on remote channel c to the gate
// without blocking. The sender took a credit for it, so there is room; it
// reports false if there is not (the sender broke the protocol).
func (g *localGate) putRemote(c int, el Element) bool {
	g.sent[c]++
	el.seq = g.sent[c]
	select {
	case g.remote <- envelope{channel: c, el: el}:
		return true
	default:
		return false
	}
}

// putPriority hands a priority element received on remote channel c to the
// gate, ahead of everything buffered. It carries the sequence number of
// the last element sent before it; every element up to that one is already
// in the gate (a channel's stream is in order). It reports false, having
// released the element, if done ends first.
func (g *localGate) putPriority(done <-chan struct{}, c int, el Element) bool {
	el.seq = g.sent[c]
	select {
	case g.prio <- envelope{channel: c, el: el}:
		return true
	case <-done:
		el.release()
		return false
	}
}

// fail makes Recv return err from now on (the first error wins): a remote
// channel's stream broke, so the input is incomplete.
func (g *localGate) fail(err error) {
	g.failOnce.Do(func() {
		g.failErr = err
		close(g.failed)
	})
}

// Block holds back channel c's elements until UnblockAll.
func (g *localGate) Block(c int) {
	if g.blocked == nil {
		g.blocked, g.stash = make([]bool, g.channels), make([][]stashed, g.channels)
	}
	g.blocked[c] = true
}

// UnblockAll releases every channel; stashed elements come out first.
func (g *localGate) UnblockAll() { clear(g.blocked) }

func (g *localGate) Recv(ctx context.Context) (int, Element, error) {
	select {
	case env := <-g.prio:
		return env.channel, env.el, nil
	default:
	}
	if g.nstash > 0 {
		// The oldest stashed element of an unblocked channel: channels
		// are served in arrival order, so none starves.
		best := -1
		for c, st := range g.stash {
			if len(st) > 0 && !g.blocked[c] && (best < 0 || st[0].arrival < g.stash[best][0].arrival) {
				best = c
			}
		}
		if best >= 0 {
			st := g.stash[best]
			el := st[0].el
			st[0] = stashed{}
			g.stash[best] = st[1:]
			g.nstash--
			g.credit(best)
			return best, el, nil
		}
	}
	for {
		select {
		case env := <-g.prio:
			return env.channel, env.el, nil
		case env := <-g.ch:
			if g.blocked != nil && g.blocked[env.channel] {
				g.stashEnv(env)
				continue
			}
			g.credit(env.channel)
			return env.channel, env.el, nil
		case env := <-g.remote: // nil for a local gate
			if g.blocked != nil && g.blocked[env.channel] {
				g.stashEnv(env)
				continue
			}
			g.credit(env.channel)
			return env.channel, env.el, nil
		case <-g.failed: // nil for a local gate
			return 0, Element{}, g.failErr
		case <-ctx.Done():
			return 0, Element{}, ctx.Err()
		}
	}
}

// Buffered implements overtaker: the queues are moved into the per-channel
// stashes (which Recv serves first, so per-channel order holds), and
// channel c's stash is visited.
func (g *localGate) Buffered(c int, fn func(el Element)) {
	if g.blocked == nil {
		g.blocked, g.stash = make([]bool, g.channels), make([][]stashed, g.channels)
	}
	for moved := true; moved; {
		select {
		case env := <-g.ch:
			g.stashEnv(env)
		case env := <-g.remote:
			g.stashEnv(env)
		default:
			moved = false
		}
	}
	for _, st := range g.stash[c] {
		fn(st.el)
	}
}

func (g *localGate) stashEnv(env envelope) {
	g.arrivals++
	g.stash[env.channel] = append(g.stash[env.channel], stashed{el: env.el, arrival: g.arrivals})
	g.nstash++
}

// credit returns one credit of channel c to its sender.
func (g *localGate) credit(c int) {
	if g.returns != nil && g.returns[c] != nil {
		g.returns[c]()
		return
	}
	if g.credits != nil {
		<-g.credits[c]
	}
}

// drain releases whatever is still buffered. Only called once no task is
// running.
func (g *localGate) drain() {
	for c, st := range g.stash {
		for _, e := range st {
			e.el.release()
		}
		g.stash[c] = nil
	}
	g.nstash = 0
	for {
		select {
		case env := <-g.ch:
			env.el.release()
		case env := <-g.remote:
			env.el.release()
		case env := <-g.prio:
			env.el.release()
		default:
			return
		}
	}
}

type localSender struct {
	gate    *localGate
	channel int
}

func (s localSender) Send(ctx context.Context, el Element) error {
	if s.gate.sent != nil {
		s.gate.sent[s.channel]++
		el.seq = s.gate.sent[s.channel]
	}
	if s.gate.credits != nil {
		select {
		case s.gate.credits[s.channel] <- struct{}{}:
		case <-ctx.Done():
			el.release()
			return ctx.Err()
		}
	}
	select {
	case s.gate.ch <- envelope{channel: s.channel, el: el}:
		return nil
	case <-ctx.Done():
		el.release()
		return ctx.Err()
	}
}

func (s localSender) SendPriority(ctx context.Context, el Element) error {
	if s.gate.sent != nil {
		el.seq = s.gate.sent[s.channel]
	}
	select {
	case s.gate.prio <- envelope{channel: s.channel, el: el}:
		return nil
	case <-ctx.Done():
		el.release()
		return ctx.Err()
	}
}

// localExchange is the in-process Exchange.
type localExchange struct {
	gates map[*jobgraph.Vertex][]*localGate
}

// newLocalExchange makes a gate for every subtask of every vertex that
// heads a task and has inputs.
func newLocalExchange(g *jobgraph.Graph, capacity int) *localExchange {
	x := &localExchange{gates: make(map[*jobgraph.Vertex][]*localGate)}
	for _, v := range g.Vertices {
		if !headsTask(v) || len(v.Inputs) == 0 {
			continue
		}
		n := 0
		for _, e := range v.Inputs {
			n += e.From.Parallelism
		}
		gs := make([]*localGate, v.Parallelism)
		for i := range gs {
			gs[i] = newLocalGate(n, capacity)
		}
		x.gates[v] = gs
	}
	return x
}

func (x *localExchange) Gate(v *jobgraph.Vertex, subtask int) Gate { return x.gates[v][subtask] }

func (x *localExchange) Sender(e *jobgraph.Edge, from, to int) Sender {
	return localSender{gate: x.gates[e.To][to], channel: channelOffset(e) + from}
}

// drain releases every buffered batch; call after all tasks stopped.
func (x *localExchange) drain() {
	for _, gs := range x.gates {
		for _, g := range gs {
			g.drain()
		}
	}
}

// channelOffset is the first gate channel of edge e at its receiver.
func channelOffset(e *jobgraph.Edge) int {
	off := 0
	for _, in := range e.To.Inputs {
		if in == e {
			return off
		}
		off += in.From.Parallelism
	}
	panic("runtime: edge is not an input of its receiver")
}

// headsTask reports whether v starts a task: a source, or a vertex whose
// input is not chained.
func headsTask(v *jobgraph.Vertex) bool {
	return len(v.Inputs) != 1 || !v.Inputs[0].Chained()
}

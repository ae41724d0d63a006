package runtime

import (
	"context"

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
}

// Exchange provides the channels of one job attempt's non-chained edges.
// The local implementation hands batches over Go channels; the network
// implementation (next milestone) will serialize them as Arrow IPC with
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

// localGate is one receiving subtask's input buffer: a bounded Go channel
// shared by all its senders. Bounded by QueueCapacity elements per
// receiving subtask, however many senders there are.
type localGate struct {
	ch       chan envelope
	channels int
}

func (g *localGate) NumChannels() int { return g.channels }

func (g *localGate) Recv(ctx context.Context) (int, Element, error) {
	select {
	case env := <-g.ch:
		return env.channel, env.el, nil
	case <-ctx.Done():
		return 0, Element{}, ctx.Err()
	}
}

// drain releases whatever is still buffered. Only called once no task is
// running.
func (g *localGate) drain() {
	for {
		select {
		case env := <-g.ch:
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
	select {
	case s.gate.ch <- envelope{channel: s.channel, el: el}:
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
			gs[i] = &localGate{ch: make(chan envelope, capacity), channels: n}
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

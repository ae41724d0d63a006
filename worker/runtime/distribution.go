package runtime

import (
	"slices"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// distribution is where the subtasks of an attempt spread over workers
// run (Config.Placement); nil when the whole attempt runs here.
type distribution struct {
	cfg    Config
	where  map[subtaskKey]*clusterv1.Placement
	coord  string // worker id of the coordinator share
	caddr  string // its address
	byAddr map[string]*remoteShare
}

func newDistribution(cfg Config) *distribution {
	remote := false
	for _, p := range cfg.Placement {
		remote = remote || p.GetWorkerId() != cfg.Self
	}
	if !remote {
		return nil // all here: the in-process exchange and coordinator
	}
	d := &distribution{cfg: cfg, where: make(map[subtaskKey]*clusterv1.Placement, len(cfg.Placement)),
		coord: cfg.Coordinator, byAddr: map[string]*remoteShare{}}
	if d.coord == "" {
		d.coord = cfg.Self
	}
	for _, p := range cfg.Placement {
		k := subtaskKey{p.GetVertexId(), int(p.GetSubtask())}
		d.where[k] = p
		if p.GetWorkerId() == d.coord {
			d.caddr = p.GetAddress()
		}
		if p.GetWorkerId() == cfg.Self {
			continue
		}
		r := d.byAddr[p.GetAddress()]
		if r == nil {
			r = &remoteShare{addr: p.GetAddress()}
			d.byAddr[p.GetAddress()] = r
		}
		r.subtasks = append(r.subtasks, k)
		if v := cfg.Graph.Vertex(k.vertex); v != nil && v.Kind == jobgraph.KindSource {
			r.sources = append(r.sources, k)
		}
	}
	return d
}

// local reports whether subtask s of vertex v runs here.
func (d *distribution) local(v string, s int) bool {
	return d.where[subtaskKey{v, s}].GetWorkerId() == d.cfg.Self
}

// addr is the base URL of the worker running subtask s of vertex v.
func (d *distribution) addr(v string, s int) string {
	return d.where[subtaskKey{v, s}].GetAddress()
}

// coordinates reports whether this share hosts the coordinator.
func (d *distribution) coordinates() bool { return d.coord == d.cfg.Self }

// join registers this share of the attempt for coordination calls and, on
// a share without the coordinator, starts the goroutine that forwards its
// acknowledgements to the coordinator. The returned function unregisters.
func (d *distribution) join(grp *taskGroup, coord *coordinator, cp *checkpointing, set checkpointSettings, tasks []*task, stop, stopping func()) (func(), error) {
	id := attemptID{d.cfg.JobID, d.cfg.Attempt}
	sh := &share{coord: coord, sources: sourcesOf(tasks), listeners: listenersOf(tasks), stop: stop, stopping: stopping, fail: grp.fail}
	if coord != nil {
		coord.co = d.cfg.Coordination
		for _, addr := range d.addrs() {
			coord.remote = append(coord.remote, *d.byAddr[addr])
		}
		return d.cfg.Coordination.register(id, sh), nil
	}
	n := 0
	for _, t := range tasks {
		n += len(t.nodes)
	}
	acks := make(chan ack, n*(set.maxConcurrent+1))
	finished := make(chan []subtaskKey, len(tasks))
	cp.acks, cp.finished = acks, finished
	unregister := d.cfg.Coordination.register(id, sh)
	// Not one of the group's goroutines: the group's Wait returns when the
	// tasks did, and this one then ends with the group's context (after
	// passing on what the last tasks sent).
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.cfg.Coordination.forward(grp.ctx, id, d.caddr, sh, acks, finished); err != nil {
			grp.fail(err)
		}
	}()
	return func() { <-done; unregister() }, nil
}

// addrs lists the other shares' addresses in a stable order.
func (d *distribution) addrs() []string {
	out := make([]string, 0, len(d.byAddr))
	for a := range d.byAddr {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// exchange implements Networker.
func (n *Network) exchange(g *jobgraph.Graph, capacity int, jobID string, attempt int64,
	local func(vertexID string, subtask int) bool, addr func(vertexID string, subtask int) string,
) distExchange {
	return n.newNetExchange(g, capacity, jobID, attempt, local, addr)
}

package invoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/group"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/keygroup"
)

// Package invoke routes invocations to the worker running the function
// subtask that owns the key: the gateway routes Invoke requests with it,
// workers the messages functions send to other functions.
//
// An invocation goes to the worker running the subtask of the function's
// step that owns the key's key group: the job is the request's job_id, or
// the one job running the function; the key group is
// keygroup.StringKeyGroup(key, max_parallelism) and the subtask
// jobgraph.SubtaskForKeyGroup over the step's parallelism, both read from
// the spec of the job's current attempt (its assignments), so a rescaled
// job routes by its new parallelism. The worker is the one the attempt's
// placement names for that subtask, or, for an attempt without placement,
// the one worker it runs on; its address is its registration's.
//
// The Router mirrors the records it reads (jobs, assignments, worker
// registrations) by an etcd watch owned by the Gateway, so routing needs
// no etcd round trip. While the watch is not in sync (at start, after a
// broken watch, or for a Handler without Start) and after a failed try,
// routing reads etcd directly; a refusal (no job runs the function,
// several do, an unknown or ended job) is only given after reading etcd,
// since the mirror may lag behind a deploy the caller just made. A job
// with several steps running the function takes invocations at the first.
//
// A worker answers Unavailable when it does not own the key right now (the
// job is restarting or rescaling); so does the transport when the worker
// is gone. The Router then tries again, with fresh reads, after a backoff
// (or as soon as the mirror changes) until shortly before the request's
// deadline (30 s when the caller set none), then answers DeadlineExceeded
// with the last reason. Every other answer of the worker, error or not,
// goes back to the caller as it is.

const (
	// defaultInvokeDeadline bounds an Invoke whose caller set no deadline.
	defaultInvokeDeadline = 30 * time.Second
	// Backoff between tries of one invocation: doubling from first to cap,
	// each wait jittered down by up to a half.
	invokeBackoffFirst = 20 * time.Millisecond
	invokeBackoffCap   = time.Second
	// invokeReplyMargin is how long before the deadline retries stop (at
	// most a fifth of the time the invocation had).
	invokeReplyMargin = 100 * time.Millisecond
	// mirrorRetry is the pause before the mirror resyncs after its watch
	// broke.
	mirrorRetry = time.Second
	// maxWorkerClients bounds the cache of per-address clients.
	maxWorkerClients = 1024
)

// errNoRoute means an invocation cannot be routed now but may be soon: the
// job is not placed (starting, restarting, rescaling), or the worker
// placed to own the key is gone. The Router retries it.
var errNoRoute = errors.New("no route")

// Router routes invocations. Its mirror is filled by follow, the one
// goroutine it owns (started by Start, stopped by Close); Invoke runs on
// the callers' goroutines.
type Router struct {
	etcd *clientv3.Client
	log  *slog.Logger
	tr   *http.Transport
	hc   *http.Client
	g    *group.Group // nil until start

	mu struct {
		sync.Mutex
		// synced: the maps below follow etcd.
		synced      bool
		jobs        map[string]jobEntry                         // job id → what routing needs of it
		assignments map[string]map[string]*clusterv1.Assignment // job id → worker id → assignment
		workers     map[string]string                           // worker id → address
		// changed is closed (and replaced) on every change of the mirror.
		changed chan struct{}
		clients map[string]sabotv1connect.FunctionServiceClient // by worker address
	}
}

// jobEntry is what routing needs of a job record.
type jobEntry struct {
	name      string
	state     sabotv1.JobState
	functions []string // cluster.FunctionNames of its spec
}

func newJobEntry(j *sabotv1.Job) jobEntry {
	return jobEntry{name: j.GetSpec().GetName(), state: j.GetStatus().GetState(), functions: cluster.FunctionNames(j.GetSpec())}
}

// takesInvocations: the job is not ending (HostsFunction's rule).
func (e jobEntry) takesInvocations() bool {
	return !cluster.IsTerminal(e.state) && e.state != sabotv1.JobState_JOB_STATE_CANCELING
}

// NewRouter returns a router reading etcd; Start begins its mirror.
func NewRouter(etcd *clientv3.Client, log *slog.Logger) *Router {
	// Workers serve HTTP/2 without TLS only (h2c with prior knowledge):
	// a transport that also allowed HTTP/1 would speak HTTP/1.1 to http://
	// addresses, which workers refuse.
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols:       p,
		IdleConnTimeout: 90 * time.Second,
		HTTP2:           &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second},
	}
	r := &Router{etcd: etcd, log: log, tr: tr, hc: &http.Client{Transport: tr}}
	r.mu.changed = make(chan struct{})
	r.mu.clients = map[string]sabotv1connect.FunctionServiceClient{}
	return r
}

// Start begins mirroring etcd.
func (r *Router) Start() {
	r.g = group.New(context.Background())
	r.g.Go("invoke-routing-mirror", r.follow)
}

// Close stops the mirror (waiting for its goroutine) and closes idle
// connections to workers. Invocations in flight fail with their
// connections; the gateway's server has stopped taking requests first.
func (r *Router) Close() {
	if r.g != nil {
		r.g.Stop(nil)
	}
	r.tr.CloseIdleConnections()
}

// Invoke routes req, retrying as the package comment says.
func (r *Router) Invoke(ctx context.Context, req *sabotv1.InvokeRequest) (*sabotv1.InvokeResponse, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultInvokeDeadline)
		defer cancel()
		deadline, _ = ctx.Deadline()
	}
	// Retries end a little before the deadline, so that the caller, whose
	// deadline is the same, still gets the reason rather than its own
	// timeout.
	giveUp := deadline.Add(-min(invokeReplyMargin, time.Until(deadline)/5))
	var last error
	tooLate := func() error {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"invoke %s/%s: no worker took the invocation before the deadline (the job may be restarting or rescaling; retry with the same idempotency key): %w",
			req.GetFunction(), req.GetKey(), last))
	}
	fresh := false
	backoff := invokeBackoffFirst
	for {
		// Taken before reading, so that a change after the read ends the wait.
		changed := r.changedSignal()
		t, err := r.target(ctx, r.view(fresh), req)
		switch {
		case err == nil:
			fwd := proto.CloneOf(req)
			fwd.JobId = t.jobID
			resp, err := r.client(t.address).Invoke(ctx, connect.NewRequest(fwd))
			if err == nil {
				return resp.Msg, nil
			}
			if connect.CodeOf(err) != connect.CodeUnavailable || ctx.Err() != nil {
				return nil, err // the worker's answer, as it is
			}
			last = fmt.Errorf("worker %s (%s) for %s[%d] of job %s: %w", t.workerID, t.address, t.vertex, t.subtask, t.jobID, err)
		case errors.Is(err, errNoRoute):
			last = err
		case !fresh:
			// The mirror may lag behind a write the caller just made
			// (deployed the function, say): a refusal is only given on
			// what etcd says now.
			fresh = true
			continue
		default:
			return nil, err
		}
		// Whatever the mirror said led nowhere: read etcd from now on.
		fresh = true
		left := time.Until(giveUp)
		if left <= 0 {
			return nil, tooLate()
		}
		wait := min(backoff/2+rand.N(backoff/2+1), left)
		backoff = min(2*backoff, invokeBackoffCap)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
		if !time.Now().Before(giveUp) {
			// Another try could outlast the caller's deadline: answer now.
			return nil, tooLate()
		}
	}
}

// target is where one invocation goes.
type target struct {
	jobID    string
	vertex   string
	subtask  int
	workerID string
	address  string
}

// target finds where req goes in what v shows. Input errors are connect
// errors; an error wrapping errNoRoute may resolve by itself.
func (r *Router) target(ctx context.Context, v routeView, req *sabotv1.InvokeRequest) (target, error) {
	fn := req.GetFunction()
	jobID := req.GetJobId()
	if jobID == "" {
		ids, err := v.jobsRunning(ctx, fn)
		if err != nil {
			return target{}, err
		}
		switch len(ids) {
		case 0:
			return target{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("function %s is not running in any job; deploy it (sabot deploy)", fn))
		case 1:
			jobID = ids[0]
		default:
			return target{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"function %s runs in %d jobs (%s); say which with job_id (sabot invoke --job ID)", fn, len(ids), strings.Join(ids, ", ")))
		}
	} else {
		e, ok, err := v.job(ctx, jobID)
		switch {
		case err != nil:
			return target{}, err
		case !ok:
			return target{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %s not found", jobID))
		case !slices.Contains(e.functions, fn):
			runs := "no function"
			if len(e.functions) > 0 {
				runs = "functions " + strings.Join(e.functions, ", ")
			}
			return target{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("job %s (%s) does not run function %s (it runs %s)", jobID, e.name, fn, runs))
		case !e.takesInvocations():
			return target{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("job %s (%s) is %s; it takes no invocations",
				jobID, e.name, strings.TrimPrefix(e.state.String(), "JOB_STATE_")))
		}
	}

	as, err := v.attempt(ctx, jobID)
	if err != nil {
		return target{}, err
	}
	if len(as) == 0 {
		return target{}, fmt.Errorf("%w: job %s runs on no worker right now", errNoRoute, jobID)
	}
	spec := as[0].GetSpec()
	vs := cluster.FunctionVertices(spec, fn)
	if len(vs) == 0 {
		// The job's record runs fn but this attempt does not: an old
		// attempt whose assignments are on their way out.
		return target{}, fmt.Errorf("%w: attempt %d of job %s does not run function %s", errNoRoute, as[0].GetAttempt(), jobID, fn)
	}
	// A job with several steps running fn takes invocations at the first.
	vtx := vs[0]
	maxP := int(spec.GetMaxParallelism())
	if maxP == 0 {
		maxP = jobgraph.DefaultMaxParallelism
	}
	kg := keygroup.StringKeyGroup(req.GetKey(), maxP)
	t := target{jobID: jobID, vertex: vtx.GetId(), subtask: jobgraph.SubtaskForKeyGroup(maxP, vertexParallelism(spec, vtx), kg)}
	t.workerID, t.address = owner(as, t.vertex, t.subtask)
	if t.workerID == "" {
		return target{}, fmt.Errorf("%w: attempt %d of job %s places %s[%d] on no worker", errNoRoute, as[0].GetAttempt(), jobID, t.vertex, t.subtask)
	}
	if t.address == "" {
		addr, ok, err := v.workerAddress(ctx, t.workerID)
		switch {
		case err != nil:
			return target{}, err
		case !ok:
			return target{}, fmt.Errorf("%w: worker %s, which runs %s[%d] of job %s, is gone", errNoRoute, t.workerID, t.vertex, t.subtask, jobID)
		case addr == "":
			return target{}, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"worker %s runs job %s but serves no address, so invocations cannot reach it; run workers with an address (worker --listen)", t.workerID, jobID))
		}
		t.address = addr
	}
	return t, nil
}

// vertexParallelism is v's parallelism in spec as jobgraph.Resolve
// decides it: its own, else the job's, else 1.
func vertexParallelism(spec *sabotv1.JobSpec, v *sabotv1.Vertex) int {
	if p := v.GetParallelism(); p > 0 {
		return int(p)
	}
	if p := spec.GetParallelism(); p > 0 {
		return int(p)
	}
	return 1
}

// owner finds the worker running subtask of vertex among one attempt's
// assignments, and its address if the placement says.
func owner(as []*clusterv1.Assignment, vertex string, subtask int) (workerID, address string) {
	for _, a := range as {
		for _, p := range a.GetPlacement() {
			if p.GetVertexId() == vertex && int(p.GetSubtask()) == subtask {
				return p.GetWorkerId(), p.GetAddress()
			}
		}
	}
	// Without placement the attempt runs whole on one worker.
	if len(as) == 1 && len(as[0].GetPlacement()) == 0 {
		return as[0].GetWorkerId(), ""
	}
	for _, a := range as {
		for _, st := range a.GetSubtasks() {
			if st.GetVertexId() == vertex && int(st.GetSubtask()) == subtask {
				return a.GetWorkerId(), ""
			}
		}
	}
	return "", ""
}

// client returns the FunctionService client of a worker address.
func (r *Router) client(address string) sabotv1connect.FunctionServiceClient {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.mu.clients[address]
	if !ok {
		if len(r.mu.clients) >= maxWorkerClients {
			clear(r.mu.clients) // workers come and go; rebuilding is cheap
		}
		c = sabotv1connect.NewFunctionServiceClient(r.hc, address)
		r.mu.clients[address] = c
	}
	return c
}

func (r *Router) changedSignal() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.changed
}

// notifyLocked wakes the invocations waiting for a change.
// r.mu must be held.
func (r *Router) notifyLocked() {
	close(r.mu.changed)
	r.mu.changed = make(chan struct{})
}

// routeView is what routing reads: the mirror, or etcd.
type routeView interface {
	// job returns a job's entry; ok is false for an unknown job.
	job(ctx context.Context, id string) (e jobEntry, ok bool, err error)
	// jobsRunning returns the ids of the jobs running function fn that
	// take invocations, sorted.
	jobsRunning(ctx context.Context, fn string) ([]string, error)
	// attempt returns the assignments of the newest attempt of a job.
	attempt(ctx context.Context, jobID string) ([]*clusterv1.Assignment, error)
	// workerAddress returns a live worker's address; ok is false for a
	// worker that is gone.
	workerAddress(ctx context.Context, id string) (address string, ok bool, err error)
}

// view returns the mirror if it is in sync and fresh is false, else etcd.
func (r *Router) view(fresh bool) routeView {
	if !fresh {
		r.mu.Lock()
		synced := r.mu.synced
		r.mu.Unlock()
		if synced {
			return mirrorView{r}
		}
	}
	return etcdView{r.etcd}
}

// newestAttempt keeps the assignments of the highest attempt.
func newestAttempt(as []*clusterv1.Assignment) []*clusterv1.Assignment {
	var top int64
	for _, a := range as {
		top = max(top, a.GetAttempt())
	}
	out := as[:0:0]
	for _, a := range as {
		if a.GetAttempt() == top {
			out = append(out, a)
		}
	}
	// Worker order makes the choice among assignments deterministic.
	slices.SortFunc(out, func(a, b *clusterv1.Assignment) int { return strings.Compare(a.GetWorkerId(), b.GetWorkerId()) })
	return out
}

// mirrorView reads the mirror. Records in it are never modified, only
// replaced, so they are used outside the lock.
type mirrorView struct{ r *Router }

func (m mirrorView) job(_ context.Context, id string) (jobEntry, bool, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	e, ok := m.r.mu.jobs[id]
	return e, ok, nil
}

func (m mirrorView) jobsRunning(_ context.Context, fn string) ([]string, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	var ids []string
	for id, e := range m.r.mu.jobs {
		if e.takesInvocations() && slices.Contains(e.functions, fn) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (m mirrorView) attempt(_ context.Context, jobID string) ([]*clusterv1.Assignment, error) {
	m.r.mu.Lock()
	byWorker := m.r.mu.assignments[jobID]
	as := make([]*clusterv1.Assignment, 0, len(byWorker))
	for _, a := range byWorker {
		as = append(as, a)
	}
	m.r.mu.Unlock()
	return newestAttempt(as), nil
}

func (m mirrorView) workerAddress(_ context.Context, id string) (string, bool, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	addr, ok := m.r.mu.workers[id]
	return addr, ok, nil
}

// etcdView reads etcd directly.
type etcdView struct{ kv clientv3.KV }

func (v etcdView) job(ctx context.Context, id string) (jobEntry, bool, error) {
	rec, err := cluster.Get(ctx, v.kv, cluster.JobKey(id), cluster.NewJob)
	if cluster.IsNotFound(err) {
		return jobEntry{}, false, nil
	}
	if err != nil {
		return jobEntry{}, false, err
	}
	return newJobEntry(rec.Value), true, nil
}

func (v etcdView) jobsRunning(ctx context.Context, fn string) ([]string, error) {
	recs, _, err := cluster.List(ctx, v.kv, cluster.JobsPrefix, cluster.NewJob, cluster.ListOptions{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, rec := range recs {
		if HostsFunction(rec.Value, fn) {
			ids = append(ids, rec.Value.GetId())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (v etcdView) attempt(ctx context.Context, jobID string) ([]*clusterv1.Assignment, error) {
	recs, _, err := cluster.List(ctx, v.kv, cluster.AssignmentsPrefix, cluster.NewAssignment, cluster.ListOptions{})
	if err != nil {
		return nil, err
	}
	var as []*clusterv1.Assignment
	for _, rec := range recs {
		if _, j, err := cluster.ParseAssignmentKey(rec.Key); err == nil && j == jobID {
			as = append(as, rec.Value)
		}
	}
	return newestAttempt(as), nil
}

func (v etcdView) workerAddress(ctx context.Context, id string) (string, bool, error) {
	rec, err := cluster.Get(ctx, v.kv, cluster.WorkerKey(id), cluster.NewWorker)
	if cluster.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return rec.Value.GetAddress(), true, nil
}

// follow keeps the mirror in sync until ctx ends: a full read, then the
// watches from there; a broken watch starts over after a pause.
func (r *Router) follow(ctx context.Context) {
	for {
		err := r.mirror(ctx)
		r.mu.Lock()
		r.mu.synced = false
		r.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("invoke routing: lost the etcd watch; routing reads etcd until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(mirrorRetry):
		}
	}
}

// mirror reads jobs, assignments and workers, installs them as the
// mirror, and applies the watches' events until one fails.
func (r *Router) mirror(ctx context.Context) error {
	// WithRequireLeader: a member cut off from the cluster ends the watch
	// instead of going silent.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	jobs, jobsRev, err := cluster.List(wctx, r.etcd, cluster.JobsPrefix, cluster.NewJob, cluster.ListOptions{})
	if err != nil {
		return err
	}
	assignments, assignmentsRev, err := cluster.List(wctx, r.etcd, cluster.AssignmentsPrefix, cluster.NewAssignment, cluster.ListOptions{})
	if err != nil {
		return err
	}
	workers, workersRev, err := cluster.List(wctx, r.etcd, cluster.WorkersPrefix, cluster.NewWorker, cluster.ListOptions{})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.mu.jobs = make(map[string]jobEntry, len(jobs))
	for _, j := range jobs {
		r.mu.jobs[strings.TrimPrefix(j.Key, cluster.JobsPrefix)] = newJobEntry(j.Value)
	}
	r.mu.assignments = map[string]map[string]*clusterv1.Assignment{}
	for _, a := range assignments {
		r.putAssignmentLocked(a.Key, a.Value)
	}
	r.mu.workers = make(map[string]string, len(workers))
	for _, w := range workers {
		r.mu.workers[strings.TrimPrefix(w.Key, cluster.WorkersPrefix)] = w.Value.GetAddress()
	}
	r.mu.synced = true
	r.notifyLocked()
	r.mu.Unlock()

	jw := r.etcd.Watch(wctx, cluster.JobsPrefix, clientv3.WithPrefix(), clientv3.WithRev(jobsRev+1))
	aw := r.etcd.Watch(wctx, cluster.AssignmentsPrefix, clientv3.WithPrefix(), clientv3.WithRev(assignmentsRev+1))
	ww := r.etcd.Watch(wctx, cluster.WorkersPrefix, clientv3.WithPrefix(), clientv3.WithRev(workersRev+1))
	for {
		var (
			wr    clientv3.WatchResponse
			ok    bool
			apply func(*clientv3.Event)
		)
		select {
		case wr, ok = <-jw:
			apply = r.applyJobLocked
		case wr, ok = <-aw:
			apply = r.applyAssignmentLocked
		case wr, ok = <-ww:
			apply = r.applyWorkerLocked
		}
		if !ok {
			return fmt.Errorf("watch closed: %w", context.Cause(wctx))
		}
		if err := wr.Err(); err != nil {
			return err
		}
		if len(wr.Events) == 0 {
			continue // a progress notification
		}
		r.mu.Lock()
		for _, ev := range wr.Events {
			apply(ev)
		}
		r.notifyLocked()
		r.mu.Unlock()
	}
}

// applyJobLocked applies one event under the jobs prefix. r.mu must be held.
func (r *Router) applyJobLocked(ev *clientv3.Event) {
	id := strings.TrimPrefix(string(ev.Kv.Key), cluster.JobsPrefix)
	if ev.Type == clientv3.EventTypeDelete {
		delete(r.mu.jobs, id)
		return
	}
	j := cluster.NewJob()
	if err := proto.Unmarshal(ev.Kv.Value, j); err != nil {
		r.log.Warn("invoke routing: skipping an undecodable job record", "key", string(ev.Kv.Key), "err", err)
		delete(r.mu.jobs, id)
		return
	}
	r.mu.jobs[id] = newJobEntry(j)
}

// applyAssignmentLocked applies one event under the assignments prefix.
// r.mu must be held.
func (r *Router) applyAssignmentLocked(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	if ev.Type == clientv3.EventTypeDelete {
		worker, job, err := cluster.ParseAssignmentKey(key)
		if err != nil {
			return
		}
		delete(r.mu.assignments[job], worker)
		if len(r.mu.assignments[job]) == 0 {
			delete(r.mu.assignments, job)
		}
		return
	}
	a := cluster.NewAssignment()
	if err := proto.Unmarshal(ev.Kv.Value, a); err != nil {
		r.log.Warn("invoke routing: skipping an undecodable assignment", "key", key, "err", err)
		return
	}
	r.putAssignmentLocked(key, a)
}

// putAssignmentLocked files a under its key. r.mu must be held.
func (r *Router) putAssignmentLocked(key string, a *clusterv1.Assignment) {
	worker, job, err := cluster.ParseAssignmentKey(key)
	if err != nil {
		r.log.Warn("invoke routing: skipping a malformed assignment key", "key", key, "err", err)
		return
	}
	byWorker := r.mu.assignments[job]
	if byWorker == nil {
		byWorker = map[string]*clusterv1.Assignment{}
		r.mu.assignments[job] = byWorker
	}
	byWorker[worker] = a
}

// applyWorkerLocked applies one event under the workers prefix. r.mu
// must be held.
func (r *Router) applyWorkerLocked(ev *clientv3.Event) {
	id := strings.TrimPrefix(string(ev.Kv.Key), cluster.WorkersPrefix)
	if ev.Type == clientv3.EventTypeDelete {
		delete(r.mu.workers, id)
		return
	}
	w := cluster.NewWorker()
	if err := proto.Unmarshal(ev.Kv.Value, w); err != nil {
		r.log.Warn("invoke routing: skipping an undecodable worker registration", "key", string(ev.Kv.Key), "err", err)
		delete(r.mu.workers, id)
		return
	}
	r.mu.workers[id] = w.GetAddress()
}

// HostsFunction says whether job runs function name and is not ending: a
// job that takes its invocations (and a redeploy of it).
func HostsFunction(job *sabotv1.Job, name string) bool {
	st := job.GetStatus().GetState()
	return !cluster.IsTerminal(st) && st != sabotv1.JobState_JOB_STATE_CANCELING && cluster.RunsFunction(job.GetSpec(), name)
}

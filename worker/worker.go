package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	invokepkg "github.com/sabotdev/sabot/internal/invoke"
	"github.com/sabotdev/sabot/worker/function"
	"github.com/sabotdev/sabot/worker/runtime"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/group"
)

// Worker is a running worker.
type Worker struct {
	cfg        Config
	g          *group.Group
	srv        *server
	addr       string // base URL of srv
	functions  *function.Host
	invoke     *runtime.Invocations
	router     *invokepkg.Router // routes messages between functions
	tmpDir     string            // removed by Close
	registered chan struct{}     // closed after the first registration
	regOnce    sync.Once
	closeOnce  sync.Once
}

// Start registers the worker and begins running what the scheduler assigns
// to it. It returns once the first registration is written, so a scheduler
// started afterwards sees the worker.
func Start(ctx context.Context, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var tmpDir string
	if cfg.FunctionDir == "" {
		dir, err := os.MkdirTemp("", "sabot-functions-")
		if err != nil {
			return nil, fmt.Errorf("worker: function directory: %w", err)
		}
		cfg.FunctionDir, tmpDir = dir, dir
	}
	invoke := runtime.NewInvocations()
	srv, err := listen(ctx, cfg, invoke)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, g: group.New(context.WithoutCancel(ctx)), registered: make(chan struct{}), srv: srv, addr: srv.address(cfg.Advertise),
		invoke: invoke, tmpDir: tmpDir, router: invokepkg.NewRouter(cfg.Etcd, cfg.Logger),
		functions: function.NewHost(function.HostConfig{Blobs: cfg.Blob, Dir: cfg.FunctionDir, Logger: cfg.Logger.With("worker", cfg.ID)})}
	go srv.serve()   // owned by w: Close stops it and waits
	w.router.Start() // owned by w: Close stops it
	w.g.Go("worker.sessions", w.sessionLoop, "worker", cfg.ID)
	select {
	case <-w.registered:
		return w, nil
	case <-ctx.Done():
		w.Close()
		return nil, fmt.Errorf("worker: register: %w", ctx.Err())
	}
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Close cancels every task, revokes the worker's lease and waits for all of
// the worker's goroutines. It is idempotent.
func (w *Worker) Close() {
	w.closeOnce.Do(func() {
		w.g.Stop(errors.New("worker: closed"))
		w.srv.close()
		w.router.Close()
		w.functions.Close()
		if w.tmpDir != "" {
			_ = os.RemoveAll(w.tmpDir)
		}
	})
}

// Address is the base URL of the worker's exchange endpoint.
func (w *Worker) Address() string { return w.addr }

// sessionLoop runs sessions until the worker is closed: a session ends when
// the lease is lost, and a new one registers again.
func (w *Worker) sessionLoop(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		w.cfg.Logger.Warn("worker session ended; registering again", "worker", w.cfg.ID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// session is one registration: lease, registration record, assignment watch
// and the jobs it runs. Every job it started is stopped before it returns.
func (w *Worker) session(ctx context.Context) error {
	cli := w.cfg.Etcd
	lease, err := cli.Grant(ctx, int64(w.cfg.LeaseTTL/time.Second))
	if err != nil {
		return fmt.Errorf("worker: grant lease: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		// Revoking removes our registration and reports at once. Bounded:
		// if etcd is gone the lease expires by itself.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		_, _ = cli.Revoke(rctx, lease.ID)
	}()
	ka, err := cli.KeepAlive(sctx, lease.ID)
	if err != nil {
		return fmt.Errorf("worker: keep lease alive: %w", err)
	}
	reg := &clusterv1.Worker{Id: w.cfg.ID, Address: w.addr, Slots: int32(w.cfg.Slots), StartedAt: timestamppb.New(w.cfg.Now())}
	if _, err := cli.Put(sctx, cluster.WorkerKey(w.cfg.ID), cluster.Marshal(reg), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("worker: register: %w", err)
	}
	w.cfg.Logger.Info("worker registered", "worker", w.cfg.ID, "address", w.addr, "slots", w.cfg.Slots, "lease", fmt.Sprintf("%x", lease.ID))
	w.regOnce.Do(func() { close(w.registered) })

	s := &session{w: w, lease: lease.ID, dirty: make(chan struct{}, 1)}
	s.mu.runs = map[string]*run{}
	defer s.stopAll()
	reporterDone := make(chan struct{})
	w.g.Go("worker.reporter", func(context.Context) {
		defer close(reporterDone)
		s.reportLoop(sctx)
	}, "worker", w.cfg.ID)
	defer func() { cancel(); <-reporterDone }()

	// Read what is assigned now, then watch from the next revision so no
	// change falls between the two.
	resp, err := cli.Get(sctx, cluster.WorkerAssignmentsPrefix(w.cfg.ID), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("worker: read assignments: %w", err)
	}
	for _, kv := range resp.Kvs {
		s.apply(sctx, kv.Key, kv.Value)
	}
	wch := cli.Watch(clientv3.WithRequireLeader(sctx), cluster.WorkerAssignmentsPrefix(w.cfg.ID),
		clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-ka:
			if !ok {
				return errors.New("worker: lease lost")
			}
		case wr, ok := <-wch:
			if !ok {
				return errors.New("worker: assignment watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("worker: assignment watch: %w", err)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					s.apply(sctx, ev.Kv.Key, nil)
				} else {
					s.apply(sctx, ev.Kv.Key, ev.Kv.Value)
				}
			}
		}
	}
}

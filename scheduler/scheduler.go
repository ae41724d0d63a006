package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/group"
)

// Scheduler is a running scheduler: a candidate for leadership that
// reconciles jobs while it leads.
type Scheduler struct {
	cfg    Config
	g      *group.Group
	leader chan struct{} // closed the first time this scheduler leads
}

// Start starts campaigning for leadership. It returns at once; Leading tells
// when this scheduler first became leader.
func Start(ctx context.Context, cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Scheduler{cfg: cfg, g: group.New(context.WithoutCancel(ctx)), leader: make(chan struct{})}
	s.g.Go("scheduler.campaign", s.campaignLoop, "scheduler", cfg.ID)
	return s, nil
}

// Leading is closed once this scheduler has become leader.
func (s *Scheduler) Leading() <-chan struct{} { return s.leader }

// Close stops reconciling, resigns leadership and waits for the scheduler's
// goroutines. It is idempotent.
func (s *Scheduler) Close() {
	s.g.Stop(errors.New("scheduler: closed"))
}

// campaignLoop campaigns, leads until the session ends, and campaigns again,
// until the scheduler is closed.
func (s *Scheduler) campaignLoop(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		err := s.leadOnce(ctx, &first)
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("scheduler leadership ended; campaigning again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (s *Scheduler) leadOnce(ctx context.Context, first *bool) error {
	// The session outlives ctx's cancellation on purpose: the deferred Close
	// must still be able to revoke the lease.
	sess, err := concurrency.NewSession(s.cfg.Etcd,
		concurrency.WithTTL(int(s.cfg.LeaseTTL/time.Second)),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return fmt.Errorf("scheduler: session: %w", err)
	}
	// Closing the session revokes its lease: a standby takes over at once
	// instead of after the TTL.
	defer func() { _ = sess.Close() }()
	el := concurrency.NewElection(sess, cluster.ElectionPrefix)
	if err := el.Campaign(ctx, s.cfg.ID); err != nil {
		return fmt.Errorf("scheduler: campaign: %w", err)
	}
	s.cfg.Logger.Info("scheduler is leader", "id", s.cfg.ID)
	if *first {
		*first = false
		close(s.leader)
	}
	// Fence: every write also requires our election key to be the one we
	// created. A deposed leader's transactions fail.
	fence := clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())
	r := &reconciler{cfg: s.cfg, kv: s.cfg.Etcd, fence: fence, as: newAutoscaler()}

	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watch starts right after a revision the first pass reads at or
	// after, so a change made while the watch is being set up still wakes
	// a pass (without it, only the next tick or restart timer would).
	head, err := s.cfg.Etcd.Get(leadCtx, cluster.ElectionPrefix, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("scheduler: read revision: %w", err)
	}
	startRev := head.Header.Revision + 1
	dirty := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	// The watch lives as long as this term of leadership: leadCtx's cancel
	// stops it and the deferred wait below joins it.
	started := s.g.Go("scheduler.watch", func(context.Context) {
		defer close(watchDone)
		wch := s.cfg.Etcd.Watch(clientv3.WithRequireLeader(leadCtx), cluster.Root, clientv3.WithPrefix(), clientv3.WithRev(startRev))
		for range wch {
			select {
			case dirty <- struct{}{}:
			default: // a reconcile is already pending
			}
		}
	}, "scheduler", s.cfg.ID)
	if !started {
		return errors.New("scheduler: closed")
	}
	defer func() { cancel(); <-watchDone }()

	tick := s.cfg.Clock.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	// wake fires when the earliest delayed restart falls due (r.wake after
	// a pass). Owned by this goroutine, made when first needed, stopped
	// when the term ends.
	var wake clockwork.Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()
	for {
		if err := r.reconcile(leadCtx); err != nil {
			if errors.Is(err, cluster.ErrPrecondition) {
				return fmt.Errorf("scheduler: lost leadership: %w", err)
			}
			if leadCtx.Err() == nil {
				s.cfg.Logger.Warn("reconcile failed", "err", err)
			}
		}
		var wakeC <-chan time.Time // nil: no restart waits
		switch {
		case !r.wake.IsZero():
			// A due time already past fires at once.
			d := max(r.wake.Sub(s.cfg.Clock.Now()), 0)
			if wake == nil {
				wake = s.cfg.Clock.NewTimer(d)
			} else {
				wake.Reset(d)
			}
			wakeC = wake.Chan()
		case wake != nil:
			wake.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errors.New("scheduler: leader lease expired")
		case <-dirty:
		case <-tick.Chan():
		case <-wakeC:
		}
	}
}

func randomID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

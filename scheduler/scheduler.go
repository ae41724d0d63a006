package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

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
	r := &reconciler{cfg: s.cfg, kv: s.cfg.Etcd, fence: fence}

	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	dirty := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	// The watch lives as long as this term of leadership: leadCtx's cancel
	// stops it and the deferred wait below joins it.
	s.g.Go("scheduler.watch", func(context.Context) {
		defer close(watchDone)
		wch := s.cfg.Etcd.Watch(clientv3.WithRequireLeader(leadCtx), cluster.Root, clientv3.WithPrefix())
		for range wch {
			select {
			case dirty <- struct{}{}:
			default: // a reconcile is already pending
			}
		}
	}, "scheduler", s.cfg.ID)
	defer func() { cancel(); <-watchDone }()

	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		if err := r.reconcile(leadCtx); err != nil {
			if errors.Is(err, cluster.ErrPrecondition) {
				return fmt.Errorf("scheduler: lost leadership: %w", err)
			}
			if leadCtx.Err() == nil {
				s.cfg.Logger.Warn("reconcile failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errors.New("scheduler: leader lease expired")
		case <-dirty:
		case <-tick.C:
		}
	}
}

func randomID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

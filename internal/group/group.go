// Package group runs a component's goroutines under one owner: each is
// registered with the owner's wait group, labelled for pprof (so a goroutine
// dump says what each one serves), and refused once the owner has begun to
// stop. The owner cancels the group's context and waits for every goroutine
// in Stop.
package group

import (
	"context"
	"runtime/pprof"
	"sync"
)

// Group owns a set of goroutines sharing one lifetime context.
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu struct {
		sync.Mutex
		stopped bool
	}
	wg sync.WaitGroup
}

// New returns a group whose goroutines see a context derived from parent.
func New(parent context.Context) *Group {
	ctx, cancel := context.WithCancelCause(parent)
	return &Group{ctx: ctx, cancel: cancel}
}

// Context is the group's lifetime context: cancelled by Stop.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts fn in a goroutine labelled with name and the given label
// key/value pairs. It returns false, without starting anything, if the group
// is stopping.
func (g *Group) Go(name string, fn func(ctx context.Context), labels ...string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopped {
		return false
	}
	g.wg.Add(1)
	lbl := pprof.Labels(append([]string{"goroutine", name}, labels...)...)
	go func() {
		defer g.wg.Done()
		pprof.Do(g.ctx, lbl, fn)
	}()
	return true
}

// Stop refuses new goroutines, cancels the context with cause (nil means
// context.Canceled) and waits for every goroutine to return. It is
// idempotent.
func (g *Group) Stop(cause error) {
	g.mu.Lock()
	g.mu.stopped = true
	g.mu.Unlock()
	g.cancel(cause)
	g.wg.Wait()
}

package window

import "github.com/sabotdev/sabot/worker/state"

// contents is a window's contents in state, for the current key and
// namespace (the state window): an accumulator or a list of elements.
type contents[T, OUT any] interface {
	add(v T, ts int64) error
	// fire computes and emits the results of the current contents; nothing
	// when there are none (Flink skips an empty window).
	fire(info *Info, emit func(OUT) error) error
	clear() error
	// merge folds the contents of the sources into target's and clears
	// the sources (Flink's mergeNamespaces). It leaves the namespace at
	// target.
	merge(target Window, sources []Window) error
}

// aggContents keeps one counted accumulator per window.
type aggContents[T, ACC, R, OUT any] struct {
	c      *core
	st     *state.ValueState[counted[ACC]]
	agg    AggregateFunction[T, ACC, R]
	finish func(info *Info, r R, emit func(OUT) error) error
}

func (a *aggContents[T, ACC, R, OUT]) add(v T, _ int64) error {
	cur, ok, err := a.st.Value()
	if err != nil {
		return err
	}
	if !ok {
		cur.acc = a.agg.Create()
	}
	cur.n++
	cur.acc = a.agg.Add(cur.acc, v)
	return a.st.Update(cur)
}

func (a *aggContents[T, ACC, R, OUT]) fire(info *Info, emit func(OUT) error) error {
	cur, ok, err := a.st.Value()
	if err != nil || !ok {
		return err
	}
	info.Count = cur.n
	return a.finish(info, a.agg.Result(cur.acc), emit)
}

func (a *aggContents[T, ACC, R, OUT]) clear() error { return a.st.Clear() }

func (a *aggContents[T, ACC, R, OUT]) merge(target Window, sources []Window) error {
	for _, s := range sources {
		a.c.setNS(s)
		src, ok, err := a.st.Value()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := a.st.Clear(); err != nil {
			return err
		}
		a.c.setNS(target)
		cur, ok, err := a.st.Value()
		if err != nil {
			return err
		}
		if ok {
			src = counted[ACC]{n: cur.n + src.n, acc: a.agg.Merge(cur.acc, src.acc)}
		}
		if err := a.st.Update(src); err != nil {
			return err
		}
	}
	a.c.setNS(target)
	return nil
}

// listContents keeps every element of a window (no evictor).
type listContents[T, OUT any] struct {
	c  *core
	st *state.ListState[T]
	fn listFunc[T, OUT]
}

func (l *listContents[T, OUT]) add(v T, _ int64) error { return l.st.Add(v) }

func (l *listContents[T, OUT]) fire(info *Info, emit func(OUT) error) error {
	vals, err := l.st.Get()
	if err != nil || len(vals) == 0 {
		return err
	}
	info.Count = int64(len(vals))
	return l.fn(info, vals, emit)
}

func (l *listContents[T, OUT]) clear() error { return l.st.Clear() }

func (l *listContents[T, OUT]) merge(target Window, sources []Window) error {
	return mergeLists(l.c, l.st, target, sources)
}

// mergeLists appends the lists of the sources to target's, in order.
func mergeLists[E any](c *core, st *state.ListState[E], target Window, sources []Window) error {
	for _, s := range sources {
		c.setNS(s)
		vals, err := st.Get()
		if err != nil {
			return err
		}
		if len(vals) == 0 {
			continue
		}
		if err := st.Clear(); err != nil {
			return err
		}
		c.setNS(target)
		if err := st.AddAll(vals); err != nil {
			return err
		}
	}
	c.setNS(target)
	return nil
}

// evictingContents keeps every element with its timestamp and runs the
// evictor around the function at each firing (Flink's
// EvictingWindowOperator).
type evictingContents[T, OUT any] struct {
	c    *core
	st   *state.ListState[Timestamped[T]]
	ev   Evictor[T]
	fn   listFunc[T, OUT]
	vals []T // scratch: the values passed to fn
}

func (e *evictingContents[T, OUT]) add(v T, ts int64) error {
	return e.st.Add(Timestamped[T]{Value: v, Timestamp: ts})
}

func (e *evictingContents[T, OUT]) fire(info *Info, emit func(OUT) error) error {
	elems, err := e.st.Get()
	if err != nil || len(elems) == 0 {
		return err
	}
	stored := len(elems)
	ctx := EvictorContext{Window: info.Window, Watermark: info.Watermark, ProcessingTime: info.ProcessingTime}
	elems = e.ev.EvictBefore(elems, ctx)
	e.vals = e.vals[:0]
	for i := range elems {
		e.vals = append(e.vals, elems[i].Value)
	}
	info.Count = int64(len(e.vals))
	err = e.fn(info, e.vals, emit)
	clear(e.vals) // keep no references to user values between firings
	if err != nil {
		return err
	}
	elems = e.ev.EvictAfter(elems, ctx)
	if len(elems) == stored {
		return nil // evictors only remove: nothing changed
	}
	return e.st.Update(elems) // an empty list clears the state
}

func (e *evictingContents[T, OUT]) clear() error { return e.st.Clear() }

func (e *evictingContents[T, OUT]) merge(target Window, sources []Window) error {
	return mergeLists(e.c, e.st, target, sources)
}

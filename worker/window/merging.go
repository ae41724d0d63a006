package window

import (
	"fmt"

	"github.com/sabotdev/sabot/worker/state"
)

// windowPair maps an in-flight window to its state window: the window
// whose namespace holds the merged contents (Flink's MergingWindowSet
// mapping). Merging only extends a window, so the contents stay where they
// are and only the mapping changes.
type windowPair struct {
	w, sw Window
}

// mergeFunc is called for each merge: result absorbed merged (the
// in-flight windows that disappear), whose contents now belong to
// stateWindow; the contents of mergedState must be folded into it.
type mergeFunc func(result Window, merged []Window, stateWindow Window, mergedState []Window) error

// mergingSet is Flink's MergingWindowSet for the current key: the
// in-flight windows of the key, sorted by start, persisted as one value in
// the default namespace ("<name>-merging"). Load reads it at the start of
// each element or timer; persist writes it back if it changed.
type mergingSet struct {
	c     *core
	st    *state.ValueState[[]windowPair]
	pairs []windowPair // sorted by w.Start (in-flight windows never overlap)
	dirty bool

	// scratch
	next        []windowPair
	cand        []candidate
	merged      []Window
	mergedState []Window
}

type candidate struct {
	p     windowPair
	isNew bool
}

func newMergingSet(c *core, name string) (*mergingSet, error) {
	st, err := state.Value(c.k, state.ValueDescriptor[[]windowPair]{Name: name + "-merging", Codec: &pairsCodec{}})
	if err != nil {
		return nil, err
	}
	return &mergingSet{c: c, st: st}, nil
}

// load reads the current key's set. It switches to the default namespace.
func (m *mergingSet) load() error {
	m.c.setVoidNS()
	pairs, _, err := m.st.Value()
	if err != nil {
		return err
	}
	// Copy out of the codec's buffer: pairs and next swap below.
	m.pairs = append(m.pairs[:0], pairs...)
	m.dirty = false
	return nil
}

// persist writes the set back if it changed; an empty set is deleted.
func (m *mergingSet) persist() error {
	if !m.dirty {
		return nil
	}
	m.dirty = false
	m.c.setVoidNS()
	if len(m.pairs) == 0 {
		return m.st.Clear()
	}
	return m.st.Update(m.pairs)
}

// stateWindow is the state window of in-flight window w.
func (m *mergingSet) stateWindow(w Window) (Window, bool) {
	for _, p := range m.pairs {
		if p.w == w {
			return p.sw, true
		}
	}
	return Window{}, false
}

// retire removes in-flight window w (cleaned up, or late on arrival).
func (m *mergingSet) retire(w Window) {
	for i, p := range m.pairs {
		if p.w == w {
			m.pairs = append(m.pairs[:i], m.pairs[i+1:]...)
			m.dirty = true
			return
		}
	}
	panicf("window %s is not in the in-flight window set", w)
}

// add adds w to the set, merging it with every in-flight window it
// intersects (transitively, as Flink's TimeWindow.mergeWindows sweeps the
// windows sorted by start), calls fn for each merge, and returns the
// in-flight window w ended up in.
//
// Decisions where Flink leaves a choice: the merge result takes the state
// window of the earliest merged in-flight window (Flink: any), and the
// others' contents are folded into it in start order. A window equal to an
// in-flight one is that window (Flink would map it to itself again, losing
// the link to its state window if that differs).
func (m *mergingSet) add(w Window, fn mergeFunc) (Window, error) {
	if _, ok := m.stateWindow(w); ok {
		return w, nil
	}
	// Candidates sorted by start, w after in-flight windows with its start
	// (Flink's stable sort with w appended last).
	m.cand = m.cand[:0]
	inserted := false
	for _, p := range m.pairs {
		if !inserted && p.w.Start > w.Start {
			m.cand = append(m.cand, candidate{p: windowPair{w, w}, isNew: true})
			inserted = true
		}
		m.cand = append(m.cand, candidate{p: p})
	}
	if !inserted {
		m.cand = append(m.cand, candidate{p: windowPair{w, w}, isNew: true})
	}

	result := w
	m.next = m.next[:0]
	for lo := 0; lo < len(m.cand); {
		cover := m.cand[lo].p.w
		hi := lo + 1
		for hi < len(m.cand) && cover.Intersects(m.cand[hi].p.w) {
			cover = cover.Cover(m.cand[hi].p.w)
			hi++
		}
		run := m.cand[lo:hi]
		lo = hi
		if len(run) == 1 {
			m.next = append(m.next, run[0].p)
			continue
		}
		// A merge: the in-flight windows of the run go, cover comes.
		m.merged, m.mergedState = m.merged[:0], m.mergedState[:0]
		for _, c := range run {
			if c.isNew {
				result = cover
				continue
			}
			m.merged = append(m.merged, c.p.w)
			m.mergedState = append(m.mergedState, c.p.sw)
		}
		sw := m.mergedState[0]
		m.next = append(m.next, windowPair{w: cover, sw: sw})
		// w inside an in-flight window: nothing merges but w itself, which
		// has no state yet.
		if len(m.merged) == 1 && m.merged[0] == cover {
			continue
		}
		if err := fn(cover, m.merged, sw, m.mergedState[1:]); err != nil {
			return w, err
		}
	}
	m.pairs, m.next = m.next, m.pairs
	m.dirty = true
	return result, nil
}

// pairsCodec stores a merging set as 32 bytes per pair: window start and
// end, state window start and end, each a namespace-encoded int64. Decode
// reuses one buffer: the result is valid until the next Decode.
type pairsCodec struct{ buf []windowPair }

func (c *pairsCodec) Append(dst []byte, v []windowPair) ([]byte, error) {
	for _, p := range v {
		dst = AppendNamespace(AppendNamespace(dst, p.w), p.sw)
	}
	return dst, nil
}

func (c *pairsCodec) Decode(src []byte) ([]windowPair, error) {
	if len(src)%(2*NamespaceLen) != 0 {
		return nil, fmt.Errorf("%w: merging window set of %d bytes", state.ErrCorrupt, len(src))
	}
	c.buf = c.buf[:0]
	for ; len(src) > 0; src = src[2*NamespaceLen:] {
		w, _ := DecodeNamespace(src[:NamespaceLen])
		sw, _ := DecodeNamespace(src[NamespaceLen : 2*NamespaceLen])
		c.buf = append(c.buf, windowPair{w: w, sw: sw})
	}
	return c.buf, nil
}

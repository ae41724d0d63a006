package state

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
)

// FullSnapshot is a consistent view of the entries of a key-group range
// of a backend, in the canonical format (canonical.go): the savepoint
// format of both backends and the heap backend's checkpoint format.
//
// It is taken in the owning goroutine (TakeFullSnapshot) and then
// independent of it: Upload and Release may run in another goroutine
// while the task keeps writing, and they see the state as of the take.
//
//   - Heap: the take copies every entry of the range (in chunks of at
//     most 4 MiB, plus a 20-byte reference per entry), unsorted; Upload
//     sorts and encodes. The task pauses for the copy; copy-on-write per
//     key group would shorten it (Heap documents the plan).
//   - Pebble: the take is a pebble snapshot (O(1)); Upload iterates it.
//     The snapshot pins old versions of overwritten keys until Release,
//     so release it promptly. Closing the backend releases it.
//
// Upload may be called again after it failed (to a new key: a failed Put
// may have left the object); one Upload at a time.
type FullSnapshot struct {
	r    KeyGroupRange
	size atomic.Int64 // encoded bytes, -1 until known

	// pebble snapshots only; immutable after the take
	p     *Pebble
	specs map[string]*tableSpec // copies of the registry, by string(prefix)
	now   int64                 // the clock at the take, for TTL

	mu struct {
		sync.Mutex
		released  bool
		uploading bool
		copy      *heapCopy        // heap
		snap      *pebble.Snapshot // pebble
		reader    *fullReader      // of the running Upload
	}
}

// TakeFullSnapshot captures the entries of b in key groups r (which must
// lie in b.KeyGroups()), with SnapshotKeyGroups semantics: expired
// entries of states with CleanupFullSnapshot are left out, judged by the
// clock at the take; entries restored but not registered yet are
// included as they are. Call it from the goroutine that owns b; the
// result may be uploaded from another goroutine while b keeps changing.
// Release it when done.
func TakeFullSnapshot(b Backend, r KeyGroupRange) (*FullSnapshot, error) {
	c := b.core()
	if c.closed {
		return nil, ErrClosed
	}
	own := c.cfg.KeyGroups
	if r.Start > r.End || r.Start < own.Start || r.End > own.End {
		return nil, fmt.Errorf("%w: snapshot of [%d, %d) from a backend owning [%d, %d)",
			ErrKeyGroupOutOfRange, r.Start, r.End, own.Start, own.End)
	}
	switch b := b.(type) {
	case *Pebble:
		return b.takeFullSnapshot(r), nil
	case *Heap:
		return b.takeFullSnapshot(r), nil
	default:
		return nil, fmt.Errorf("state: no full snapshots of %T", b)
	}
}

// chunkBuf is a growing buffer kept as chunks, so that a large snapshot
// is neither one huge allocation nor copied on growth. An entry never
// spans chunks.
type chunkBuf struct {
	chunks [][]byte
	cur    []byte
}

const (
	minChunk = 64 << 10
	maxChunk = 4 << 20
)

// reserve makes room for n more bytes in cur.
func (w *chunkBuf) reserve(n int) {
	if len(w.cur)+n <= cap(w.cur) {
		return
	}
	if len(w.cur) > 0 {
		w.chunks = append(w.chunks, w.cur)
	}
	size := min(max(2*cap(w.cur), minChunk), maxChunk)
	w.cur = make([]byte, 0, max(size, n))
}

// takeFullSnapshot takes a pebble snapshot and a copy of what the encoder
// needs from the registry (names and TTL of registered states).
func (p *Pebble) takeFullSnapshot(r KeyGroupRange) *FullSnapshot {
	s := &FullSnapshot{r: r, p: p, now: p.nowMs(), specs: make(map[string]*tableSpec, len(p.specs))}
	for k, reg := range p.specs {
		spec := *reg.spec
		s.specs[k] = &spec
	}
	s.size.Store(-1)
	s.mu.snap = p.db.NewSnapshot()
	p.mu.Lock()
	if p.mu.snaps == nil {
		p.mu.snaps = make(map[*FullSnapshot]struct{})
	}
	p.mu.snaps[s] = struct{}{}
	p.mu.Unlock()
	return s
}

// KeyGroups is the range the snapshot covers.
func (s *FullSnapshot) KeyGroups() KeyGroupRange { return s.r }

// Size is the encoded size in bytes: known at the take for the heap, and
// after the first successful Upload for pebble (-1 before).
func (s *FullSnapshot) Size() int64 { return s.size.Load() }

// Upload writes the snapshot as the object key of store (canonical
// encoding, streamed: memory beyond the snapshot itself is a 64 KiB
// buffer plus what the store's Put uses) and returns its handle. It fails
// with ErrReleased after Release or, for pebble, after the backend was
// closed; store errors (blob.ErrExists: key taken) are wrapped with the
// key. Safe to call from any goroutine, one call at a time.
func (s *FullSnapshot) Upload(ctx context.Context, store blob.Store, key string) (*clusterv1.FullStateHandle, error) {
	rd, size, err := s.startUpload()
	if err != nil {
		return nil, err
	}
	defer s.endUpload()
	if err := store.Put(ctx, key, rd, size); err != nil {
		return nil, fmt.Errorf("state: upload snapshot to %q: %w", key, err)
	}
	if !rd.done {
		return nil, fmt.Errorf("state: upload snapshot to %q: store returned before the end of the snapshot", key)
	}
	s.size.Store(rd.enc.size())
	return &clusterv1.FullStateHandle{Key: key, Size: rd.enc.size(), KeyGroupOffsets: rd.enc.offsets}, nil
}

// startUpload returns the reader of the encoded object and its size (-1:
// not known until read).
func (s *FullSnapshot) startUpload() (*fullReader, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.mu.released:
		return nil, 0, ErrReleased
	case s.mu.uploading:
		return nil, 0, fmt.Errorf("state: snapshot of [%d, %d) is already being uploaded", s.r.Start, s.r.End)
	}
	s.mu.uploading = true
	r := &fullReader{s: s, enc: newFullEncoder(s.r)}
	size := int64(-1)
	if c := s.mu.copy; c != nil {
		r.src, size = &heapSource{c: c}, c.size
	} else {
		r.src = &pebbleSource{s: s}
	}
	s.mu.reader = r
	return r, size, nil
}

func (s *FullSnapshot) endUpload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.mu.reader; r != nil {
		r.src.closeLocked()
		s.mu.reader = nil
	}
	s.mu.uploading = false
}

// Release drops the snapshot: the heap's copy, pebble's snapshot. It is
// idempotent and may run in any goroutine; an Upload running meanwhile
// fails with ErrReleased.
func (s *FullSnapshot) Release() error {
	err := s.release()
	if s.p != nil {
		s.p.mu.Lock()
		delete(s.p.mu.snaps, s)
		s.p.mu.Unlock()
	}
	return err
}

func (s *FullSnapshot) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.released {
		return nil
	}
	s.mu.released = true
	s.mu.copy = nil
	if r := s.mu.reader; r != nil {
		r.src.closeLocked()
	}
	if s.mu.snap != nil {
		return wrapPebble("release snapshot", s.mu.snap.Close())
	}
	return nil
}

// fullReader encodes a snapshot as it is read. Each fill takes the
// snapshot's lock, encodes about fillBytes of entries and lets go, so
// Release and Close can stop an Upload between fills.
type fullReader struct {
	s    *FullSnapshot
	enc  *fullEncoder
	src  entrySource // s.mu
	done bool        // the footer is in buf
	err  error
	buf  []byte
	off  int
}

// entrySource yields a snapshot's entries in canonical order. Its methods
// are called with the snapshot's lock held.
type entrySource interface {
	// fill encodes entries into buf with enc until buf holds at least
	// fillBytes or the entries end (then it reports true).
	fill(enc *fullEncoder, buf []byte) ([]byte, bool, error)
	closeLocked()
}

const fillBytes = 64 << 10

func (r *fullReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *fullReader) fill() error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.released {
		return ErrReleased
	}
	r.buf, r.off = r.buf[:0], 0
	if r.enc.pos == 0 {
		r.buf = r.enc.header(r.buf)
	}
	buf, end, err := r.src.fill(r.enc, r.buf)
	if err != nil {
		return err
	}
	r.buf = buf
	if end {
		r.src.closeLocked()
		r.buf = r.enc.footer(r.buf)
		r.done = true
	}
	return nil
}

// pebbleSource iterates a pebble snapshot.
type pebbleSource struct {
	s       *FullSnapshot
	it      *pebble.Iterator
	started bool
	scratch []byte
}

func (p *pebbleSource) fill(enc *fullEncoder, buf []byte) ([]byte, bool, error) {
	s := p.s
	var ok bool
	if !p.started {
		it, err := s.mu.snap.NewIter(&pebble.IterOptions{LowerBound: keyGroupKey(s.r.Start), UpperBound: keyGroupKey(s.r.End)})
		if err != nil {
			return nil, false, wrapPebble("snapshot iterator", err)
		}
		p.it, p.started = it, true
		ok = it.First()
	} else {
		ok = p.it.Valid()
	}
	for ; ok && len(buf) < fillBytes; ok = p.it.Next() {
		kg, prefix, row, col, err := splitKey(p.it.Key())
		if err != nil {
			return nil, false, err
		}
		val, err := p.it.ValueAndErr()
		if err != nil {
			return nil, false, wrapPebble("snapshot iterator", err)
		}
		if spec := s.specs[string(prefix)]; spec != nil {
			var keep bool
			if val, keep = spec.snapshotValue(val, s.now, &p.scratch); !keep {
				continue
			}
		}
		buf = enc.entry(buf, kg, prefix, row, col, val)
	}
	if ok {
		return buf, false, nil
	}
	if err := p.it.Error(); err != nil {
		return nil, false, wrapPebble("snapshot iterator", err)
	}
	return buf, true, nil
}

func (p *pebbleSource) closeLocked() {
	if p.it != nil {
		_ = p.it.Close() // an iterator error was reported by fill
		p.it = nil
	}
}

// RestoreFull loads into b the entries of the canonical snapshot h (taken
// over key groups handleRange, from the operator snapshot's range) that
// fall in b's key-group range, from either backend into either backend.
// Call it once per handle whose range overlaps b's (rescale: a subtask
// reads the handles of every old subtask it takes key groups from), and
// before any state or timer service is registered on b: it fails with
// ErrRestoreAfterRegister otherwise. States and timer services registered
// afterwards see the restored entries; on the heap, entries of a state no
// operator registers stay in snapshots as they are.
//
// Only the bytes of b's key groups are decoded, but the whole object is
// read, as the store verifies its checksum at the end. A failure (the
// object missing or corrupt, the handle not matching it) is reported with
// the key; b then holds part of the entries and must be discarded.
func RestoreFull(ctx context.Context, store blob.Store, h *clusterv1.FullStateHandle, handleRange KeyGroupRange, b Backend) (err error) {
	c, ld, err := beginRestore(b)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := ld.finish(err == nil); err == nil && ferr != nil {
			err = fmt.Errorf("state: restore %q: %w", h.GetKey(), ferr)
		}
	}()
	if handleRange.Start > handleRange.End || handleRange.End > MaxKeyGroups {
		return fmt.Errorf("state: restore %q: %w: key groups [%d, %d)", h.GetKey(), ErrKeyGroupOutOfRange,
			handleRange.Start, handleRange.End)
	}
	own := c.cfg.KeyGroups
	want := KeyGroupRange{Start: max(handleRange.Start, own.Start), End: min(handleRange.End, own.End)}
	if want.Start >= want.End {
		return nil
	}
	if err := readCanonical(ctx, store, h, handleRange, want, ld.put); err != nil {
		return fmt.Errorf("state: restore %q: %w", h.GetKey(), err)
	}
	return nil
}

// readCanonical streams the object of h and calls fn for each entry in
// key groups want (within hr, the handle's range).
func readCanonical(ctx context.Context, store blob.Store, h *clusterv1.FullStateHandle, hr, want KeyGroupRange,
	fn func(kg uint16, prefix, row, col, val []byte) error,
) error {
	offs := h.GetKeyGroupOffsets()
	if err := checkOffsets(offs, hr, h.GetSize()); err != nil {
		return err
	}
	rc, err := store.Get(ctx, h.GetKey())
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }() // read to the end (verified) or failed already
	return decodeCanonical(rc, hr, want, offs, fn)
}

// decodeCanonical decodes the entries of key groups want from a
// canonical object of key groups hr with the given (checked) offsets.
func decodeCanonical(r io.Reader, hr, want KeyGroupRange, offs []int64,
	fn func(kg uint16, prefix, row, col, val []byte) error,
) error {
	d := newFullDecoder(r)
	if err := d.header(hr); err != nil {
		return err
	}
	if err := d.skipTo(offs[want.Start-hr.Start]); err != nil {
		return err
	}
	var n uint64
	for kg := want.Start; kg < want.End; kg++ {
		limit := offs[kg-hr.Start+1]
		for d.pos < limit {
			ekg, prefix, row, col, val, err := d.entry(limit)
			if err != nil {
				return err
			}
			if ekg != kg {
				return d.corruptf("entry of key group %d where the offsets put key group %d", ekg, kg)
			}
			n++
			if err := fn(kg, prefix, row, col, val); err != nil {
				return err
			}
		}
	}
	if err := d.skipTo(offs[len(offs)-1]); err != nil {
		return err
	}
	count, err := d.footer()
	if err != nil {
		return err
	}
	if want == hr && count != n {
		return d.corruptf("footer counts %d entries, read %d", count, n)
	}
	return d.end()
}

// checkOffsets checks a handle's offsets against its range and size.
func checkOffsets(offs []int64, hr KeyGroupRange, size int64) error {
	if hr.Start > hr.End || hr.End > MaxKeyGroups || len(offs) != hr.Len()+1 {
		return fmt.Errorf("%w: handle of key groups [%d, %d) has %d offsets", ErrCorrupt, hr.Start, hr.End, len(offs))
	}
	if offs[0] != int64(canonicalHeader) || offs[len(offs)-1]+canonicalFooter != size {
		return fmt.Errorf("%w: handle offsets [%d .. %d] do not fit an object of %d bytes",
			ErrCorrupt, offs[0], offs[len(offs)-1], size)
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] < offs[i-1] {
			return fmt.Errorf("%w: handle offsets decrease at key group %d", ErrCorrupt, int(hr.Start)+i)
		}
	}
	return nil
}

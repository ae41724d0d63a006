package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
)

// Incremental pebble checkpoints. A pebble checkpoint is a directory of
// hard links to the DB's SST files plus copies of its MANIFEST, OPTIONS
// and marker files. SST files (and blob files, were value separation on)
// are immutable, and pebble never reuses a file number within a DB's
// lineage: a DB restored from a checkpoint continues numbering after the
// highest number its MANIFEST has seen. So within one lineage a file name
// names one content, and a checkpoint uploads only the SSTs that the
// previous one did not have; the rest is referenced (Flink's incremental
// RocksDB checkpoints).
//
// What the runtime must guarantee for that to hold:
//
//   - reuse maps come from this DB's own earlier uploads, or from the
//     handle it was restored from (its files keep their names and
//     content). Never from another subtask's DB or another restore of the
//     same checkpoint: two DBs restored from one checkpoint both create a
//     "000042.sst" with different content.
//   - sharedKey returns keys unique to this DB instance (include an id
//     chosen when the backend was opened or restored, e.g. the attempt
//     and subtask, not the file name alone), for the same reason. Upload
//     then takes an existing object under a shared key of the right size
//     for the file itself (an upload of an earlier checkpoint that did not
//     complete).
//   - shared files stay in the store while a retained checkpoint
//     references them (garbage collection counts references across
//     checkpoints); the files of the checkpoint in progress count too.

// PebbleSnapshot is a pebble checkpoint on local disk, taken by
// TakeSnapshot: immutable, independent of the live DB (which may compact
// and delete its own links meanwhile), removed by Release.
type PebbleSnapshot struct {
	dir   string
	files []snapFile
}

type snapFile struct {
	name string
	size int64
}

// TakeSnapshot flushes the memtable (the WAL is disabled, so unflushed
// writes would be missing) and writes a pebble checkpoint into dir, which
// must not exist. It is synchronous and fast (a flush, hard links, a
// MANIFEST copy; put dir on the DB's file system, or pebble copies the
// SSTs instead of linking them); call it from the owning goroutine, then
// Upload from any.
func (p *Pebble) TakeSnapshot(dir string) (*PebbleSnapshot, error) {
	if err := p.Checkpoint(dir); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state: list checkpoint %s: %w", dir, err)
	}
	s := &PebbleSnapshot{dir: dir, files: make([]snapFile, 0, len(ents))}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("state: list checkpoint %s: %w", dir, err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("state: checkpoint %s holds %s, not a regular file", dir, e.Name())
		}
		s.files = append(s.files, snapFile{name: e.Name(), size: info.Size()})
	}
	return s, nil
}

// Dir is the checkpoint's directory.
func (s *PebbleSnapshot) Dir() string { return s.dir }

// Files returns the names of the files in the checkpoint, sorted.
func (s *PebbleSnapshot) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.name
	}
	return out
}

// isSharedFile reports whether a checkpoint file is immutable content
// that later checkpoints may reference: SST and blob files. MANIFEST,
// OPTIONS, markers and WAL files are rewritten or copied per checkpoint.
func isSharedFile(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// Upload uploads the checkpoint's files, at most four at a time, streamed
// from disk. An SST (or blob) file goes to sharedKey(name), unless reuse
// holds a shared file of that name: then that StateFile is referenced and
// nothing is uploaded; its size must match the file's, or Upload fails (a
// reuse map of another DB lineage). Every other file goes to
// privatePrefix+name. sharedKey is required; reuse may be nil (upload
// everything). It returns the handle (files in name order) and the bytes
// uploaded now. On error, some files may have been written; the
// caller deletes the checkpoint's private prefix (shared files are the
// garbage collector's). Safe to call from any goroutine.
func (s *PebbleSnapshot) Upload(ctx context.Context, store blob.Store, privatePrefix string,
	sharedKey func(name string) string, reuse map[string]*clusterv1.StateFile,
) (*clusterv1.PebbleStateHandle, int64, error) {
	h := &clusterv1.PebbleStateHandle{Files: make([]*clusterv1.StateFile, len(s.files))}
	var todo []int
	for i, f := range s.files {
		sf := &clusterv1.StateFile{Name: f.name, Size: f.size}
		h.Files[i] = sf
		if !isSharedFile(f.name) {
			sf.Key = privatePrefix + f.name
			todo = append(todo, i)
			continue
		}
		sf.Shared = true
		if r, ok := reuse[f.name]; ok && r.GetShared() {
			if r.GetSize() != f.size {
				return nil, 0, fmt.Errorf("state: checkpoint file %s has %d bytes, the reused %q %d: reuse map from another DB?",
					f.name, f.size, r.GetKey(), r.GetSize())
			}
			sf.Key = r.GetKey()
			continue
		}
		sf.Key = sharedKey(f.name)
		todo = append(todo, i)
	}
	var uploaded atomic.Int64
	err := parallel(ctx, "state-upload", len(todo), func(ctx context.Context, j int) error {
		sf := h.Files[todo[j]]
		err := store.PutFile(ctx, sf.Key, filepath.Join(s.dir, sf.Name))
		if err != nil && sf.Shared && errors.Is(err, blob.ErrExists) {
			// Uploaded by an earlier checkpoint of this DB that did not
			// complete: same name, same content (sharedKey is unique to
			// this DB instance).
			info, serr := store.Stat(ctx, sf.Key)
			if serr == nil && info.Size == sf.Size {
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("state: upload %s to %q: %w", sf.Name, sf.Key, err)
		}
		uploaded.Add(sf.Size)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return h, uploaded.Load(), nil
}

// Release removes the checkpoint directory. Call it once Upload returned
// (or instead of it). Idempotent.
func (s *PebbleSnapshot) Release() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("state: remove checkpoint %s: %w", s.dir, err)
	}
	return nil
}

// RestorePebble downloads every file of h into dir (created if absent;
// it must be empty), at most four at a time, streamed to disk, so that
// OpenPebble(dir, cfg) opens the checkpointed DB. Each file is checked
// against its size in h, and by the store against its checksum. On error
// dir holds part of the files: remove it. OpenPebbleRestored also cuts the
// DB to a key-group range.
func RestorePebble(ctx context.Context, store blob.Store, h *clusterv1.PebbleStateHandle, dir string) error {
	files := h.GetFiles()
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		name := f.GetName()
		if name == "" || !filepath.IsLocal(name) || filepath.Base(name) != name || seen[name] {
			return fmt.Errorf("%w: pebble handle file name %q", ErrCorrupt, name)
		}
		seen[name] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state: restore into %s: %w", dir, err)
	}
	if ents, err := os.ReadDir(dir); err != nil {
		return fmt.Errorf("state: restore into %s: %w", dir, err)
	} else if len(ents) > 0 {
		return fmt.Errorf("state: restore into %s: directory not empty", dir)
	}
	return parallel(ctx, "state-download", len(files), func(ctx context.Context, i int) error {
		return download(ctx, store, files[i], filepath.Join(dir, files[i].GetName()))
	})
}

// download copies one object to a new file at path.
func download(ctx context.Context, store blob.Store, f *clusterv1.StateFile, path string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("state: download %q to %s: %w", f.GetKey(), path, err)
		}
	}()
	rc, err := store.Get(ctx, f.GetKey())
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }() // read to the end (verified) or failed already
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, rc)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != f.GetSize() {
		return fmt.Errorf("%w: %d bytes, the handle says %d", ErrCorrupt, n, f.GetSize())
	}
	return nil
}

// OpenPebbleRestored restores the pebble checkpoint h into dir
// (RestorePebble), opens it, and deletes the key groups outside
// cfg.KeyGroups (rescale: the checkpoint may cover more). The deleted
// ranges are range tombstones; compactions reclaim the space later. On
// error dir may hold part of the files: remove it.
func OpenPebbleRestored(ctx context.Context, store blob.Store, h *clusterv1.PebbleStateHandle, dir string, cfg Config) (*Pebble, error) {
	if err := RestorePebble(ctx, store, h, dir); err != nil {
		return nil, err
	}
	p, err := OpenPebble(dir, cfg)
	if err != nil {
		return nil, err
	}
	r := p.KeyGroups()
	for _, cut := range []KeyGroupRange{{Start: 0, End: r.Start}, {Start: r.End, End: MaxKeyGroups}} {
		if cut.Start >= cut.End {
			continue
		}
		// A tombstone over nothing would still be flushed into an SST
		// (and uploaded): cut only what holds keys.
		has, err := p.hasKeys(cut)
		if err == nil && has {
			err = p.DeleteKeyGroups(cut)
		}
		if err != nil {
			return nil, errors.Join(err, p.Close())
		}
	}
	return p, nil
}

// hasKeys reports whether the DB holds a key in key groups r.
func (p *Pebble) hasKeys(r KeyGroupRange) (bool, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: keyGroupKey(r.Start), UpperBound: keyGroupKey(r.End)})
	if err != nil {
		return false, wrapPebble("iterator", err)
	}
	ok := it.First()
	return ok, wrapPebble("iterator", errors.Join(it.Error(), it.Close()))
}

// RestorePebbleInto loads into b (either backend) the entries of the
// pebble checkpoint h that fall in b's key-group range: it downloads h
// into tmpDir (as RestorePebble), reads it, and removes tmpDir. It is for
// what a directory restore cannot do: a subtask taking key groups from
// several old subtasks (restore the largest with OpenPebbleRestored, the
// others with RestorePebbleInto), and a heap restored from a pebble
// checkpoint. Like RestoreFull it must come before any state or timer
// service is registered on b (ErrRestoreAfterRegister), and on error b
// holds part of the entries and must be discarded.
func RestorePebbleInto(ctx context.Context, store blob.Store, h *clusterv1.PebbleStateHandle, tmpDir string, b Backend) (err error) {
	c, ld, err := beginRestore(b)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := ld.finish(err == nil); err == nil {
			err = ferr
		}
	}()
	defer func() {
		if rerr := os.RemoveAll(tmpDir); err == nil && rerr != nil {
			err = fmt.Errorf("state: remove %s: %w", tmpDir, rerr)
		}
	}()
	if err := RestorePebble(ctx, store, h, tmpDir); err != nil {
		return err
	}
	opts := pebbleOptions(c.cfg)
	opts.ReadOnly = true
	db, err := pebble.Open(tmpDir, opts)
	if err != nil {
		return fmt.Errorf("state: open restored checkpoint in %s: %w", tmpDir, err)
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = wrapPebble("close restored checkpoint", cerr)
		}
	}()
	r := c.cfg.KeyGroups
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keyGroupKey(r.Start), UpperBound: keyGroupKey(r.End)})
	if err != nil {
		return wrapPebble("iterator", err)
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = wrapPebble("iterator", cerr)
		}
	}()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		kg, prefix, row, col, err := splitKey(it.Key())
		if err != nil {
			return err
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return wrapPebble("iterator", err)
		}
		if err := ld.put(kg, prefix, row, col, val); err != nil {
			return err
		}
	}
	return wrapPebble("iterator", it.Error())
}

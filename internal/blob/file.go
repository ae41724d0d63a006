package blob

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
)

// FileStore keeps objects as files under a root directory: key "a/b/c" is
// the file root/a/b/c, holding the content followed by the checksum trailer.
//
// Put writes a temporary file (".blob-tmp-*") in the object's directory,
// fsyncs it, then hard-links it to the final name, which fails if the name
// exists: creation is atomic and never overwrites, so concurrent Puts of
// one key have exactly one winner, and the final name only ever holds a
// complete object. The directory is fsynced after the link (and after
// creating any directory), so a Put that returned survives a crash. Objects
// are made read-only (0444). The file system must support hard links
// (ext4, xfs, btrfs, APFS, tmpfs do).
//
// A crash can leave temporary files behind; List and Get never see them.
// Delete removes directories it leaves empty, up to the root.
//
// Unlike S3, a file store cannot hold both "a" and "a/b": Put of one when
// the other exists fails with a *KeyError.
type FileStore struct {
	root     string
	closed   atomic.Bool
	copyBufs *bufPool // for Put's copy loop
	readBufs *bufPool // for Get's WriteTo
}

// Buffer sizes: large enough that a copy costs few system calls.
const (
	copyBufSize = 1 << 20
	readBufSize = 256 << 10
)

// OpenFile opens (creating if needed) a file store rooted at dir, which
// must be absolute.
func OpenFile(dir string) (*FileStore, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("blob: file store root %q is not absolute", dir)
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blob: file store root: %w", err)
	}
	return &FileStore{root: dir, copyBufs: &bufPool{size: copyBufSize}, readBufs: &bufPool{size: readBufSize}}, nil
}

// Root returns the store's root directory.
func (s *FileStore) Root() string { return s.root }

func (s *FileStore) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func (s *FileStore) check(key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return CheckKey(key)
}

// Put implements Store.
func (s *FileStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return wrapOp("put", key, s.put(ctx, key, r, size))
}

// PutFile implements Store.
func (s *FileStore) PutFile(ctx context.Context, key, path string) error {
	return putFile(ctx, s, key, path)
}

func (s *FileStore) put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := s.check(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob: size %d is negative (use -1 for unknown)", size)
	}
	final := s.path(key)
	// Fail fast, before copying anything. The link below is what decides.
	if err := s.checkFree(key, final); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	tmp, err := s.createTemp(key, dir)
	if err != nil {
		return err
	}
	linked := false
	defer func() {
		// On failure the temporary file goes; after a successful link it is
		// a second name for the object and goes too.
		if cerr := tmp.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) && err == nil && !linked {
			err = cerr
		}
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil && !linked {
			err = rerr
		}
	}()

	h := sha256.New()
	n, err := s.copy(ctx, io.MultiWriter(tmp, h), r, size)
	if err != nil {
		return err
	}
	if _, err := tmp.Write(appendTrailer(nil, h.Sum(nil), n)); err != nil {
		return err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if cerr := s.checkFree(key, final); cerr != nil {
				return cerr
			}
			return ErrExists
		}
		return err
	}
	linked = true
	if err := os.Remove(tmp.Name()); err != nil {
		return err
	}
	// One fsync makes both the new name and the removed temporary durable.
	return syncDir(dir)
}

// checkFree returns ErrExists if key holds an object, or a *KeyError if the
// key cannot be created because of a file or directory in the way.
func (s *FileStore) checkFree(key, final string) error {
	fi, err := os.Lstat(final)
	switch {
	case errors.Is(err, fs.ErrNotExist), isNotDir(err):
		// A parent being a file is caught by createTemp with a clear error.
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return &KeyError{Key: key, Reason: "other keys exist under " + strings.TrimSuffix(key, "/") + "/ (a file store cannot hold both)"}
	default:
		return ErrExists
	}
}

// createTemp creates the temporary file for a Put in dir, creating dir and
// its parents as needed. A concurrent Delete may remove dir while it is
// empty, between ensureDir and CreateTemp; that is retried a few times.
func (s *FileStore) createTemp(key, dir string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		if err := s.ensureDir(key, dir); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, tmpPrefix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return nil, err
		}
	}
}

// ensureDir creates dir and any missing parents below the root, fsyncing
// each parent after creating a child so the new directory survives a crash.
func (s *FileStore) ensureDir(key, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil, isNotDir(err):
		rel, _ := filepath.Rel(s.root, dir)
		for rel != "." {
			if fi, err := os.Stat(filepath.Join(s.root, rel)); err == nil && !fi.IsDir() {
				break
			}
			rel = filepath.Dir(rel)
		}
		return &KeyError{Key: key, Reason: "key " + filepath.ToSlash(rel) + " is an object (a file store cannot hold both it and keys under it)"}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if dir == s.root {
		return os.MkdirAll(dir, 0o755)
	}
	parent := filepath.Dir(dir)
	if err := s.ensureDir(key, parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// copy copies r to w, checking ctx between chunks and the byte count against
// size (-1: unknown). It returns the number of bytes copied.
func (s *FileStore) copy(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	bp := s.copyBufs.get()
	defer s.copyBufs.put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			n += int64(m)
			if size >= 0 && n > size {
				return n, fmt.Errorf("blob: reader has more than the %d bytes size says", size)
			}
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("blob: reader ended after %d of the %d bytes size says", n, size)
	}
	return n, nil
}

// Get implements Store. Reads check ctx before each chunk.
func (s *FileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.check(key); err != nil {
		return nil, wrapOp("get", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, wrapOp("get", key, ErrNotFound)
		}
		return nil, wrapOp("get", key, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = ErrNotFound
	} else if err == nil && fi.Size() < int64(trailerSize) {
		err = fmt.Errorf("%w: %d bytes is too short to hold a checksum trailer", ErrCorrupt, fi.Size())
	}
	if err != nil {
		_ = f.Close()
		return nil, wrapOp("get", key, err)
	}
	return newVerifier(key, ctxReader{ctx: ctx, r: f}, f.Close, fi.Size()-int64(trailerSize), s.readBufs), nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Stat implements Store.
func (s *FileStore) Stat(ctx context.Context, key string) (Info, error) {
	if err := s.check(key); err != nil {
		return Info{}, wrapOp("stat", key, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, wrapOp("stat", key, err)
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return Info{}, wrapOp("stat", key, ErrNotFound)
		}
		return Info{}, wrapOp("stat", key, err)
	}
	if fi.IsDir() {
		return Info{}, wrapOp("stat", key, ErrNotFound)
	}
	info, err := fileInfo(key, fi)
	return info, wrapOp("stat", key, err)
}

func fileInfo(key string, fi fs.FileInfo) (Info, error) {
	if fi.Size() < int64(trailerSize) {
		return Info{}, fmt.Errorf("%w: %d bytes is too short to hold a checksum trailer", ErrCorrupt, fi.Size())
	}
	return Info{Key: key, Size: fi.Size() - int64(trailerSize), ModTime: fi.ModTime()}, nil
}

// Exists implements Store.
func (s *FileStore) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.Stat(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	case errors.Is(err, ErrCorrupt):
		return true, nil
	default:
		return false, wrapOp("exists", key, err)
	}
}

// List implements Store. It walks the directory tree depth first, starting
// at the deepest directory the prefix names, and sorts each directory's
// entries as their keys sort (a directory "a" as "a/"), so keys come out in
// the same byte order as S3 lists them. Memory is bounded by the path
// depth times the largest directory, not by the number of objects.
func (s *FileStore) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := checkPrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		if s.closed.Load() {
			yield(Info{}, wrapOp("list", prefix, ErrClosed))
			return
		}
		base := prefix[:strings.LastIndexByte(prefix, '/')+1]
		s.walk(ctx, base, prefix, yield)
	}
}

// walk lists the directory for dirKey ("" or ending in "/"), yielding
// objects whose keys start with prefix. It returns false when iteration must
// stop.
func (s *FileStore) walk(ctx context.Context, dirKey, prefix string, yield func(Info, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield(Info{}, wrapOp("list", prefix, err))
		return false
	}
	entries, err := os.ReadDir(s.path(dirKey))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return true // nothing under this prefix
		}
		yield(Info{}, wrapOp("list", prefix, err))
		return false
	}
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return cmp.Compare(sortName(a), sortName(b)) })
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		key := dirKey + name
		if e.IsDir() {
			sub := key + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				continue
			}
			if !s.walk(ctx, sub, prefix, yield) {
				return false
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		var info Info
		if err == nil {
			info, err = fileInfo(key, fi)
		}
		if err != nil {
			yield(Info{}, wrapOp("list", key, err))
			return false
		}
		if !yield(info, nil) {
			return false
		}
	}
	return true
}

// Delete implements Store. Directories left empty are removed, up to the
// root, and the directories that changed are fsynced.
func (s *FileStore) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := s.check(k); err != nil {
			return wrapOp("delete", k, err)
		}
	}
	dirs := make(map[string]struct{})
	var errs []error
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			errs = append(errs, wrapOp("delete", k, err))
			break
		}
		p := s.path(k)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			continue // not an object: only keys under it exist
		}
		switch err := os.Remove(p); {
		case err == nil:
			dirs[filepath.Dir(p)] = struct{}{}
		case errors.Is(err, fs.ErrNotExist), isNotDir(err):
		default:
			errs = append(errs, wrapOp("delete", k, err))
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := s.prune(d); err != nil {
			errs = append(errs, fmt.Errorf("blob: delete: %w", err))
		}
	}
	return errors.Join(errs...)
}

// prune removes dir if empty, then its parents while they are empty, and
// fsyncs the first directory it does not remove. A concurrent Put that
// loses its fresh directory here retries (see createTemp).
func (s *FileStore) prune(dir string) error {
	for dir != s.root && strings.HasPrefix(dir, s.root) {
		if err := os.Remove(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				dir = filepath.Dir(dir)
				continue
			}
			break // not empty (or busy): keep it
		}
		dir = filepath.Dir(dir)
	}
	return syncDir(dir)
}

// Close implements Store. The file store holds no resources; Close only
// makes later operations fail with ErrClosed.
func (s *FileStore) Close() error {
	s.closed.Store(true)
	return nil
}

// syncDir fsyncs a directory, making entries created or removed in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	return errors.Join(serr, d.Close())
}

// isNotDir reports ENOTDIR: a path's parent is a file.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}

// putFile is PutFile for either store: Put with the file's content and size.
func putFile(ctx context.Context, s Store, key, path string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return wrapOp("put", key, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return wrapOp("put", key, err)
	}
	if !fi.Mode().IsRegular() {
		return wrapOp("put", key, fmt.Errorf("blob: %s is not a regular file", path))
	}
	return s.Put(ctx, key, f, fi.Size())
}

package blob

import (
	"context"
	"io"
	"iter"
	"time"
)

// Store is a bucket of immutable objects addressed by key. It is safe for
// concurrent use. See the package documentation for the guarantees each
// implementation gives.
type Store interface {
	// Put creates the object key with the content read from r. size is the
	// exact content length, or -1 if unknown; a reader that yields a
	// different number of bytes fails the Put. Content is streamed with
	// bounded memory (multipart above Options.PartSize on S3).
	//
	// Put fails with ErrExists if key already holds an object, leaving it
	// unchanged. On any error no object is visible under key, with one
	// exception: if the last attempt's response was lost (a network error
	// after the store received everything), the object may exist. A reader
	// never sees a partial object. Cancelling ctx stops the upload (once r
	// returns from its current Read) and removes what was written.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// PutFile is Put with the content of the local file at path.
	PutFile(ctx context.Context, key, path string) error

	// Get opens the object key for reading, or fails with ErrNotFound. The
	// reader verifies the object's SHA-256 and length: the Read that
	// reaches the end returns an error wrapping ErrCorrupt instead of
	// io.EOF on mismatch, so callers must read to io.EOF (io.Copy and
	// io.ReadAll do) before trusting the bytes; Close verifies too if all
	// content was read. ctx governs the whole read. The caller must Close
	// the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat returns the object's metadata without reading it, or fails with
	// ErrNotFound. It does not verify the content.
	Stat(ctx context.Context, key string) (Info, error)

	// Exists reports whether key holds an object.
	Exists(ctx context.Context, key string) (bool, error)

	// List yields every object whose key starts with prefix, in
	// lexicographic (byte) order of key, fetching lazily page by page.
	// prefix need not end at a slash ("jobs/a/chk-" is fine); "" lists
	// everything. An error ends the sequence (it is the last pair
	// yielded). Objects put or deleted during the listing may or may not
	// appear.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]

	// Delete removes the given objects. Deleting a key that holds no
	// object is not an error, so Delete is idempotent. All keys are
	// checked before anything is deleted. On error some of the keys may
	// have been deleted; the error names the ones that failed.
	Delete(ctx context.Context, keys ...string) error

	// Close releases the store's resources (idle connections). Operations
	// after Close fail with ErrClosed; readers already open keep working
	// until closed. Close is idempotent.
	Close() error
}

// Info describes a stored object.
type Info struct {
	// Key is the object's key, relative to the store's root or prefix.
	Key string
	// Size is the content length in bytes (the stored object is
	// trailerSize bytes longer).
	Size int64
	// ModTime is when the object was written, as the file system or S3
	// reports it.
	ModTime time.Time
}

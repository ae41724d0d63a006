package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Get implements Store. Opening is bounded by RequestTimeout (and retried
// by the SDK). While reading, a connection that fails or stalls for
// ReadIdleTimeout is replaced by a ranged GET from the same offset, pinned
// to the same object with If-Match on its ETag, up to MaxAttempts opens in
// all; the checksum still covers every byte.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.check(key); err != nil {
		return nil, wrapOp("get", key, err)
	}
	r := &s3Reader{s: s, ctx: ctx, key: key}
	if err := r.open(); err != nil {
		return nil, wrapOp("get", key, err)
	}
	if r.total < int64(trailerSize) {
		_ = r.Close()
		return nil, wrapOp("get", key, fmt.Errorf("%w: %d bytes is too short to hold a checksum trailer", ErrCorrupt, r.total))
	}
	return newVerifier(key, r, r.Close, r.total-int64(trailerSize), s.readBufs), nil
}

// s3Reader reads one object's stored bytes (content and trailer),
// reconnecting where a connection broke off.
type s3Reader struct {
	s   *S3Store
	ctx context.Context // the caller's, for the whole read
	key string

	etag     *string // of the first response; later ranges must match it
	total    int64   // stored length
	off      int64   // bytes delivered so far
	opens    int     // GETs issued
	lastErr  error   // why the current connection was dropped
	body     io.ReadCloser
	cancel   context.CancelFunc // cancels the current GET
	watchdog *time.Timer        // cancels the current GET when it stalls
	stalled  *atomic.Bool       // set by watchdog
}

// open issues a GET for the bytes from r.off on. The watchdog bounds the
// wait for the response by RequestTimeout.
func (r *s3Reader) open() error {
	s := r.s
	r.opens++
	actx, cancel := context.WithCancel(r.ctx)
	stalled := new(atomic.Bool)
	watchdog := time.AfterFunc(s.opts.RequestTimeout, func() {
		stalled.Store(true)
		cancel()
	})
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: s.objectKey(r.key)}
	if r.off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.off))
		in.IfMatch = r.etag
	}
	out, err := s.client.GetObject(actx, in)
	watchdog.Stop()
	if err != nil {
		cancel()
		switch {
		case isNotFound(err):
			return ErrNotFound
		case stalled.Load():
			return fmt.Errorf("%w after %v (Options.RequestTimeout), with up to %d attempts: %w", errRequestTimeout, s.opts.RequestTimeout, s.opts.MaxAttempts, err)
		}
		return err
	}
	n := aws.ToInt64(out.ContentLength)
	if r.off == 0 {
		r.total, r.etag = n, out.ETag
	} else if n != r.total-r.off {
		cancel()
		_ = out.Body.Close()
		return fmt.Errorf("blob: ranged read from byte %d returned %d bytes, want %d", r.off, n, r.total-r.off)
	}
	r.body, r.cancel, r.watchdog, r.stalled = out.Body, cancel, watchdog, stalled
	return nil
}

func (r *s3Reader) Read(p []byte) (int, error) {
	s := r.s
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				return 0, err
			}
		}
		r.watchdog.Reset(s.opts.ReadIdleTimeout)
		n, err := r.body.Read(p)
		r.watchdog.Stop()
		r.off += int64(n)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && r.off == r.total:
			return n, io.EOF
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF // the connection ended early
		}
		if r.stalled.Load() {
			err = fmt.Errorf("no data for %v (Options.ReadIdleTimeout): %w", s.opts.ReadIdleTimeout, err)
		}
		r.release()
		if cerr := r.ctx.Err(); cerr != nil {
			return n, cerr
		}
		// An error after the last byte is the SDK's end-of-body check (a
		// CRC32 mismatch): nothing to resume. Otherwise reconnect, unless
		// the attempts are used up.
		if r.off >= r.total || r.opens >= s.opts.MaxAttempts {
			return n, fmt.Errorf("blob: read failed at byte %d of %d after %d attempts: %w", r.off, r.total, r.opens, err)
		}
		r.lastErr = err
		if n > 0 {
			return n, nil // reconnect on the next Read
		}
	}
}

// reopen waits a backoff (full jitter, as the SDK's) and resumes at r.off.
func (r *s3Reader) reopen() error {
	s := r.s
	d := min(s.opts.RetryBaseDelay<<min(r.opens-1, 30), s.opts.RetryMaxDelay)
	// Jitter needs no reproducibility; math/rand/v2's top-level functions
	// are safe for concurrent use and hold no state of ours.
	t := time.NewTimer(rand.N(d + 1))
	select {
	case <-t.C:
	case <-r.ctx.Done():
		t.Stop()
		return r.ctx.Err()
	}
	if err := r.open(); err != nil {
		return fmt.Errorf("blob: resume read at byte %d of %d (attempt %d of %d): %w", r.off, r.total, r.opens, s.opts.MaxAttempts, errors.Join(r.lastErr, err))
	}
	return nil
}

// release drops the current connection.
func (r *s3Reader) release() {
	if r.body == nil {
		return
	}
	r.watchdog.Stop()
	r.cancel()
	_ = r.body.Close()
	r.body = nil
}

// Close releases the connection. It is idempotent.
func (r *s3Reader) Close() error {
	r.release()
	return nil
}

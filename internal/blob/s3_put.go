package blob

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sabotdev/sabot/internal/group"
)

// Put implements Store.
//
// Content up to the part size goes up in one conditional PutObject
// (If-None-Match: "*"), which S3 and gofakes3 both apply atomically: of
// concurrent Puts of one key exactly one succeeds, the rest get ErrExists.
//
// Larger content goes up as a multipart upload: parts are read one at a
// time and uploaded PartConcurrency at a time, then completed with
// If-None-Match: "*". AWS S3 honours that condition on
// CompleteMultipartUpload, so the write stays exclusive; servers that
// ignore it (gofakes3 v1.2.0, older S3-compatible servers) would let a
// second completion replace the first. Against those, Put checks that the
// key is free before creating the upload and again just before completing
// it, so only two uploads of one key whose completions overlap can both
// succeed, the later one replacing the earlier. Any failure or
// cancellation aborts the upload, so no parts are left behind.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return wrapOp("put", key, s.put(ctx, key, r, size))
}

func (s *S3Store) put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.check(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob: size %d is negative (use -1 for unknown)", size)
	}
	partSize, err := s.partSize(size)
	if err != nil {
		return err
	}
	src := &partReader{br: bufio.NewReaderSize(r, 32<<10), size: size, h: sha256.New()}
	firstLen := partSize
	if size >= 0 && size < partSize {
		firstLen = size
	}
	first := s.getBuf(firstLen)
	n, last, err := src.next((*first)[:firstLen])
	if err != nil {
		s.putBuf(first)
		return err
	}
	if err := ctx.Err(); err != nil {
		s.putBuf(first)
		return err
	}
	if last {
		defer s.putBuf(first)
		return s.putObject(ctx, key, appendTrailer((*first)[:n], src.h.Sum(nil), src.n))
	}
	return s.putMultipart(ctx, key, src, first, n, partSize)
}

// partSize returns the part size for an object of size bytes (-1:
// unknown): Options.PartSize, grown in whole MiB if the object would
// otherwise need more than MaxParts parts.
func (s *S3Store) partSize(size int64) (int64, error) {
	ps := s.opts.PartSize
	if size > 0 {
		total := size + int64(trailerSize)
		if need := (total + MaxParts - 1) / MaxParts; need > ps {
			ps = (need + 1<<20 - 1) &^ (1<<20 - 1)
		}
		if ps > MaxPartSize {
			return 0, fmt.Errorf("blob: %d bytes exceed S3's largest object (%d parts of %d bytes)", size, MaxParts, MaxPartSize)
		}
	}
	return ps, nil
}

// getBuf returns a buffer of length n with room for the trailer. Buffers
// of the configured part size are pooled.
func (s *S3Store) getBuf(n int64) *[]byte {
	if n == s.opts.PartSize {
		if bp, ok := s.bufs.Get().(*[]byte); ok {
			*bp = (*bp)[:n]
			return bp
		}
	}
	b := make([]byte, n, n+int64(trailerSize))
	return &b
}

func (s *S3Store) putBuf(bp *[]byte) {
	if int64(cap(*bp)) == s.opts.PartSize+int64(trailerSize) {
		s.bufs.Put(bp)
	}
}

// newToken returns a random token identifying one Put.
func newToken() string { return rand.Text() }

// putObject uploads a whole object (content and trailer) in one
// conditional PutObject.
func (s *S3Store) putObject(ctx context.Context, key string, body []byte) error {
	token := newToken()
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	_, err := s.client.PutObject(rctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           s.objectKey(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		IfNoneMatch:   aws.String("*"),
		Metadata:      map[string]string{metaToken: token},
	})
	switch {
	case err == nil:
		return nil
	case isPreconditionFailed(err):
		// Either someone else's object is there, or an earlier attempt of
		// this very request succeeded and only its response was lost.
		if s.ours(ctx, key, token) {
			return nil
		}
		return ErrExists
	default:
		return s.reqErr(rctx, err)
	}
}

// putMultipart uploads an object larger than one part. first holds the
// first n bytes of content, already read from src.
func (s *S3Store) putMultipart(ctx context.Context, key string, src *partReader, first *[]byte, n int, partSize int64) error {
	// Fail fast on an existing key before uploading anything. Not a
	// guarantee: see Put.
	if _, err := s.head(ctx, key); !errors.Is(err, ErrNotFound) {
		s.putBuf(first)
		if err == nil {
			return ErrExists
		}
		return err
	}
	token := newToken()
	rctx, cancel := s.reqCtx(ctx)
	out, err := s.client.CreateMultipartUpload(rctx, &s3.CreateMultipartUploadInput{
		Bucket:   &s.bucket,
		Key:      s.objectKey(key),
		Metadata: map[string]string{metaToken: token},
		// Declared so that S3 accepts the per-part CRC32 the SDK computes
		// (and checks each part on arrival); the SDK's own upload manager
		// does the same.
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	err = s.reqErr(rctx, err)
	cancel()
	if err != nil {
		s.putBuf(first)
		return err
	}
	u := &upload{s: s, key: key, id: aws.ToString(out.UploadId), token: token}
	parts, err := u.send(ctx, src, first, n, partSize)
	if err == nil {
		var done bool
		if done, err = u.complete(ctx, parts); done {
			return nil
		}
	}
	return u.abort(ctx, err)
}

// upload is one multipart upload in progress.
type upload struct {
	s     *S3Store
	key   string
	id    string
	token string
}

// send reads and uploads the parts, at most PartConcurrency at a time, and
// returns them sorted by number. It owns the part goroutines: on return,
// successful or not, every one has finished. The first failure cancels the
// rest.
func (u *upload) send(ctx context.Context, src *partReader, buf *[]byte, n int, partSize int64) ([]types.CompletedPart, error) {
	s := u.s
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g := group.New(ctx)
	defer g.Stop(nil)

	conc := s.opts.PartConcurrency
	slots := make(chan struct{}, conc)
	var mu sync.Mutex
	parts := make([]types.CompletedPart, 0, 8)

	last := false
	for num := int32(1); ; num++ {
		if num > MaxParts {
			s.putBuf(buf)
			return nil, fmt.Errorf("blob: object exceeds %d parts of %d bytes: set a larger Options.PartSize or pass the size to Put", MaxParts, partSize)
		}
		body := (*buf)[:n]
		if last {
			body = appendTrailer(body, src.h.Sum(nil), src.n)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			s.putBuf(buf)
			return nil, context.Cause(ctx)
		}
		b := buf
		started := g.Go("blob-put-part", func(gctx context.Context) {
			defer func() {
				s.putBuf(b)
				<-slots
			}()
			p, err := u.part(gctx, num, body)
			if err != nil {
				cancel(fmt.Errorf("part %d: %w", num, err))
				return
			}
			mu.Lock()
			parts = append(parts, p)
			mu.Unlock()
		}, "key", u.key)
		if !started { // only after g.Stop, which runs when we return
			s.putBuf(b)
			<-slots
			return nil, errors.New("blob: part uploader stopped")
		}
		if last {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		buf = s.getBuf(partSize)
		var err error
		if n, last, err = src.next(*buf); err != nil {
			s.putBuf(buf)
			return nil, err
		}
	}
	// Wait for the parts in flight: every slot free again.
	for range conc {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	if ctx.Err() != nil { // a part failed after releasing its slot
		return nil, context.Cause(ctx)
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return cmp.Compare(aws.ToInt32(a.PartNumber), aws.ToInt32(b.PartNumber))
	})
	return parts, nil
}

// part uploads one part.
func (u *upload) part(ctx context.Context, num int32, body []byte) (types.CompletedPart, error) {
	rctx, cancel := u.s.reqCtx(ctx)
	defer cancel()
	out, err := u.s.client.UploadPart(rctx, &s3.UploadPartInput{
		Bucket:            &u.s.bucket,
		Key:               u.s.objectKey(u.key),
		UploadId:          &u.id,
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return types.CompletedPart{}, u.s.reqErr(rctx, err)
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32: out.ChecksumCRC32}, nil
}

// complete completes the upload with If-None-Match: "*". done reports that
// the object is ours and in place; otherwise the caller aborts the upload.
func (u *upload) complete(ctx context.Context, parts []types.CompletedPart) (done bool, err error) {
	s := u.s
	// Narrow the window for servers that ignore the condition (see Put).
	if _, err := s.head(ctx, u.key); !errors.Is(err, ErrNotFound) {
		if err == nil {
			return false, ErrExists
		}
		return false, err
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	_, err = s.client.CompleteMultipartUpload(rctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             s.objectKey(u.key),
		UploadId:        &u.id,
		IfNoneMatch:     aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	switch {
	case err == nil:
		return true, nil
	case isPreconditionFailed(err), isNoSuchUpload(err):
		// A retry after a lost response finds the object in place (412) or
		// the upload gone (NoSuchUpload): it may be our own completion.
		// (NoSuchUpload also follows a retried 409 ConditionalRequestConflict,
		// after which S3 drops the upload: then the Put fails with that
		// error, not ErrExists, and may be retried by the caller.)
		if s.ours(ctx, u.key, u.token) {
			return true, nil
		}
		if isPreconditionFailed(err) {
			return false, ErrExists
		}
		return false, err
	default:
		return false, s.reqErr(rctx, err)
	}
}

// abort aborts the upload after cause, even if ctx is cancelled (bounded by
// RequestTimeout), so that no parts are left to be billed. It returns cause,
// joined with the abort's own failure if any.
func (u *upload) abort(ctx context.Context, cause error) error {
	s := u.s
	actx, cancel := s.reqCtx(context.WithoutCancel(ctx))
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   &s.bucket,
		Key:      s.objectKey(u.key),
		UploadId: &u.id,
	})
	if err == nil || isNoSuchUpload(err) {
		return cause
	}
	err = s.reqErr(actx, err)
	s.opts.Logger.Warn("blob: multipart upload not aborted; its parts stay until aborted or removed by a bucket lifecycle rule (AbortIncompleteMultipartUpload)",
		"bucket", s.bucket, "key", s.prefix+u.key, "upload_id", u.id, "err", err)
	return errors.Join(cause, fmt.Errorf("blob: abort multipart upload %s: %w", u.id, err))
}

// partReader cuts Put's input into parts, hashing the content and checking
// its length against the size Put was given.
type partReader struct {
	br   *bufio.Reader
	size int64 // -1: unknown
	n    int64 // bytes read so far
	h    hash.Hash
}

// next fills p from the input and reports whether the input has ended.
// Unless it has, p is filled completely.
func (pr *partReader) next(p []byte) (n int, last bool, err error) {
	for n < len(p) && err == nil {
		var m int
		m, err = pr.br.Read(p[n:])
		n += m
	}
	pr.n += int64(n)
	pr.h.Write(p[:n])
	if err == nil {
		// p is full: look one byte ahead for the end.
		_, err = pr.br.Peek(1)
	}
	switch {
	case errors.Is(err, io.EOF):
		return n, true, pr.checkSize(true)
	case err != nil:
		return n, false, err
	}
	return n, false, pr.checkSize(false)
}

func (pr *partReader) checkSize(ended bool) error {
	switch {
	case pr.size < 0:
		return nil
	case pr.n > pr.size || !ended && pr.n == pr.size:
		return fmt.Errorf("blob: reader has more than the %d bytes size says", pr.size)
	case ended && pr.n < pr.size:
		return fmt.Errorf("blob: reader ended after %d of the %d bytes size says", pr.n, pr.size)
	}
	return nil
}

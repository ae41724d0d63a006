package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// Every stored object is its content followed by a fixed-size trailer:
//
//	content | SHA-256(content) [32] | len(content), big-endian uint64 [8] | "SABOTBL1" [8]
//
// The trailer is computed while the content streams through Put, so it
// needs neither a second pass over the input nor a size known in advance,
// and it works the same for a single PutObject, a multipart upload and a
// file. (S3 object metadata cannot carry it: metadata is fixed when a
// multipart upload is created, before the content has been read, and S3's
// own multipart SHA-256 is a checksum of part checksums.) Both stores use
// the same encoding, so a checkpoint directory copied between them
// verifies. The magic is last so that a reader can tell "not ours /
// truncated" from "bits flipped".
const (
	trailerSize  = sha256.Size + 8 + len(trailerMagic)
	trailerMagic = "SABOTBL1"
)

// appendTrailer appends the trailer for content whose SHA-256 is sum and
// whose length is n.
func appendTrailer(b []byte, sum []byte, n int64) []byte {
	b = append(b, sum...)
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	return append(b, trailerMagic...)
}

// checkTrailer verifies trailer t against the content's hash and length.
func checkTrailer(t []byte, sum []byte, n int64) error {
	if len(t) != trailerSize || string(t[trailerSize-len(trailerMagic):]) != trailerMagic {
		return fmt.Errorf("%w: no checksum trailer at the end (truncated, or not written by this store)", ErrCorrupt)
	}
	if got := binary.BigEndian.Uint64(t[sha256.Size:]); got != uint64(n) {
		return fmt.Errorf("%w: trailer records %d content bytes, object holds %d", ErrCorrupt, got, n)
	}
	if want := t[:sha256.Size]; !bytes.Equal(want, sum) {
		return fmt.Errorf("%w: sha-256 mismatch: trailer records %x, content hashes to %x", ErrCorrupt, want, sum)
	}
	return nil
}

// verifier is the io.ReadCloser Get returns. It passes exactly size content
// bytes through, hashing them; then it reads the trailer and checks that the
// source ends right after it. The Read that would return io.EOF returns
// ErrCorrupt instead if anything disagrees, so a caller reading to EOF
// (io.Copy, io.ReadAll) cannot miss corruption. Close verifies too when all
// content was read but EOF was not yet seen.
//
// A verifier is used by one goroutine at a time, like any io.Reader.
type verifier struct {
	key   string
	src   io.Reader
	close func() error
	size  int64 // content bytes in the object
	left  int64 // content bytes not yet returned
	h     hash.Hash
	err   error // sticky: io.EOF once verified, or the first failure
	shut  bool
	bufs  *bufPool // for WriteTo
}

func newVerifier(key string, src io.Reader, closeFn func() error, size int64, bufs *bufPool) *verifier {
	return &verifier{key: key, src: src, close: closeFn, size: size, left: size, h: sha256.New(), bufs: bufs}
}

// bufPool pools byte slices of one size. Each store owns its pools (no
// package-level state).
type bufPool struct {
	size int
	pool sync.Pool
}

func (p *bufPool) get() *[]byte {
	if bp, ok := p.pool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, p.size)
	return &b
}

func (p *bufPool) put(bp *[]byte) { p.pool.Put(bp) }

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.shut {
		return 0, wrapOp("get", v.key, ErrClosed)
	}
	if v.left == 0 {
		v.err = v.finish()
		return 0, v.err
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.src.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		// The source holds content plus trailer, so EOF here is early.
		v.err = wrapOp("get", v.key, fmt.Errorf("%w: object ends after %d of %d content bytes", ErrCorrupt, v.size-v.left, v.size))
		return n, v.err
	default:
		v.err = wrapOp("get", v.key, err)
		return n, v.err
	}
	return n, nil
}

// WriteTo lets io.Copy move the object in large reads (fewer system calls
// than io.Copy's 32 KiB, or io.Discard's 8 KiB). Like Read, it returns an
// error wrapping ErrCorrupt on mismatch, after writing the content.
func (v *verifier) WriteTo(w io.Writer) (int64, error) {
	bp := v.bufs.get()
	defer v.bufs.put(bp)
	buf := *bp
	var total int64
	for {
		n, err := v.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m != n {
				return total, io.ErrShortWrite
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// finish reads and checks the trailer and the end of the source. It returns
// io.EOF when the object verifies.
func (v *verifier) finish() error {
	var t [trailerSize]byte
	if _, err := io.ReadFull(v.src, t[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return wrapOp("get", v.key, fmt.Errorf("%w: checksum trailer truncated", ErrCorrupt))
		}
		return wrapOp("get", v.key, err)
	}
	// The source must end here; reading it to EOF also lets a transport
	// checksum (the SDK's CRC32 check) run.
	var one [1]byte
	switch _, err := io.ReadFull(v.src, one[:]); {
	case err == nil:
		return wrapOp("get", v.key, fmt.Errorf("%w: data after the checksum trailer", ErrCorrupt))
	case !errors.Is(err, io.EOF):
		return wrapOp("get", v.key, err)
	}
	if err := checkTrailer(t[:], v.h.Sum(nil), v.size); err != nil {
		return wrapOp("get", v.key, err)
	}
	return io.EOF
}

// Close releases the source. If every content byte was read but the
// trailer was not yet checked, Close checks it and reports corruption.
// Close is idempotent.
func (v *verifier) Close() error {
	if v.shut {
		return nil
	}
	v.shut = true
	var verr error
	if v.err == nil && v.left == 0 {
		if v.err = v.finish(); !errors.Is(v.err, io.EOF) {
			verr = v.err
		}
	}
	return errors.Join(verr, v.close())
}

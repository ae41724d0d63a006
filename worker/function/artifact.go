package function

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sabotdev/sabot/internal/blob"
)

// ArtifactKey returns the blob store key of the artifact whose content has
// the given hex SHA-256: "artifacts/<sha256>" (blob's layout).
func ArtifactKey(hexSum string) string { return blob.ArtifactsPrefix + hexSum }

// checkArtifactRef rejects a malformed artifact reference before its hash
// is used in a key or a file name.
func checkArtifactRef(sum string, size int64) error {
	if len(sum) != 64 {
		return fmt.Errorf("function: artifact sha256 %q is not 64 hex digits", sum)
	}
	for _, c := range sum {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("function: artifact sha256 %q is not lower-case hex", sum)
		}
	}
	if size <= 0 {
		return fmt.Errorf("function: artifact %s: size %d is not positive", shortSum(sum), size)
	}
	return nil
}

// artifact returns the path of the verified executable for (sum, size):
// the cached file, verified once per Host, or a fresh copy from the blob
// store written through a temporary file and a rename, so that no one
// executes a partial file. A cached file that fails verification is
// replaced.
func (h *Host) artifact(ctx context.Context, sum string, size int64) (string, error) {
	path := filepath.Join(h.cfg.Dir, "artifacts", sum)
	h.mu.Lock()
	ok := h.mu.verified[sum]
	h.mu.Unlock()
	if ok {
		return path, nil
	}
	switch err := verifyFile(path, sum, size); {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if err := h.fetch(ctx, path, sum, size); err != nil {
			return "", err
		}
	default:
		h.cfg.Logger.Warn("function: cached artifact is bad, fetching it again", "sha256", shortSum(sum), "err", err)
		if err := h.fetch(ctx, path, sum, size); err != nil {
			return "", err
		}
	}
	h.mu.Lock()
	h.mu.verified[sum] = true
	h.mu.Unlock()
	return path, nil
}

// verifyFile hashes the file at path and compares it with (sum, size).
func verifyFile(path, sum string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	hs := sha256.New()
	n, err := io.Copy(hs, f)
	if err != nil {
		return fmt.Errorf("function: read cached artifact: %w", err)
	}
	return compareArtifact(sum, size, hex.EncodeToString(hs.Sum(nil)), n, "cached file "+path)
}

// compareArtifact returns an error wrapping ErrArtifactMismatch naming the
// expected and actual hash and size, or nil.
func compareArtifact(wantSum string, wantSize int64, gotSum string, gotSize int64, what string) error {
	if gotSum == wantSum && gotSize == wantSize {
		return nil
	}
	return fmt.Errorf("%w: artifact %s (%s): want sha256 %s and %d bytes, got sha256 %s and %d bytes",
		ErrArtifactMismatch, shortSum(wantSum), what, wantSum, wantSize, gotSum, gotSize)
}

// fetch copies the artifact from the blob store to path, verifying it.
func (h *Host) fetch(ctx context.Context, path, sum string, size int64) (err error) {
	if h.cfg.Blobs == nil {
		return fmt.Errorf("function: artifact %s: the host has no blob store (HostConfig.Blobs)", shortSum(sum))
	}
	key := ArtifactKey(sum)
	r, err := h.cfg.Blobs.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("function: fetch artifact %s: %w", shortSum(sum), err)
	}
	// The reader's own check ran at io.EOF (io.Copy reads to it) and
	// failed the copy if the object is corrupt; Close has nothing to add.
	defer func() { _ = r.Close() }()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+shortSum(sum)+"-*")
	if err != nil {
		return fmt.Errorf("function: fetch artifact %s: %w", shortSum(sum), err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	hs := sha256.New()
	// Read at most one byte more than expected: enough to tell that the
	// object is too large without copying all of it.
	n, err := io.Copy(io.MultiWriter(tmp, hs), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("function: fetch artifact %s: %w", shortSum(sum), err)
	}
	if n > size {
		// The rest is not read, so the blob's own check has not run:
		// report the size only.
		return fmt.Errorf("%w: artifact %s (blob %s): want %d bytes, got more", ErrArtifactMismatch, shortSum(sum), key, size)
	}
	if err := compareArtifact(sum, size, hex.EncodeToString(hs.Sum(nil)), n, "blob "+key); err != nil {
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		return err
	}
	// Not fsynced: the cache is verified before each Host's first use, so
	// a file damaged by a crash is fetched again.
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("function: fetch artifact %s: %w", shortSum(sum), err)
	}
	h.cfg.Logger.Info("function: fetched artifact", "sha256", shortSum(sum), "bytes", n)
	return nil
}

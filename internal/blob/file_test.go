package blob_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/internal/blob"
)

func openFile(t *testing.T) *blob.FileStore {
	t.Helper()
	st, err := blob.OpenFile(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestFileLayoutOnDisk(t *testing.T) {
	t.Parallel()
	st := openFile(t)
	put(t, st, "jobs/j/chk-1/_metadata", []byte("hello"))
	p := filepath.Join(st.Root(), "jobs", "j", "chk-1", "_metadata")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("object file: %v", err)
	}
	if fi.Size() != int64(5+blob.TrailerSize) {
		t.Fatalf("object file has %d bytes, want content plus %d-byte trailer", fi.Size(), blob.TrailerSize)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("object file mode %v, want read-only 0444", fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasPrefix(string(b), "hello") || !strings.HasSuffix(string(b), "SABOTBL1") {
		t.Fatalf("object file = %q, %v; want content then trailer", b, err)
	}
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v, %v; want only the object (no temporary file)", entries, err)
	}
}

func TestFileIgnoresCrashLeftovers(t *testing.T) {
	t.Parallel()
	st := openFile(t)
	put(t, st, "jobs/j/a", []byte("a"))
	// What a crash between writing and linking leaves behind.
	junk := filepath.Join(st.Root(), "jobs", "j", ".blob-tmp-123456")
	if err := os.WriteFile(junk, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, st, ""); !slices.Equal(got, []string{"jobs/j/a"}) {
		t.Fatalf("List = %v, want only the object", got)
	}
	put(t, st, "jobs/j/b", []byte("b"))
	if got := keys(t, st, "jobs/j/"); !slices.Equal(got, []string{"jobs/j/a", "jobs/j/b"}) {
		t.Fatalf("List = %v", got)
	}
}

func TestFileKeyConflicts(t *testing.T) {
	t.Parallel()
	st := openFile(t)
	put(t, st, "a", []byte("file"))
	put(t, st, "d/x", []byte("under d"))
	for _, key := range []string{"a/b", "a/b/c", "d"} {
		err := st.Put(t.Context(), key, strings.NewReader("v"), 1)
		var ke *blob.KeyError
		if !errors.As(err, &ke) || !strings.Contains(err.Error(), "file store cannot hold both") {
			t.Errorf("Put %s = %v, want a KeyError about the conflict", key, err)
		}
	}
	if got := keys(t, st, ""); !slices.Equal(got, []string{"a", "d/x"}) {
		t.Fatalf("List = %v", got)
	}
	// Deleting "d" (a directory, not an object) is a no-op.
	if err := st.Delete(t.Context(), "d"); err != nil {
		t.Fatalf("Delete d: %v", err)
	}
	if ok, _ := st.Exists(t.Context(), "d/x"); !ok {
		t.Fatal("Delete of a directory name removed an object under it")
	}
}

func TestFileDeletePrunesEmptyDirectories(t *testing.T) {
	t.Parallel()
	st := openFile(t)
	put(t, st, "jobs/j/chk-1/_metadata", []byte("m"))
	put(t, st, "jobs/j/chk-1/a.sst", []byte("a"))
	put(t, st, "jobs/j/shared/s.sst", []byte("s"))
	if err := st.Delete(t.Context(), "jobs/j/chk-1/_metadata", "jobs/j/chk-1/a.sst"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(st.Root(), "jobs", "j", "chk-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty checkpoint directory still there: %v", err)
	}
	if err := st.Delete(t.Context(), "jobs/j/shared/s.sst"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	entries, err := os.ReadDir(st.Root())
	if err != nil || len(entries) != 0 {
		t.Fatalf("root holds %v, %v; want nothing", entries, err)
	}
	// The root itself stays, and a Put recreates what it needs.
	put(t, st, "jobs/j/chk-2/_metadata", []byte("m"))
}

func TestOpenFileNeedsAbsolutePath(t *testing.T) {
	t.Parallel()
	if _, err := blob.OpenFile("relative/dir"); err == nil {
		t.Fatal("OpenFile of a relative path succeeded")
	}
}

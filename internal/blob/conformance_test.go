package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/testkit"
)

// harness adapts one Store implementation to the conformance suite.
type harness struct {
	name string
	// open returns a fresh, empty store (closed by t.Cleanup).
	open func(t *testing.T, o blob.Options) blob.Store
	// reopen returns a second store on the same data as st, with o.
	reopen func(t *testing.T, st blob.Store, o blob.Options) blob.Store
	// tamper replaces the stored bytes of key (content and trailer)
	// with f(stored), bypassing the store.
	tamper func(t *testing.T, st blob.Store, key string, f func([]byte) []byte)
	// leftovers lists what failed Puts left behind: multipart uploads in
	// progress on S3, temporary files in the file store.
	leftovers func(t *testing.T, st blob.Store) []string
	// exclusiveMultipart says concurrent multipart Puts of one key have
	// exactly one winner (false for gofakes3: see the package doc).
	exclusiveMultipart bool
}

func harnesses() []harness {
	return []harness{fileHarness(), s3Harness()}
}

func fileHarness() harness {
	return harness{
		name: "file",
		open: func(t *testing.T, o blob.Options) blob.Store {
			t.Helper()
			st, err := blob.Open("file://"+filepath.ToSlash(t.TempDir())+"/store", o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
		reopen: func(t *testing.T, st blob.Store, o blob.Options) blob.Store {
			t.Helper()
			st2, err := blob.Open("file://"+filepath.ToSlash(st.(*blob.FileStore).Root()), o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = st2.Close() })
			return st2
		},
		tamper: func(t *testing.T, st blob.Store, key string, f func([]byte) []byte) {
			t.Helper()
			p := filepath.Join(st.(*blob.FileStore).Root(), filepath.FromSlash(key))
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("tamper: %v", err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			if err := os.WriteFile(p, f(old), 0o644); err != nil {
				t.Fatalf("tamper: %v", err)
			}
		},
		leftovers: func(t *testing.T, st blob.Store) []string {
			t.Helper()
			var left []string
			root := st.(*blob.FileStore).Root()
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if strings.HasPrefix(d.Name(), ".blob-tmp-") {
					left = append(left, p)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("leftovers: %v", err)
			}
			return left
		},
		exclusiveMultipart: true,
	}
}

// s3URL is the URL of a store on the testkit server, under prefix.
func s3URL(srv *testkit.S3, endpoint, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&path_style=true", srv.Bucket, prefix, endpoint, srv.Region)
}

// openS3 opens a store on srv through endpoint (srv's, or a proxy's).
func openS3(t testing.TB, srv *testkit.S3, endpoint string, o blob.Options) *blob.S3Store {
	t.Helper()
	o.AccessKeyID, o.SecretAccessKey = srv.AccessKey, srv.SecretKey
	st, err := blob.Open(s3URL(srv, endpoint, "tenant/a"), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.(*blob.S3Store)
}

func s3Harness() harness {
	var s3Servers sync.Map // *blob.S3Store -> *testkit.S3, for reopen
	return harness{
		name: "s3",
		open: func(t *testing.T, o blob.Options) blob.Store {
			t.Helper()
			srv := testkit.StartS3(t)
			st := openS3(t, srv, srv.Endpoint, o)
			s3Servers.Store(st, srv)
			t.Cleanup(func() { s3Servers.Delete(st) })
			return st
		},
		reopen: func(t *testing.T, st blob.Store, o blob.Options) blob.Store {
			t.Helper()
			v, _ := s3Servers.Load(st)
			srv := v.(*testkit.S3)
			return openS3(t, srv, srv.Endpoint, o)
		},
		tamper: func(t *testing.T, st blob.Store, key string, f func([]byte) []byte) {
			t.Helper()
			s := st.(*blob.S3Store)
			k := aws.String(s.Prefix() + key)
			out, err := s.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: k})
			if err != nil {
				t.Fatalf("tamper: get: %v", err)
			}
			old, err := io.ReadAll(out.Body)
			_ = out.Body.Close()
			if err != nil {
				t.Fatalf("tamper: read: %v", err)
			}
			// Keep the metadata: only the bytes change.
			if _, err := s.Client().PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(s.Bucket()), Key: k, Body: bytes.NewReader(f(old)), Metadata: out.Metadata,
			}); err != nil {
				t.Fatalf("tamper: put: %v", err)
			}
		},
		leftovers: func(t *testing.T, st blob.Store) []string {
			t.Helper()
			s := st.(*blob.S3Store)
			out, err := s.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket())})
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
				return nil // gofakes3's answer for a bucket that never had an upload
			}
			if err != nil {
				t.Fatalf("ListMultipartUploads: %v", err)
			}
			var left []string
			for _, u := range out.Uploads {
				left = append(left, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
			}
			return left
		},
	}
}

// suiteOptions keep the suite fast: the smallest part size S3 allows, so
// that 40 MiB is 8 parts, and short retry delays.
func suiteOptions() blob.Options {
	return blob.Options{
		PartSize:        blob.MinPartSize,
		PartConcurrency: 3,
		RetryBaseDelay:  time.Millisecond,
		RetryMaxDelay:   10 * time.Millisecond,
	}
}

const partSize = blob.MinPartSize

// data returns n deterministic pseudo-random bytes for seed.
func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

// onlyReader hides bytes.Reader's other methods, so Put sees a plain
// stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, st blob.Store, key string, b []byte) {
	t.Helper()
	if err := st.Put(t.Context(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

// read returns the object's content, or the first error of Get, reading or
// Close.
func read(ctx context.Context, st blob.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	return b, errors.Join(err, rc.Close())
}

func mustRead(t *testing.T, st blob.Store, key string) []byte {
	t.Helper()
	b, err := read(t.Context(), st, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func keys(t *testing.T, st blob.Store, prefix string) []string {
	t.Helper()
	var ks []string
	for info, err := range st.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		ks = append(ks, info.Key)
	}
	return ks
}

func noLeftovers(t *testing.T, h harness, st blob.Store) {
	t.Helper()
	if left := h.leftovers(t, st); len(left) > 0 {
		t.Fatalf("failed Put left %v behind", left)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			runConformance(t, h)
		})
	}
}

func runConformance(t *testing.T, h harness) {
	cases := []struct {
		name string
		run  func(t *testing.T, h harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"PutFile", testPutFile},
		{"ExistsOnSecondPut", testExists},
		{"SizeMismatch", testSizeMismatch},
		{"NotFound", testNotFound},
		{"Corrupt", testCorrupt},
		{"List", testList},
		{"ListManyAndDelete", testListManyAndDelete},
		{"Delete", testDelete},
		{"BadKeys", testBadKeys},
		{"CancelMidUpload", testCancelMidUpload},
		{"ReaderErrorMidUpload", testReaderError},
		{"ConcurrentPuts", testConcurrentPuts},
		{"GetCancel", testGetCancel},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
}

func testRoundTrip(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	sizes := []int{0, 1, 4096, partSize - 1, partSize, partSize + 1, 2*partSize + 17, 40 << 20}
	for i, n := range sizes {
		for _, known := range []bool{true, false} {
			name := fmt.Sprintf("%d/known=%v", n, known)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				want := data(uint64(i), n)
				key := fmt.Sprintf("jobs/j/chk-1/%d-%v", n, known)
				size := int64(n)
				var r io.Reader = bytes.NewReader(want)
				if !known {
					size, r = -1, onlyReader{r}
				}
				if err := st.Put(t.Context(), key, r, size); err != nil {
					t.Fatalf("Put: %v", err)
				}
				if got := mustRead(t, st, key); !bytes.Equal(got, want) {
					t.Fatalf("Get returned %d bytes, want the %d put", len(got), len(want))
				}
				info, err := st.Stat(t.Context(), key)
				if err != nil || info.Key != key || info.Size != int64(n) || info.ModTime.IsZero() {
					t.Fatalf("Stat = %+v, %v; want key %s, size %d, a mod time", info, err, key, n)
				}
				if ok, err := st.Exists(t.Context(), key); !ok || err != nil {
					t.Fatalf("Exists = %v, %v; want true", ok, err)
				}
			})
		}
	}
}

func testPutFile(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	for _, n := range []int{10, partSize + 100} {
		want := data(7, n)
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("jobs/j/shared/%d.sst", n)
		if err := st.PutFile(t.Context(), key, p); err != nil {
			t.Fatalf("PutFile: %v", err)
		}
		if got := mustRead(t, st, key); !bytes.Equal(got, want) {
			t.Fatalf("Get after PutFile returned %d bytes, want %d", len(got), len(want))
		}
		if err := st.PutFile(t.Context(), key, p); !errors.Is(err, blob.ErrExists) {
			t.Fatalf("second PutFile = %v, want ErrExists", err)
		}
	}
	if err := st.PutFile(t.Context(), "x", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("PutFile of a missing file = %v, want fs.ErrNotExist", err)
	}
}

func testExists(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	for _, n := range []int{100, 2*partSize + 1} {
		key := fmt.Sprintf("savepoints/sp/%d", n)
		first := data(1, n)
		put(t, st, key, first)
		for _, known := range []bool{true, false} {
			size := int64(n)
			if !known {
				size = -1
			}
			err := st.Put(t.Context(), key, bytes.NewReader(data(2, n)), size)
			if !errors.Is(err, blob.ErrExists) {
				t.Fatalf("second Put of %d bytes (known size %v) = %v, want ErrExists", n, known, err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Fatalf("error %q does not name the key", err)
			}
		}
		if got := mustRead(t, st, key); !bytes.Equal(got, first) {
			t.Fatal("a failed second Put changed the object")
		}
	}
	noLeftovers(t, h, st)
}

func testSizeMismatch(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	cases := []struct {
		name       string
		size, have int
	}{
		{"short", 100, 50},
		{"long", 100, 150},
		{"long-by-one-at-part", partSize, partSize + 1},
		{"short-multipart", 3 * partSize, 2*partSize + 5},
		{"long-multipart", 2 * partSize, 3 * partSize},
	}
	for _, c := range cases {
		key := "jobs/j/chk-1/" + c.name
		err := st.Put(t.Context(), key, bytes.NewReader(data(3, c.have)), int64(c.size))
		if err == nil || errors.Is(err, blob.ErrExists) || !strings.Contains(err.Error(), "size") {
			t.Fatalf("%s: Put = %v, want a size error", c.name, err)
		}
		if ok, err := st.Exists(t.Context(), key); ok || err != nil {
			t.Fatalf("%s: after a failed Put, Exists = %v, %v", c.name, ok, err)
		}
	}
	if err := st.Put(t.Context(), "k", bytes.NewReader(nil), -2); err == nil {
		t.Fatal("Put with size -2 succeeded")
	}
	noLeftovers(t, h, st)
}

func testNotFound(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	put(t, st, "a/b", []byte("x"))
	for _, key := range []string{"missing", "a/b/c", "a"} {
		if _, err := st.Get(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Get %s = %v, want ErrNotFound", key, err)
		}
		if _, err := st.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat %s = %v, want ErrNotFound", key, err)
		}
		if ok, err := st.Exists(t.Context(), key); ok || err != nil {
			t.Fatalf("Exists %s = %v, %v; want false", key, ok, err)
		}
	}
}

func testCorrupt(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	ts := blob.TrailerSize
	cases := []struct {
		name   string
		size   int
		tamper func([]byte) []byte
	}{
		{"flip-first-byte", 1000, func(b []byte) []byte { b[0] ^= 1; return b }},
		{"flip-in-multipart", 3*partSize + 9, func(b []byte) []byte { b[2*partSize+3] ^= 0x80; return b }},
		{"flip-in-trailer-sum", 1000, func(b []byte) []byte { b[len(b)-ts] ^= 1; return b }},
		{"truncate-one-byte", 1000, func(b []byte) []byte { return b[:len(b)-1] }},
		{"truncate-content", 1000, func(b []byte) []byte { return append(b[:500:500], b[len(b)-ts:]...) }},
		{"drop-trailer", 1000, func(b []byte) []byte { return b[:len(b)-ts] }},
		{"append", 1000, func(b []byte) []byte { return append(b, 'x') }},
		{"replace-whole", 1000, func(b []byte) []byte { return data(99, len(b)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "jobs/j/chk-1/" + c.name
			put(t, st, key, data(4, c.size))
			h.tamper(t, st, key, c.tamper)
			_, err := read(t.Context(), st, key)
			if !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("reading a tampered object = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Fatalf("error %q does not name the key", err)
			}
		})
	}

	t.Run("close-verifies", func(t *testing.T) {
		key := "jobs/j/chk-1/close"
		put(t, st, key, data(5, 1000))
		h.tamper(t, st, key, func(b []byte) []byte { b[10] ^= 1; return b })
		rc, err := st.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatalf("reading the content: %v", err)
		}
		if err := rc.Close(); !errors.Is(err, blob.ErrCorrupt) {
			t.Fatalf("Close after reading all content = %v, want ErrCorrupt", err)
		}
	})

	t.Run("too-short", func(t *testing.T) {
		key := "jobs/j/chk-1/short"
		put(t, st, key, nil)
		h.tamper(t, st, key, func([]byte) []byte { return []byte("abc") })
		if _, err := st.Get(t.Context(), key); !errors.Is(err, blob.ErrCorrupt) {
			t.Fatalf("Get = %v, want ErrCorrupt", err)
		}
		if _, err := st.Stat(t.Context(), key); !errors.Is(err, blob.ErrCorrupt) {
			t.Fatalf("Stat = %v, want ErrCorrupt", err)
		}
		var listErr error
		for _, err := range st.List(t.Context(), "jobs/j/chk-1/short") {
			listErr = err
		}
		if !errors.Is(listErr, blob.ErrCorrupt) {
			t.Fatalf("List = %v, want ErrCorrupt", listErr)
		}
	})
}

func testList(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	all := []string{
		"artifacts/00ff",
		"jobs/a/chk-1/_metadata",
		"jobs/a/chk-1/op-1.sst",
		"jobs/a/chk-10/_metadata",
		"jobs/a/chk-2/_metadata",
		"jobs/a/shared/1.sst",
		"jobs/a-b/chk-1/_metadata", // '-' sorts before '/': a-b before a/ by key
		"jobs/a.c",
		"savepoints/s1/_metadata",
	}
	for i, k := range slices.Backward(all) {
		put(t, st, k, data(uint64(i), i*10))
	}
	sorted := slices.Sorted(slices.Values(all))
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"jobs/", sorted[1:8]},
		{"jobs/a/", []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-1/op-1.sst", "jobs/a/chk-10/_metadata", "jobs/a/chk-2/_metadata", "jobs/a/shared/1.sst"}},
		{"jobs/a/chk-1", []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-1/op-1.sst", "jobs/a/chk-10/_metadata"}},
		{"jobs/a/chk-1/", []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-1/op-1.sst"}},
		{"jobs/a", sorted[1:8]},
		{"jobs/a.", []string{"jobs/a.c"}},
		{"jobs/a/chk-1/_metadata", []string{"jobs/a/chk-1/_metadata"}},
		{"jobs/b/", nil},
		{"nothing", nil},
		{"jobs/a.c/", nil},
	}
	for _, c := range cases {
		if got := keys(t, st, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List %q = %v, want %v", c.prefix, got, c.want)
		}
	}
	// Sizes are content sizes.
	for info, err := range st.List(t.Context(), "") {
		if err != nil || info.Size != int64(10*slices.Index(all, info.Key)) {
			t.Errorf("List entry %+v, %v: want size %d", info, err, 10*slices.Index(all, info.Key))
		}
	}
	// Stopping early is fine.
	n := 0
	for _, err := range st.List(t.Context(), "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		n++
		if n == 2 {
			break
		}
	}
	for _, bad := range []string{"/jobs", "jobs//a", "jobs/../a", `jobs\a`} {
		var err error
		for _, e := range st.List(t.Context(), bad) {
			err = e
		}
		if !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("List %q = %v, want ErrInvalidKey", bad, err)
		}
	}
}

func testListManyAndDelete(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	const n = 1100 // more than one S3 page of 1000
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("jobs/j/shared/%05d.sst", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if err := st.Put(context.Background(), k, strings.NewReader(k), int64(len(k))); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, k := range want {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	put(t, st, "jobs/k/other", []byte("keep"))

	if got := keys(t, st, "jobs/j/"); !slices.Equal(got, want) {
		t.Fatalf("List returned %d keys, want %d in order", len(got), len(want))
	}
	small := h.reopen(t, st, blob.Options{ListPageSize: 7})
	if got := keys(t, small, "jobs/j/"); !slices.Equal(got, want) {
		t.Fatalf("List with 7 keys per page returned %d keys, want %d in order", len(got), len(want))
	}
	if err := st.Delete(t.Context(), want...); err != nil {
		t.Fatalf("Delete of %d keys: %v", n, err)
	}
	if got := keys(t, st, "jobs/"); !slices.Equal(got, []string{"jobs/k/other"}) {
		t.Fatalf("after Delete, List = %v", got)
	}
}

func testDelete(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	put(t, st, "jobs/j/chk-1/_metadata", []byte("m"))
	put(t, st, "jobs/j/chk-1/a", []byte("a"))
	put(t, st, "jobs/j/chk-2/_metadata", []byte("keep"))
	del := []string{"jobs/j/chk-1/_metadata", "jobs/j/chk-1/a", "jobs/j/chk-1/missing", "nothing/here", "jobs/j/chk-1/a"}
	if err := st.Delete(t.Context(), del...); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := st.Delete(t.Context(), del...); err != nil {
		t.Fatalf("Delete again (idempotent): %v", err)
	}
	if err := st.Delete(t.Context()); err != nil {
		t.Fatalf("Delete of nothing: %v", err)
	}
	if got := keys(t, st, ""); !slices.Equal(got, []string{"jobs/j/chk-2/_metadata"}) {
		t.Fatalf("after Delete, List = %v", got)
	}
	// A deleted key can be written again.
	put(t, st, "jobs/j/chk-1/a", []byte("again"))
	// Keys are all checked first: one bad key deletes nothing.
	if err := st.Delete(t.Context(), "jobs/j/chk-1/a", "../x"); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Delete with a bad key = %v, want ErrInvalidKey", err)
	}
	if ok, _ := st.Exists(t.Context(), "jobs/j/chk-1/a"); !ok {
		t.Fatal("Delete with a bad key deleted a good one")
	}
}

func testBadKeys(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	cases := []struct{ key, reason string }{
		{"", "empty"},
		{"/abs", "absolute"},
		{"a/../b", `".."`},
		{"..", `".."`},
		{"a/./b", `"."`},
		{`a\b`, "backslash"},
		{"a//b", "empty segment"},
		{"a/", "ends with a slash"},
		{"a/\x00", "control character"},
		{"a\nb", "control character"},
		{"\xff", "UTF-8"},
		{strings.Repeat("a", 256), "segment longer"},
		{strings.Repeat("a/", 600) + "a", "longer than 1024"},
		{"a/.blob-tmp-1", "reserved"},
	}
	ctx := t.Context()
	for _, c := range cases {
		ops := map[string]error{}
		ops["put"] = st.Put(ctx, c.key, strings.NewReader("x"), 1)
		ops["putfile"] = st.PutFile(ctx, c.key, "/dev/null")
		_, ops["get"] = st.Get(ctx, c.key)
		_, ops["stat"] = st.Stat(ctx, c.key)
		_, ops["exists"] = st.Exists(ctx, c.key)
		ops["delete"] = st.Delete(ctx, c.key)
		for op, err := range ops {
			var ke *blob.KeyError
			if !errors.Is(err, blob.ErrInvalidKey) || !errors.As(err, &ke) || ke.Key != c.key || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("%s %q = %v, want a KeyError mentioning %q", op, c.key, err, c.reason)
			}
		}
	}
	for _, good := range []string{"a", "jobs/j/chk-1/_metadata", "a/.hidden", "a/..b", "x.y/z-1_2", "ü/ö"} {
		if err := blob.CheckKey(good); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", good, err)
		}
	}
	if got := keys(t, st, ""); len(got) != 0 {
		t.Fatalf("bad keys created %v", got)
	}
}

// cancelReader yields data and calls cancel after `after` bytes (once),
// then keeps yielding: Put must notice the cancellation on its own.
type cancelReader struct {
	r      io.Reader
	after  int
	n      int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.after && c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	return n, err
}

func testCancelMidUpload(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	for _, c := range []struct {
		name        string
		size, after int
	}{
		{"single", 1000, 500},
		{"multipart-first-part", 40 << 20, 1 << 20},
		{"multipart-later-part", 40 << 20, 3*partSize + 10},
	} {
		for _, known := range []bool{true, false} {
			key := fmt.Sprintf("jobs/j/chk-1/%s-%v", c.name, known)
			ctx, cancel := context.WithCancel(t.Context())
			size := int64(c.size)
			if !known {
				size = -1
			}
			err := st.Put(ctx, key, &cancelReader{r: bytes.NewReader(data(6, c.size)), after: c.after, cancel: cancel}, size)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: Put cancelled mid-upload = %v, want context.Canceled", key, err)
			}
			if ok, err := st.Exists(t.Context(), key); ok || err != nil {
				t.Fatalf("%s: after a cancelled Put, Exists = %v, %v; want false", key, ok, err)
			}
		}
	}
	noLeftovers(t, h, st)
	if got := keys(t, st, ""); len(got) != 0 {
		t.Fatalf("cancelled Puts left objects %v", got)
	}
}

var errBoom = errors.New("boom")

// failReader yields data, then fails after `after` bytes.
type failReader struct {
	r     io.Reader
	after int
	n     int
}

func (f *failReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errBoom
	}
	p = p[:min(len(p), f.after-f.n)]
	n, err := f.r.Read(p)
	f.n += n
	return n, err
}

func testReaderError(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	for _, after := range []int{0, 100, partSize, 3*partSize + 1} {
		key := fmt.Sprintf("jobs/j/chk-1/fail-%d", after)
		err := st.Put(t.Context(), key, &failReader{r: bytes.NewReader(data(8, 40<<20)), after: after}, 40<<20)
		if !errors.Is(err, errBoom) {
			t.Fatalf("Put with a reader failing after %d bytes = %v, want errBoom", after, err)
		}
		if ok, err := st.Exists(t.Context(), key); ok || err != nil {
			t.Fatalf("after a failed Put, Exists = %v, %v; want false", ok, err)
		}
	}
	noLeftovers(t, h, st)
}

func testConcurrentPuts(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	sizes := []int{1000}
	if h.exclusiveMultipart {
		sizes = append(sizes, 2*partSize+1)
	}
	for _, n := range sizes {
		key := fmt.Sprintf("artifacts/%d", n)
		const writers = 8
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				errs[i] = st.Put(context.Background(), key, bytes.NewReader(data(uint64(100+i), n)), int64(n))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%d bytes: writers %d and %d both won", n, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, blob.ErrExists):
				t.Fatalf("%d bytes: writer %d: %v, want nil or ErrExists", n, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%d bytes: no writer won", n)
		}
		if got := mustRead(t, st, key); !bytes.Equal(got, data(uint64(100+winner), n)) {
			t.Fatalf("%d bytes: the object is not the winner's", n)
		}
	}
	noLeftovers(t, h, st)
}

func testGetCancel(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	put(t, st, "big", data(9, 12<<20))
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := st.Get(ctx, "big")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer func() { _ = rc.Close() }()
	if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
		t.Fatalf("read: %v", err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading after cancel = %v, want context.Canceled", err)
	}
}

func testClosed(t *testing.T, h harness) {
	st := h.open(t, suiteOptions())
	put(t, st, "k", []byte("v"))
	rc, err := st.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A reader opened before Close still works.
	if b, err := io.ReadAll(rc); err != nil || string(b) != "v" {
		t.Fatalf("reader opened before Close: %q, %v", b, err)
	}
	_ = rc.Close()
	ctx := t.Context()
	ops := map[string]error{}
	ops["put"] = st.Put(ctx, "k2", strings.NewReader("x"), 1)
	_, ops["get"] = st.Get(ctx, "k")
	_, ops["stat"] = st.Stat(ctx, "k")
	_, ops["exists"] = st.Exists(ctx, "k")
	ops["delete"] = st.Delete(ctx, "k")
	for _, err := range st.List(ctx, "") {
		ops["list"] = err
	}
	for op, err := range ops {
		if !errors.Is(err, blob.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
}

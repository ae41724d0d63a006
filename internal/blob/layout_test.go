package blob_test

import (
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/internal/blob"
)

func TestLayout(t *testing.T) {
	t.Parallel()
	cases := []struct{ got, want string }{
		{blob.JobPrefix("j1"), "jobs/j1/"},
		{blob.CheckpointPrefix("j1", 42), "jobs/j1/chk-42/"},
		{blob.CheckpointKey("j1", 42, "op-3.sst"), "jobs/j1/chk-42/op-3.sst"},
		{blob.CheckpointMetadataKey("j1", 42), "jobs/j1/chk-42/_metadata"},
		{blob.SharedPrefix("j1"), "jobs/j1/shared/"},
		{blob.SharedKey("j1", "000123.sst"), "jobs/j1/shared/000123.sst"},
		{blob.SavepointPrefix("sp-1"), "savepoints/sp-1/"},
		{blob.SavepointKey("sp-1", "state-0"), "savepoints/sp-1/state-0"},
		{blob.SavepointMetadataKey("sp-1"), "savepoints/sp-1/_metadata"},
		{blob.ArtifactKey(sha256.Sum256([]byte("x"))), "artifacts/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
		if err := blob.CheckKey(strings.TrimSuffix(c.got, "/")); err != nil {
			t.Errorf("%q is not a valid key: %v", c.got, err)
		}
	}

	job, n, name, ok := blob.ParseCheckpointKey(blob.CheckpointMetadataKey("j1", 42))
	if !ok || job != "j1" || n != 42 || name != blob.MetadataName {
		t.Fatalf("ParseCheckpointKey = %q, %d, %q, %v", job, n, name, ok)
	}
	for _, k := range []string{"jobs/j1/shared/x", "jobs/j1/chk-/x", "jobs/j1/chk-01/x", "jobs/j1/chk--1/x", "jobs/j1/chk-1/", "jobs/j1/chk-1", "savepoints/s/_metadata", "jobs//chk-1/x"} {
		if _, _, _, ok := blob.ParseCheckpointKey(k); ok {
			t.Errorf("ParseCheckpointKey(%q) accepted", k)
		}
	}

	for _, bad := range []string{"", "a/b", "..", "."} {
		if err := blob.CheckName(bad); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	if err := blob.CheckName("job-1"); err != nil {
		t.Errorf("CheckName(job-1) = %v", err)
	}
}

// FuzzCheckKey checks that every key CheckKey accepts stays inside the
// file store's root and is the same path once cleaned.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"a", "jobs/j/chk-1/_metadata", "../x", "a//b", "/abs", `a\b`, "a/./b", "a/", ".blob-tmp-x", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if blob.CheckKey(key) != nil {
			return
		}
		root := "/root"
		p := filepath.Join(root, filepath.FromSlash(key))
		if !strings.HasPrefix(p, root+"/") {
			t.Fatalf("key %q escapes the root: %q", key, p)
		}
		if filepath.ToSlash(p[len(root)+1:]) != key {
			t.Fatalf("key %q is not clean: becomes %q", key, p)
		}
	})
}

// FuzzParseURL checks that the URL parser never panics and that what it
// accepts is self-consistent.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"file:///x", "s3://bucket/p?endpoint=http://h:1&region=r&path_style=true", "s3://a..b", "file://h/x", "s3://b/%zz", "s3://k:s@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		dir, loc, err := blob.ParseURL(raw)
		switch {
		case err != nil:
			if !errors.Is(err, blob.ErrInvalidURL) {
				t.Fatalf("ParseURL(%q) error %v is not ErrInvalidURL", raw, err)
			}
		case loc == nil:
			if !filepath.IsAbs(dir) {
				t.Fatalf("ParseURL(%q) accepted relative dir %q", raw, dir)
			}
		default:
			if loc.Prefix != "" {
				if err := blob.CheckKey(strings.TrimSuffix(loc.Prefix, "/")); err != nil {
					t.Fatalf("ParseURL(%q) accepted prefix %q: %v", raw, loc.Prefix, err)
				}
			}
		}
	})
}

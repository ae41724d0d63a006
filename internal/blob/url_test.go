package blob_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sabotdev/sabot/internal/blob"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	good := []struct {
		url  string
		dir  string
		want blob.S3Location
	}{
		{url: "file:///var/lib/sabot", dir: "/var/lib/sabot"},
		{url: "file://localhost/var/lib/sabot/", dir: "/var/lib/sabot"},
		{url: "file:///tmp/a%20b", dir: "/tmp/a b"},
		{url: "s3://bucket", want: blob.S3Location{Bucket: "bucket"}},
		{url: "s3://bucket/", want: blob.S3Location{Bucket: "bucket"}},
		{url: "s3://my.bucket-1/ckpt/prod/", want: blob.S3Location{Bucket: "my.bucket-1", Prefix: "ckpt/prod/"}},
		{
			url:  "s3://sabot/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
			want: blob.S3Location{Bucket: "sabot", Prefix: "prefix", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true},
		},
		{url: "s3://sabot?endpoint=https://minio.example:9000/&path_style=0", want: blob.S3Location{Bucket: "sabot", Endpoint: "https://minio.example:9000"}},
	}
	for _, c := range good {
		dir, loc, err := blob.ParseURL(c.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if c.dir != "" {
			if dir != filepath.FromSlash(c.dir) || loc != nil {
				t.Errorf("ParseURL(%q) = dir %q, s3 %v; want dir %q", c.url, dir, loc, c.dir)
			}
			continue
		}
		if loc == nil || *loc != c.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", c.url, loc, c.want)
		}
	}

	bad := []struct{ url, part, says string }{
		{"", "scheme", "missing"},
		{"/var/lib/sabot", "scheme", "missing"},
		{"gs://bucket/x", "scheme", `unsupported "gs"`},
		{"file://var/lib/sabot", "host", "three slashes"},
		{"file:relative", "path", "not absolute"},
		{"file://", "path", "missing"},
		{"file:///x?sync=1", "query", "no parameters"},
		{"file:///x#frag", "fragment", "not allowed"},
		{"s3://", "bucket", "missing"},
		{"s3:bucket", "bucket", "missing"},
		{"s3://Bucket/x", "bucket", "lower-case"},
		{"s3://ab", "bucket", "3 to 63"},
		{"s3://bucket_1", "bucket", "lower-case"},
		{"s3://-bucket", "bucket", "begin and end"},
		{"s3://a..b", "bucket", "adjacent dots"},
		{"s3://127.0.0.1/x", "bucket", "IP address"},
		{"s3://127.0.0.1:9000/bucket", "bucket", "has a port"},
		{"s3://key:secret@bucket/x", "userinfo", "credentials"},
		{"s3://bucket//x", "prefix", "absolute"},
		{"s3://bucket/a/../b", "prefix", `".."`},
		{"s3://bucket/a//b", "prefix", "empty segment"},
		{"s3://bucket/x?region=", "query parameter \"region\"", "empty"},
		{"s3://bucket/x?region=US_EAST", "query parameter \"region\"", "region name"},
		{"s3://bucket/x?endpoint=127.0.0.1:9000", "query parameter \"endpoint\"", "http:// or https://"},
		{"s3://bucket/x?endpoint=ftp://h", "query parameter \"endpoint\"", "http:// or https://"},
		{"s3://bucket/x?endpoint=http://h/path", "query parameter \"endpoint\"", "base URL"},
		{"s3://bucket/x?endpoint=http://u:p@h", "query parameter \"endpoint\"", "credentials"},
		{"s3://bucket/x?path_style=yes", "query parameter \"path_style\"", "not a boolean"},
		{"s3://bucket/x?region=a&region=b", "query parameter \"region\"", "2 times"},
		{"s3://bucket/x?pathstyle=true", "query parameter \"pathstyle\"", "unknown: want one of endpoint, path_style, region"},
		{"s3://bucket/x?a=%zz", "query", "invalid URL escape"},
		{"s3://bucket/x#f", "fragment", "not allowed"},
		{"s3://b ucket", "syntax", "invalid character"},
	}
	for _, c := range bad {
		_, _, err := blob.ParseURL(c.url)
		var ue *blob.URLError
		if !errors.As(err, &ue) || !errors.Is(err, blob.ErrInvalidURL) {
			t.Errorf("ParseURL(%q) = %v, want a *URLError", c.url, err)
			continue
		}
		if ue.Part != c.part || !strings.Contains(ue.Reason, c.says) {
			t.Errorf("ParseURL(%q) = %v; want part %q saying %q", c.url, err, c.part, c.says)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q): error %q leaks the password", c.url, err)
		}
	}
}

func TestOpenFileURLCreatesTheDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	st, err := blob.Open("file://"+filepath.ToSlash(dir), blob.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = st.Close() }()
	put(t, st, "k", []byte("v"))
	if got := string(mustRead(t, st, "k")); got != "v" {
		t.Fatalf("read %q", got)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	if err := (blob.Options{}).Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	bad := []struct {
		o    blob.Options
		says string
	}{
		{blob.Options{PartSize: 1 << 20}, "PartSize"},
		{blob.Options{PartSize: 6 << 30}, "PartSize"},
		{blob.Options{PartConcurrency: -1}, "PartConcurrency"},
		{blob.Options{MaxAttempts: -1}, "MaxAttempts"},
		{blob.Options{RetryBaseDelay: time.Second, RetryMaxDelay: time.Millisecond}, "exceeds"},
		{blob.Options{RequestTimeout: -1}, "timeouts"},
		{blob.Options{ListPageSize: 1001}, "ListPageSize"},
		{blob.Options{AccessKeyID: "a"}, "together"},
		{blob.Options{SessionToken: "t"}, "SessionToken"},
	}
	for _, c := range bad {
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Validate(%v) = %v, want an error about %s", c.o, err, c.says)
		}
		if _, err := blob.Open("s3://bucket?region=us-east-1", c.o); err == nil {
			t.Errorf("Open with %v succeeded", c.o)
		}
	}
	s := blob.Options{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "very-secret", SessionToken: "tok-secret"}.String()
	if strings.Contains(s, "secret") || !strings.Contains(s, "AKIDEXAMPLE") || !strings.Contains(s, "REDACTED") {
		t.Fatalf("Options.String() = %s; want the key ID shown and secrets redacted", s)
	}
}

package testkit_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sabotdev/sabot/internal/testkit"
)

func put(t *testing.T, s *testkit.S3, key, body string) {
	t.Helper()
	_, err := s.Client.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
	})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func get(t *testing.T, s *testkit.S3, key string) string {
	t.Helper()
	out, err := s.Client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer func() { _ = out.Body.Close() }()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

// list returns every key under prefix, two per page to exercise pagination.
func list(t *testing.T, s *testkit.S3, prefix string) []string {
	t.Helper()
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(2),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListObjectsV2 %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func statusCode(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestS3PutGetList(t *testing.T) {
	t.Parallel()
	s := testkit.StartS3(t)
	for _, k := range []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-2/_metadata", "jobs/a/shared/1.sst", "jobs/b/chk-1/_metadata", "savepoints/x"} {
		put(t, s, k, "body of "+k)
	}
	if got := get(t, s, "jobs/a/shared/1.sst"); got != "body of jobs/a/shared/1.sst" {
		t.Fatalf("GetObject = %q", got)
	}
	want := []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-2/_metadata", "jobs/a/shared/1.sst"}
	if got := list(t, s, "jobs/a/"); !slices.Equal(got, want) {
		t.Fatalf("list jobs/a/ = %v, want %v", got, want)
	}
	_, err := s.Client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("missing")})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Fatalf("GetObject missing = %v, want NoSuchKey", err)
	}
}

func TestS3Multipart(t *testing.T) {
	t.Parallel()
	s := testkit.StartS3(t)
	ctx := t.Context()
	key := aws.String("jobs/a/shared/big.sst")
	up, err := s.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.Bucket), Key: key})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	// S3's minimum part size is 5 MiB for all but the last part.
	parts := [][]byte{bytes.Repeat([]byte("a"), 5<<20), []byte("tail")}
	var done []types.CompletedPart
	for i, p := range parts {
		out, err := s.Client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.Bucket), Key: key, UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p),
		})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if _, err := s.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.Bucket), Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if got, want := get(t, s, *key), string(bytes.Join(parts, nil)); got != want {
		t.Fatalf("multipart object has %d bytes, want %d", len(got), len(want))
	}
}

func TestS3DeleteObjects(t *testing.T) {
	t.Parallel()
	s := testkit.StartS3(t)
	keys := []string{"jobs/a/chk-1/_metadata", "jobs/a/chk-1/1.sst", "jobs/a/chk-1/2.sst"}
	for _, k := range keys {
		put(t, s, k, k)
	}
	put(t, s, "jobs/a/chk-2/_metadata", "keep")
	var ids []types.ObjectIdentifier
	for _, k := range keys {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(k)})
	}
	out, err := s.Client.DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
		Bucket: aws.String(s.Bucket), Delete: &types.Delete{Objects: ids},
	})
	if err != nil {
		t.Fatalf("DeleteObjects: %v", err)
	}
	if len(out.Deleted) != len(keys) || len(out.Errors) != 0 {
		t.Fatalf("DeleteObjects deleted %d, errors %v; want %d, none", len(out.Deleted), out.Errors, len(keys))
	}
	if got, want := list(t, s, "jobs/"), []string{"jobs/a/chk-2/_metadata"}; !slices.Equal(got, want) {
		t.Fatalf("after delete, list = %v, want %v", got, want)
	}
}

// TestS3ConditionalPut checks write-once semantics: If-None-Match "*" fails
// with 412 on an existing key, and If-Match fails with 412 on a stale ETag.
func TestS3ConditionalPut(t *testing.T) {
	t.Parallel()
	s := testkit.StartS3(t)
	ctx := t.Context()
	putIf := func(key, body string, in s3.PutObjectInput) (*s3.PutObjectOutput, error) {
		in.Bucket, in.Key, in.Body = aws.String(s.Bucket), aws.String(key), bytes.NewReader([]byte(body))
		return s.Client.PutObject(ctx, &in)
	}

	first, err := putIf("savepoints/1/_metadata", "v1", s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if err != nil {
		t.Fatalf("conditional put of a new key: %v", err)
	}
	_, err = putIf("savepoints/1/_metadata", "v2", s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if code := statusCode(err); code != http.StatusPreconditionFailed {
		t.Fatalf("If-None-Match * on existing key: status %d (%v), want 412", code, err)
	}
	_, err = putIf("savepoints/1/_metadata", "v2", s3.PutObjectInput{IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	if code := statusCode(err); code != http.StatusPreconditionFailed {
		t.Fatalf("If-Match stale ETag: status %d (%v), want 412", code, err)
	}
	if got := get(t, s, "savepoints/1/_metadata"); got != "v1" {
		t.Fatalf("after failed conditional puts, object = %q, want v1", got)
	}
	if _, err := putIf("savepoints/1/_metadata", "v3", s3.PutObjectInput{IfMatch: first.ETag}); err != nil {
		t.Fatalf("If-Match current ETag: %v", err)
	}
	if got := get(t, s, "savepoints/1/_metadata"); got != "v3" {
		t.Fatalf("after If-Match put, object = %q, want v3", got)
	}
}

package testkit

import (
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-process S3-compatible server started by StartS3.
type S3 struct {
	// Endpoint is the server's base URL, e.g. "http://127.0.0.1:41234";
	// clients must use path-style addressing.
	Endpoint string
	// Bucket exists and is empty at start.
	Bucket string
	// Region is the region clients sign for; the server accepts any.
	Region string
	// AccessKey and SecretKey are static credentials. gofakes3 checks
	// neither signatures nor keys; they are here so that production code
	// configures its client exactly as it would for AWS.
	AccessKey, SecretKey string
	// Client is an S3 client for Endpoint (BaseEndpoint, UsePathStyle,
	// static credentials).
	Client *s3.Client
}

// StartS3 starts gofakes3 with its in-memory backend behind an httptest
// server on loopback, creates Bucket, and returns a client for it. The server
// is closed by t.Cleanup.
//
// Known gap (gofakes3 v1.2.0): If-None-Match and If-Match are honoured on
// PutObject only; CompleteMultipartUpload ignores them, so a conditional
// multipart write always succeeds. Code that must not overwrite an object
// uses a conditional single-part PutObject, or is tested against versitygw.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	// WithTimeSkewLimit(0): tests with an injected clock may sign requests
	// far from the wall clock; the fake must not reject them.
	faker := gofakes3.New(s3mem.New(), gofakes3.WithTimeSkewLimit(0))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)

	s := &S3{
		Endpoint:  srv.URL,
		Bucket:    "sabot-test",
		Region:    "us-east-1",
		AccessKey: "sabot-test-key",
		SecretKey: "sabot-test-secret",
	}
	// s3.New rather than config.LoadDefaultConfig: nothing is read from the
	// environment or ~/.aws, so tests are hermetic.
	s.Client = s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	if _, err := s.Client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("testkit: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

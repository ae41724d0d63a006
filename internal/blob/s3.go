package blob

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
)

// S3Location says where an S3 store lives; Open fills it from an s3:// URL.
type S3Location struct {
	// Bucket is the bucket name.
	Bucket string
	// Prefix is prepended to every key ("" or a path like "sabot/prod/";
	// a missing trailing slash is added).
	Prefix string
	// Endpoint is an S3-compatible server's base URL, e.g.
	// "http://127.0.0.1:9000". Empty means AWS, resolved from Region.
	Endpoint string
	// Region is the signing region. Empty means AWS_REGION, then
	// AWS_DEFAULT_REGION.
	Region string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// rather than the host name (bucket.endpoint/key).
	PathStyle bool
}

// S3Store keeps objects in an S3 bucket under a prefix, through
// aws-sdk-go-v2. See the package documentation for what it guarantees and
// how writes are made exclusive.
type S3Store struct {
	client    *s3.Client
	transport *http.Transport
	bucket    string
	prefix    string
	opts      Options // defaults applied
	closed    atomic.Bool
	bufs      sync.Pool // *[]byte with cap opts.PartSize+trailerSize
	readBufs  *bufPool  // for Get's WriteTo
}

// metaToken is the object metadata entry holding a random token unique to
// one Put. When a retried conditional write fails with 412 or NoSuchUpload
// because the attempt whose response was lost already succeeded, the token
// tells our own object from someone else's.
const metaToken = "sabot-put-token"

// OpenS3 returns a store for loc. It does no I/O.
func OpenS3(loc S3Location, opts Options) (*S3Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := checkBucket(loc.Bucket); err != nil {
		return nil, fmt.Errorf("blob: s3 bucket: %w", err)
	}
	prefix := loc.Prefix
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/")
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("blob: s3 prefix: %w", err)
		}
		prefix += "/"
	}
	if loc.Endpoint != "" {
		if err := checkEndpoint(loc.Endpoint); err != nil {
			return nil, fmt.Errorf("blob: s3 endpoint: %w", err)
		}
	}
	region := cmpOr(loc.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	if region == "" {
		return nil, errors.New("blob: s3 region not set: add ?region= to the URL or set AWS_REGION")
	}
	creds, err := resolveCredentials(opts)
	if err != nil {
		return nil, err
	}

	// Our own transport, so that Close can drop idle connections and one
	// Put's parallel parts do not queue for the default 2 idle connections
	// per host. Timeouts come from contexts (RequestTimeout) and the read
	// watchdog in s3Reader, not from a client-wide http.Client.Timeout that
	// would also cut off a long, healthy download.
	tr := awshttp.NewBuildableClient().GetTransport()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{
		Transport: tr,
		// S3 does not redirect a correctly addressed request; the SDK
		// itself does not follow redirects either.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	// Retries: the SDK's standard retryer, which already classifies 5xx,
	// throttling, connection resets and timeouts, rewinds request bodies
	// and backs off with full jitter. We bound its attempts and delays and
	// turn off its client-wide retry token bucket: with it, one job's
	// failing uploads would make another's fail fast. The total time of a
	// request and its retries is bounded by RequestTimeout (see reqCtx).
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = opts.MaxAttempts
		o.BaseDelay = opts.RetryBaseDelay
		o.MaxBackoff = opts.RetryMaxDelay
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(retryConflict))
	})

	s3opts := s3.Options{
		Region:       region,
		UsePathStyle: loc.PathStyle,
		Credentials:  creds,
		HTTPClient:   hc,
		Retryer:      retryer,
		// The SDK logs to stderr by default, e.g. on every GET of a
		// multipart object ("checksum validation skipped").
		Logger: logging.Nop{},
		DisableLogOutputChecksumValidationSkipped: true,
	}
	if loc.Endpoint != "" {
		s3opts.BaseEndpoint = aws.String(strings.TrimSuffix(loc.Endpoint, "/"))
	}
	return &S3Store{
		client:    s3.New(s3opts),
		transport: tr,
		bucket:    loc.Bucket,
		prefix:    prefix,
		opts:      opts,
		readBufs:  &bufPool{size: readBufSize},
	}, nil
}

// resolveCredentials applies the documented order: Options.Credentials,
// static keys, environment.
func resolveCredentials(o Options) (aws.CredentialsProvider, error) {
	switch {
	case o.Credentials != nil:
		return aws.NewCredentialsCache(o.Credentials), nil
	case o.AccessKeyID != "":
		return credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken), nil
	}
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return nil, errors.New("blob: no s3 credentials: set Options.Credentials (e.g. from config.LoadDefaultConfig), static keys in Options, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN")), nil
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Client returns the underlying SDK client, configured like the store's
// (endpoint, addressing, credentials, retries). Writing through it bypasses
// the store's guarantees; it is here for tools and tests.
func (s *S3Store) Client() *s3.Client { return s.client }

// Bucket returns the store's bucket.
func (s *S3Store) Bucket() string { return s.bucket }

// Prefix returns the prefix every key is stored under ("" or ending in "/").
func (s *S3Store) Prefix() string { return s.prefix }

func (s *S3Store) check(key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	if len(s.prefix)+len(key) > MaxKeyLen {
		return &KeyError{Key: key, Reason: fmt.Sprintf("with the store prefix %q it exceeds S3's %d-byte key limit", s.prefix, MaxKeyLen)}
	}
	return nil
}

func (s *S3Store) objectKey(key string) *string { return aws.String(s.prefix + key) }

// errRequestTimeout is the cause of a request context that ran out of
// Options.RequestTimeout.
var errRequestTimeout = errors.New("blob: request timed out")

// reqCtx bounds one request and its retries by RequestTimeout.
func (s *S3Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.opts.RequestTimeout, errRequestTimeout)
}

// reqErr names RequestTimeout when it is what stopped a request, rather than
// leaving a bare "context deadline exceeded" the caller did not set.
func (s *S3Store) reqErr(rctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(rctx), errRequestTimeout) {
		return fmt.Errorf("%w after %v (Options.RequestTimeout), with up to %d attempts: %w", errRequestTimeout, s.opts.RequestTimeout, s.opts.MaxAttempts, err)
	}
	return err
}

// head is HeadObject bounded by RequestTimeout, with NotFound mapped to
// ErrNotFound.
func (s *S3Store) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	out, err := s.client.HeadObject(rctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: s.objectKey(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, s.reqErr(rctx, err)
	}
	return out, nil
}

// ours reports whether key holds the object written by the Put that chose
// token. Errors count as "no": the caller then reports the conflict.
func (s *S3Store) ours(ctx context.Context, key, token string) bool {
	out, err := s.head(ctx, key)
	if err != nil {
		return false
	}
	for k, v := range out.Metadata {
		if strings.EqualFold(k, metaToken) {
			return v == token
		}
	}
	return false
}

// PutFile implements Store.
func (s *S3Store) PutFile(ctx context.Context, key, path string) error {
	return putFile(ctx, s, key, path)
}

// Stat implements Store.
func (s *S3Store) Stat(ctx context.Context, key string) (Info, error) {
	if err := s.check(key); err != nil {
		return Info{}, wrapOp("stat", key, err)
	}
	out, err := s.head(ctx, key)
	if err != nil {
		return Info{}, wrapOp("stat", key, err)
	}
	info, err := s3Info(key, aws.ToInt64(out.ContentLength), out.LastModified)
	return info, wrapOp("stat", key, err)
}

func s3Info(key string, stored int64, mod *time.Time) (Info, error) {
	if stored < int64(trailerSize) {
		return Info{}, fmt.Errorf("%w: %d bytes is too short to hold a checksum trailer", ErrCorrupt, stored)
	}
	return Info{Key: key, Size: stored - int64(trailerSize), ModTime: aws.ToTime(mod)}, nil
}

// Exists implements Store.
func (s *S3Store) Exists(ctx context.Context, key string) (bool, error) {
	if err := s.check(key); err != nil {
		return false, wrapOp("exists", key, err)
	}
	_, err := s.head(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, wrapOp("exists", key, err)
	}
}

// List implements Store with ListObjectsV2, one page (ListPageSize keys)
// per request, following continuation tokens.
func (s *S3Store) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := checkPrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		if s.closed.Load() {
			yield(Info{}, wrapOp("list", prefix, ErrClosed))
			return
		}
		in := &s3.ListObjectsV2Input{
			Bucket:  &s.bucket,
			Prefix:  aws.String(s.prefix + prefix),
			MaxKeys: aws.Int32(int32(s.opts.ListPageSize)),
		}
		for {
			rctx, cancel := s.reqCtx(ctx)
			out, err := s.client.ListObjectsV2(rctx, in)
			err = s.reqErr(rctx, err)
			cancel()
			if err != nil {
				yield(Info{}, wrapOp("list", prefix, err))
				return
			}
			for _, o := range out.Contents {
				key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
				if strings.HasSuffix(key, "/") {
					continue // a "folder" marker made by a console, not an object
				}
				info, err := s3Info(key, aws.ToInt64(o.Size), o.LastModified)
				if err != nil {
					yield(Info{}, wrapOp("list", key, err))
					return
				}
				if !yield(info, nil) {
					return
				}
			}
			if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
				return
			}
			in.ContinuationToken = out.NextContinuationToken
		}
	}
}

// deleteBatch is S3's limit on keys per DeleteObjects request.
const deleteBatch = 1000

// Delete implements Store with DeleteObjects, up to 1000 keys per request.
// S3 reports no error for a missing key.
func (s *S3Store) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := s.check(k); err != nil {
			return wrapOp("delete", k, err)
		}
	}
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	var errs []error
	for batch := range slices.Chunk(keys, deleteBatch) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, wrapOp("delete", batch[0], err))
			break
		}
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: s.objectKey(k)}
		}
		rctx, cancel := s.reqCtx(ctx)
		out, err := s.client.DeleteObjects(rctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		err = s.reqErr(rctx, err)
		cancel()
		if err != nil {
			errs = append(errs, wrapOp("delete", batch[0], fmt.Errorf("batch of %d keys: %w", len(batch), err)))
			continue
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(e.Key), s.prefix)
			errs = append(errs, wrapOp("delete", key, fmt.Errorf("%s: %s", aws.ToString(e.Code), aws.ToString(e.Message))))
		}
	}
	return errors.Join(errs...)
}

// Close implements Store: later operations fail with ErrClosed, and idle
// connections are closed. Readers already open keep their connections.
func (s *S3Store) Close() error {
	s.closed.Store(true)
	s.transport.CloseIdleConnections()
	return nil
}

package blob

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Defaults and limits for Options. The S3 limits are the service's own:
// every part but the last is at least 5 MiB, at most 5 GiB, and an upload
// has at most 10 000 parts.
const (
	DefaultPartSize        = 16 << 20
	DefaultPartConcurrency = 4
	DefaultMaxAttempts     = 5
	DefaultRetryBaseDelay  = 100 * time.Millisecond
	DefaultRetryMaxDelay   = 5 * time.Second
	DefaultRequestTimeout  = 2 * time.Minute
	DefaultReadIdleTimeout = time.Minute
	DefaultListPageSize    = 1000

	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Options configures an S3 store; the file store needs none and ignores
// them. Every field has a usable zero value. Where the store is (bucket,
// prefix, endpoint, region, addressing) comes from the URL, not from here.
type Options struct {
	// Credentials signs S3 requests. Set it to use the full standard AWS
	// chain (shared config and profiles, SSO, web identity, ECS and EC2
	// roles) as resolved by config.LoadDefaultConfig in the caller.
	// Default: the static keys below if set, else the environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
	Credentials aws.CredentialsProvider

	// AccessKeyID, SecretAccessKey and SessionToken are static S3
	// credentials, for tests and S3-compatible servers. Set both or
	// neither of the first two; they may not be combined with Credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// PartSize is the size of one part of a multipart upload, and the size
	// above which Put uses multipart at all. Default DefaultPartSize
	// (16 MiB); at least MinPartSize. When Put is told the size, it grows
	// the part size for that object if needed to stay within MaxParts; of
	// unknown size, an object can hold at most MaxParts·PartSize bytes.
	PartSize int64

	// PartConcurrency is how many parts of one Put are uploaded at once.
	// One Put holds at most PartConcurrency+1 part buffers (pooled per
	// store); a Put of unknown size holds one even for small content, a
	// Put of known small size only its content. Default
	// DefaultPartConcurrency (4): 80 MiB per large Put at most.
	PartConcurrency int

	// MaxAttempts bounds the attempts of one S3 request, the first
	// included (1 disables retries), and the reconnects of one Get's
	// reader. Default DefaultMaxAttempts (5).
	MaxAttempts int

	// RetryBaseDelay and RetryMaxDelay shape the backoff between attempts:
	// full jitter over min(RetryBaseDelay·2^i, RetryMaxDelay). Throttling
	// responses (SlowDown) start from 1 s instead, as the SDK does.
	// Defaults 100 ms and 5 s.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration

	// RequestTimeout bounds one S3 request including all its retries and
	// backoff: a PutObject, one part's UploadPart, a HeadObject, one page
	// of a listing. For Get it bounds opening the object (until the
	// response headers arrive). Default DefaultRequestTimeout (2 min).
	RequestTimeout time.Duration

	// ReadIdleTimeout bounds a stall while reading a Get's body: a Read
	// that receives no byte for this long drops the connection and resumes
	// from the same offset (counted against MaxAttempts). Default
	// DefaultReadIdleTimeout (1 min).
	ReadIdleTimeout time.Duration

	// ListPageSize is the number of keys List asks S3 for per request (S3
	// returns at most 1000). Default DefaultListPageSize.
	ListPageSize int

	// Logger receives warnings beyond the error returned, e.g. a
	// multipart upload that could not be aborted. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns o with zero fields replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartConcurrency == 0 {
		o.PartConcurrency = DefaultPartConcurrency
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryBaseDelay == 0 {
		o.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if o.RetryMaxDelay == 0 {
		o.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.ReadIdleTimeout == 0 {
		o.ReadIdleTimeout = DefaultReadIdleTimeout
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate rejects out-of-range values and contradictions. Zero values are
// valid (they mean the default).
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("blob: options: "+format, args...))
	}
	if o.PartSize != 0 && (o.PartSize < MinPartSize || o.PartSize > MaxPartSize) {
		bad("PartSize %d outside [%d, %d] (S3's part size limits)", o.PartSize, MinPartSize, MaxPartSize)
	}
	if o.PartConcurrency < 0 {
		bad("PartConcurrency %d is negative", o.PartConcurrency)
	}
	if o.MaxAttempts < 0 {
		bad("MaxAttempts %d is negative", o.MaxAttempts)
	}
	if o.RetryBaseDelay < 0 || o.RetryMaxDelay < 0 {
		bad("retry delays must not be negative")
	}
	if d := o.withDefaults(); d.RetryBaseDelay > d.RetryMaxDelay {
		bad("RetryBaseDelay %v exceeds RetryMaxDelay %v", d.RetryBaseDelay, d.RetryMaxDelay)
	}
	if o.RequestTimeout < 0 || o.ReadIdleTimeout < 0 {
		bad("timeouts must not be negative")
	}
	if o.ListPageSize < 0 || o.ListPageSize > 1000 {
		bad("ListPageSize %d outside [1, 1000]", o.ListPageSize)
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		bad("AccessKeyID and SecretAccessKey must be set together")
	}
	if o.SessionToken != "" && o.AccessKeyID == "" {
		bad("SessionToken without AccessKeyID and SecretAccessKey")
	}
	if o.Credentials != nil && o.AccessKeyID != "" {
		bad("set either Credentials or static keys, not both")
	}
	return errors.Join(errs...)
}

// String prints the options with secrets redacted.
func (o Options) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "blob.Options{PartSize: %d, PartConcurrency: %d, MaxAttempts: %d, RetryBaseDelay: %v, RetryMaxDelay: %v, RequestTimeout: %v, ReadIdleTimeout: %v, ListPageSize: %d",
		o.PartSize, o.PartConcurrency, o.MaxAttempts, o.RetryBaseDelay, o.RetryMaxDelay, o.RequestTimeout, o.ReadIdleTimeout, o.ListPageSize)
	if o.Credentials != nil {
		fmt.Fprintf(&b, ", Credentials: %T", o.Credentials)
	}
	if o.AccessKeyID != "" {
		fmt.Fprintf(&b, ", AccessKeyID: %s, SecretAccessKey: REDACTED", o.AccessKeyID)
	}
	if o.SessionToken != "" {
		b.WriteString(", SessionToken: REDACTED")
	}
	b.WriteString("}")
	return b.String()
}

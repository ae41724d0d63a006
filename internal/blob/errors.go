package blob

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Sentinel errors. Every error a Store returns wraps at most one of these;
// inspect them with errors.Is.
var (
	// ErrExists is returned by Put and PutFile when the key already holds an
	// object. Objects are immutable: nothing was written, and the existing
	// object is unchanged.
	ErrExists = errors.New("blob: object already exists")

	// ErrNotFound is returned by Get and Stat for a key that holds no object.
	// Delete never returns it (deleting a missing key is not an error), and
	// Exists reports it as false.
	ErrNotFound = errors.New("blob: object not found")

	// ErrCorrupt is returned when an object's bytes do not match the SHA-256
	// and length recorded in its trailer: a flipped bit, a truncated or
	// extended object, or an object not written by this package. Get's
	// reader returns it from the Read that reaches the end of the content
	// (or from Close); List and Stat return it for an object too short to
	// hold a trailer. Retrying does not help: the stored object is bad.
	ErrCorrupt = errors.New("blob: object corrupt")

	// ErrInvalidKey is wrapped by *KeyError, returned for a key or list
	// prefix that breaks the key rules (see CheckKey).
	ErrInvalidKey = errors.New("blob: invalid key")

	// ErrInvalidURL is wrapped by *URLError, returned by Open for a store URL
	// it cannot use.
	ErrInvalidURL = errors.New("blob: invalid url")

	// ErrClosed is returned by every operation on a Store after Close.
	ErrClosed = errors.New("blob: store closed")
)

// KeyError reports a key or prefix that breaks the key rules. It wraps
// ErrInvalidKey.
type KeyError struct {
	// Key is the offending key or prefix, as given.
	Key string
	// Reason says which rule it breaks.
	Reason string
}

func (e *KeyError) Error() string {
	return "blob: invalid key " + strconv.Quote(e.Key) + ": " + e.Reason
}

// Unwrap returns ErrInvalidKey.
func (e *KeyError) Unwrap() error { return ErrInvalidKey }

// URLError reports a store URL Open cannot use, naming the part that is
// wrong. It wraps ErrInvalidURL.
type URLError struct {
	// URL is the URL as given, with any password redacted.
	URL string
	// Part names what is wrong: "scheme", "host", "bucket", "path",
	// "prefix", "userinfo", "fragment", or `query parameter "name"`.
	Part string
	// Reason says what is wrong with it and what is expected.
	Reason string
}

func (e *URLError) Error() string {
	return "blob: invalid url " + strconv.Quote(e.URL) + ": " + e.Part + ": " + e.Reason
}

// Unwrap returns ErrInvalidURL.
func (e *URLError) Unwrap() error { return ErrInvalidURL }

// opError adds the operation and key to an error. Sentinels stay reachable
// through Unwrap; the message drops a repeated "blob: " prefix so that the
// result reads `blob: put "k": object already exists`.
type opError struct {
	op  string
	key string
	err error
}

func (e *opError) Error() string {
	return "blob: " + e.op + " " + strconv.Quote(e.key) + ": " + strings.TrimPrefix(e.err.Error(), "blob: ")
}

func (e *opError) Unwrap() error { return e.err }

// wrapOp wraps err (if any) with op and key. Errors that already name their
// key (KeyError) and errors already wrapped are returned as they are.
func wrapOp(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var ke *KeyError
	var oe *opError
	if errors.As(err, &ke) || errors.As(err, &oe) {
		return err
	}
	return &opError{op: op, key: key, err: err}
}

// Classification of S3 errors, in one place (STYLE §10). Everything is
// decided through errors.As on the SDK's typed errors, the API error code,
// or the HTTP status, never by matching message text.

// httpStatus returns the HTTP status of an S3 response error, or 0.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode returns the S3 API error code ("NoSuchKey", "SlowDown"), or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports a missing object: NoSuchKey from GET, NotFound from
// HEAD (which has no body, so the SDK names it by status alone).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}

// isPreconditionFailed reports a failed If-None-Match / If-Match: the key
// already exists (or, for If-Match, changed).
func isPreconditionFailed(err error) bool {
	return httpStatus(err) == http.StatusPreconditionFailed || errorCode(err) == "PreconditionFailed"
}

// isNoSuchUpload reports a multipart upload that no longer exists: aborted,
// or already completed (seen when a retried CompleteMultipartUpload follows
// one whose response was lost).
func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	return errors.As(err, &nsu) || errorCode(err) == "NoSuchUpload"
}

// retryConflict marks S3's 409 ConditionalRequestConflict retryable: two
// conditional writes to one key raced inside S3, and a retry resolves to
// either success or 412 (someone else won). The SDK does not retry it by
// default. Everything else is left to the SDK's standard classification
// (5xx, throttling, connection errors, timeouts).
func retryConflict(err error) aws.Ternary {
	if errorCode(err) == "ConditionalRequestConflict" {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

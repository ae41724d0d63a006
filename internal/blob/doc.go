// Package blob is the store that checkpoints, savepoints and function
// artifacts are written to: S3 (or an S3-compatible server) in production,
// a local directory for `sabot dev` and tests. It owns the object format
// (content plus a checksum trailer), the key rules, the layout of keys
// (layout.go) and the two implementations of Store.
//
// # Opening
//
//	st, err := blob.Open("s3://bucket/prefix?region=eu-west-1", blob.Options{Credentials: cfg.Credentials})
//	st, err := blob.Open("s3://sabot/ckpt?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true", opts)
//	st, err := blob.Open("file:///var/lib/sabot/blobs", blob.Options{})
//
// A bad URL yields a *URLError naming the part that is wrong. S3
// credentials come from Options.Credentials (pass the provider
// config.LoadDefaultConfig resolved, for the full AWS chain), static keys
// in Options, or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN environment, in that order.
//
// # Rules every user relies on
//
//   - Objects are immutable. Put creates an object or fails with ErrExists;
//     nothing overwrites, appends to or renames an object. To replace, write
//     a new key. Delete is the only other mutation.
//   - No reader sees a partial object: a key either holds a complete object
//     or nothing. (S3 shows an object only when its PutObject or
//     CompleteMultipartUpload finishes; the file store links a complete,
//     fsynced temporary file into place.)
//   - Every object is verified on read. Get's reader checks the SHA-256 and
//     length recorded at write time and fails with ErrCorrupt instead of
//     returning io.EOF if they disagree. Read to io.EOF before acting on
//     the bytes.
//   - A Put that returned nil is durable (S3's own durability; fsync of
//     file and directory in the file store). A Put that failed leaves no
//     object, except when its final response was lost: then the object may
//     exist, and a retry of the Put reports ErrExists.
//   - Keys are slash-separated relative paths (CheckKey): never empty,
//     absolute, "." or "..", never with a backslash or an empty segment.
//     Both implementations enforce the same rules before any I/O.
//   - A completed checkpoint or savepoint is one whose _metadata object
//     exists: write all its files first, _metadata last (DESIGN.md: the
//     checkpoint is complete once _metadata is written and its pointer is
//     committed in etcd). A failed checkpoint's own files are deleted by
//     its prefix; files a later checkpoint may reuse live under
//     jobs/<job>/shared/ and are deleted only when no completed
//     checkpoint references them.
//
// # Object format
//
// An object is its content followed by a 48-byte trailer: SHA-256 of the
// content, the content length (big-endian uint64) and the magic
// "SABOTBL1". Stat, List and Info report the content length. Put computes
// the trailer while streaming, so it needs neither the size in advance nor
// a second pass; this is why the checksum is not S3 metadata, which is
// fixed when a multipart upload is created, before the content is read.
// Both stores write the same bytes, so objects copied between them verify.
//
// # Guarantees of the two implementations
//
// FileStore (file:///dir): Put writes a temporary file in the object's
// directory (named ".blob-tmp-*", never listed), fsyncs it, and hard-links
// it to the key's path; link fails if the path exists, so exactly one of
// concurrent Puts of a key wins, atomically. The directory is fsynced
// after the link and after creating directories. Deletes prune empty
// directories. A crash may leave temporary files, which are inert. A file
// store cannot hold both "a" and "a/b" (S3 can): such a Put fails with a
// *KeyError.
//
// S3Store (s3://bucket/prefix): objects up to Options.PartSize (16 MiB)
// are written with one PutObject carrying If-None-Match: "*", atomic on S3
// and gofakes3 alike. Larger objects are written as multipart uploads
// (PartConcurrency parts of PartSize in flight, so memory per Put is
// bounded by (PartConcurrency+1)·PartSize) completed with If-None-Match:
// "*", which AWS S3 honours. Servers that ignore that condition on
// CompleteMultipartUpload (gofakes3 v1.2.0, used in tests; some
// S3-compatible servers) get a best-effort exclusivity instead: Put checks
// the key is free before creating the upload and again just before
// completing it, and only two multipart Puts of one key whose final steps
// overlap can both succeed there, the later replacing the earlier. Sabot's
// keys are unique per writer (checkpoint numbers, content hashes), so this
// only matters for bugs; on AWS S3 it cannot happen. A failed or cancelled
// multipart upload is aborted, also when ctx is already cancelled.
// Requests are retried by the SDK's standard retryer (5xx, throttling,
// connection errors, 409 ConditionalRequestConflict) with full-jitter
// exponential backoff, at most MaxAttempts attempts, each request with its
// retries bounded by RequestTimeout; Get additionally resumes a broken or
// stalled body with a ranged GET. When a retry of a conditional write finds
// the key taken (412) or the upload gone, a per-Put token in the object's
// metadata tells a lost response of our own success from someone else's
// object.
//
// # Concurrency
//
// A Store is safe for concurrent use; its readers are not (one goroutine
// per reader, as for any io.Reader). Put's part uploads run in goroutines
// owned by that Put (internal/group): every one has returned before Put
// does, on success, error or cancellation.
package blob

// Package testkit starts the real components Sabot's tests run against, so
// that a test needing etcd, Kafka or S3 is a few lines and never mocks what
// has a real stand-in (DESIGN.md, "Real components in tests").
//
// Every helper takes a testing.TB, starts its component in this process on
// loopback with port 0 (so parallel tests never clash over ports), and
// registers its shutdown with t.Cleanup: clients close before the servers
// they talk to, and nothing outlives the test. Components log to the test's
// own output (shown with -v or on failure), never to stderr.
//
//   - [StartEtcd] runs a single-member etcd (internal/etcdserver, the same
//     code `sabot dev` runs) in a temp dir and returns a ready
//     go.etcd.io/etcd/client/v3 client. Used for membership, leader
//     election, assignments and checkpoint pointers.
//   - [StartKafka] runs franz-go's in-process Kafka-protocol broker,
//     github.com/twmb/franz-go/pkg/kfake, with three brokers by default,
//     optional seeded topics, and optional on-disk persistence
//     ([WithDataDir], [Kafka.Restart]) for tests that restart the broker.
//     kfake implements idempotent and transactional producers,
//     read_committed fetches, consumer groups, and per-request control
//     hooks (ControlKey and Fault on [Kafka].Cluster) for failure injection.
//   - [StartS3] runs github.com/johannesboyne/gofakes3 with its in-memory
//     backend (s3mem) behind an httptest server, with one bucket created,
//     and returns an aws-sdk-go-v2 S3 client configured for it (custom
//     endpoint, path-style addressing, static credentials). gofakes3 is
//     used in process for speed: a blob-store test pays no process start
//     and no disk. It supports put/get, ListObjectsV2 with pagination,
//     multipart uploads, batch delete, and conditional PutObject
//     (If-None-Match: "*" and If-Match answer 412). It does not honour
//     conditional headers on CompleteMultipartUpload; see [StartS3]. For
//     tests that span processes (a worker binary killed with SIGKILL and
//     restarted against the same bucket), the documented choice is
//     versitygw in its posix mode, installed with
//     `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`;
//     it is not wired in yet.
//   - [Eventually] polls a condition until it holds or a deadline passes:
//     tests wait for asynchronous effects by polling, never by sleeping.
//   - [FreeAddr] reserves a loopback address for the rare component that
//     cannot take port 0.
//   - [Logger] returns a slog.Logger writing to the test's output.
//
// StartPlatform, which wires gateway, scheduler and workers on top of these,
// lives in platform.go.
//
// Every package's TestMain runs goleak (go.uber.org/goleak); the helpers
// here stop every goroutine they start, so no package needs to ignore
// anything on their account.
package testkit

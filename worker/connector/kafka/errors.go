package kafka

import (
	"errors"
	"fmt"
)

// ErrMalformed matches (errors.Is) every error about a record that could
// not be decoded into the source's schema: the RecordError a Source returns
// under PolicyFail, and the error carried in a dead-letter record's header.
var ErrMalformed = errors.New("kafka: malformed record")

// ErrClosed is returned by Poll, Write and Flush after Close, and by the
// TxnSink's methods after its Close.
var ErrClosed = errors.New("kafka: closed")

// ErrUnknownTopic is returned by NewSource when a configured topic does not
// exist, or when a topic regex matches no topic: a source with nothing to
// read is a configuration mistake, not an idle source.
var ErrUnknownTopic = errors.New("kafka: unknown topic")

// RecordError is a record the source could not decode under PolicyFail. It
// names where the record is (topic, partition, offset) and what is wrong
// with it (Err, which matches ErrMalformed).
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("kafka: malformed record at %s/%d offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the decode error; errors.Is(e, ErrMalformed) holds.
func (e *RecordError) Unwrap() error { return e.Err }

// malformedf builds a decode error matching ErrMalformed. The message names
// the field and the problem; the caller adds where the record is.
func malformedf(format string, args ...any) error {
	return &malformedError{msg: fmt.Sprintf(format, args...)}
}

type malformedError struct{ msg string }

func (e *malformedError) Error() string { return e.msg }

// Is makes every decode error match ErrMalformed without putting the
// sentinel's text into each message.
func (e *malformedError) Is(target error) bool { return target == ErrMalformed } //nolint:errorlint // an Is method compares identity by definition

// FetchError is a partition-level error the Kafka client reported while
// fetching (for example data loss detected after an offset reset, or an
// authorization failure). The source fails rather than skip data silently.
type FetchError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("kafka: fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// ProduceError is the first record a Sink (or the dead-letter output of a
// Source) failed to produce. The sink is failed from then on: every later
// Write and Flush returns it, because at-least-once output cannot continue
// past a lost record; the runtime restarts from the last checkpoint.
type ProduceError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *ProduceError) Error() string {
	return fmt.Sprintf("kafka: produce to %s/%d: %v", e.Topic, e.Partition, e.Err)
}

func (e *ProduceError) Unwrap() error { return e.Err }

// ErrTransactionLost matches (errors.Is) every *LostTransactionError: a
// TxnSink transaction that a completed checkpoint covers could not be
// committed because the broker had already aborted it (typically its
// transaction timeout elapsed first) or no longer knows it. Its rows are
// not in the topic, or cannot be shown to be: treat it as data loss,
// which retrying cannot undo.
var ErrTransactionLost = errors.New("kafka: transaction lost")

// LostTransactionError is a pre-committed transaction that Commit or
// Recover could not commit because the broker ended it otherwise. It
// matches ErrTransactionLost; Err is the broker's answer (for example
// kerr.InvalidTxnState or kerr.ProducerFenced).
type LostTransactionError struct {
	TransactionalID string
	Checkpoint      int64
	ProducerID      int64
	ProducerEpoch   int16
	// Unknown is set when the broker no longer knows the transaction
	// (INVALID_PRODUCER_ID_MAPPING: its transactional id expired after
	// transactional.id.expiration.ms, 7 days by default, for example when
	// restoring an old savepoint): it ended long ago, committed or
	// aborted, and which cannot be told.
	Unknown bool
	Err     error
}

func (e *LostTransactionError) Error() string {
	what := "was aborted by the broker before it could be committed, so its rows are not in the topic " +
		"(the usual cause is a transaction timeout shorter than checkpoint interval plus recovery time; see CheckTransactionTimeout)"
	if e.Unknown {
		what = "is no longer known to the broker (its transactional id expired, or the broker lost its state), " +
			"so whether its rows were committed cannot be known"
	}
	return fmt.Sprintf("kafka: DATA LOSS: transaction %s (producer id %d, epoch %d) of completed checkpoint %d %s: %v",
		e.TransactionalID, e.ProducerID, e.ProducerEpoch, e.Checkpoint, what, e.Err)
}

// Unwrap returns the broker's error.
func (e *LostTransactionError) Unwrap() error { return e.Err }

// Is makes every LostTransactionError match ErrTransactionLost.
func (e *LostTransactionError) Is(target error) bool { return target == ErrTransactionLost } //nolint:errorlint // an Is method compares identity by definition

package runtime

import "errors"

// ErrUnrecoverable matches (errors.Is) every error marked with
// Unrecoverable: a failure that restarting the job cannot repair, because
// it already lost data or because every attempt would fail the same way.
// The worker reports it (clusterv1.TaskReport.unrecoverable) and the
// scheduler fails the job, whatever its restart strategy, instead of
// restarting it in a loop. Example: a Kafka transaction of a completed
// checkpoint that the broker aborted (kafka.ErrTransactionLost).
var ErrUnrecoverable = errors.New("runtime: unrecoverable failure")

// Unrecoverable marks err as unrecoverable: the result matches both
// ErrUnrecoverable and everything err matches, and reads as err (the mark
// adds no text). Unrecoverable(nil) is nil.
func Unrecoverable(err error) error {
	if err == nil {
		return nil
	}
	return &unrecoverableError{err: err}
}

type unrecoverableError struct{ err error }

func (e *unrecoverableError) Error() string { return e.err.Error() }
func (e *unrecoverableError) Unwrap() error { return e.err }

// Is makes the mark match ErrUnrecoverable.
func (e *unrecoverableError) Is(target error) bool { return target == ErrUnrecoverable } //nolint:errorlint // an Is method compares identity by definition

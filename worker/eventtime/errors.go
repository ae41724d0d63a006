package eventtime

import (
	"errors"
	"fmt"
)

// Sentinels for conditions callers act on. Inspect with errors.Is.
var (
	// ErrNullTimestamp: a row's event-time value is null. The runtime
	// routes the batch per the job's bad-record policy; the *RowError says
	// which row.
	ErrNullTimestamp = errors.New("eventtime: null timestamp")
	// ErrTimestampRange: a timestamp in seconds does not fit in int64
	// milliseconds.
	ErrTimestampRange = errors.New("eventtime: timestamp out of range")
	// ErrColumnType: a column has a type this package cannot read as event
	// time (timestamp of any unit, int64 ms, date64) or as watermark marks
	// (boolean).
	ErrColumnType = errors.New("eventtime: unsupported column type")
	// ErrColumnNotFound: a named column is absent from a batch's schema.
	ErrColumnNotFound = errors.New("eventtime: column not found")
	// ErrDuplicateSplit: Multiplexer.AddSplit was given an ID already
	// registered.
	ErrDuplicateSplit = errors.New("eventtime: duplicate split")
	// ErrUnknownSplit: Multiplexer.RemoveSplit was given an ID that is not
	// registered.
	ErrUnknownSplit = errors.New("eventtime: unknown split")
	// ErrInvalidStrategy: a Strategy failed Validate.
	ErrInvalidStrategy = errors.New("eventtime: invalid watermark strategy")
)

// RowError names the row of a batch whose event time could not be read.
// Err is ErrNullTimestamp or ErrTimestampRange.
type RowError struct {
	Row int
	Err error
}

func (e *RowError) Error() string { return fmt.Sprintf("%v at row %d", e.Err, e.Row) }

// Unwrap returns the sentinel.
func (e *RowError) Unwrap() error { return e.Err }

// panicf reports a broken invariant: a caller bug (an out-of-range input
// channel), never bad input data.
func panicf(format string, args ...any) {
	panic(fmt.Sprintf("eventtime: "+format, args...))
}

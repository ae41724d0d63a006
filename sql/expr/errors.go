package expr

import (
	"errors"
	"fmt"
)

// ErrNotBoolean is returned by [Expr.Select] for an expression whose type
// is not BOOLEAN.
var ErrNotBoolean = errors.New("expr: Select needs a BOOLEAN expression")

// Error is a syntax or type error in an expression.
type Error struct {
	// Src is the whole expression text.
	Src string
	// Offset is the byte offset in Src where the problem starts.
	Offset int
	// Msg says what is wrong and, where it helps, what was expected.
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("expr: at offset %d: %s", e.Offset, e.Msg)
}

// EvalError is a failure evaluating an expression on one row of a batch:
// integer division or modulo by zero, or a CAST of a value that does not
// convert. Row lets the caller route that record to a dead-letter output.
type EvalError struct {
	// Src is the whole expression text.
	Src string
	// Row is the index of the failing row in the batch.
	Row int
	// Offset is the byte offset in Src of the operator that failed.
	Offset int
	// Msg says what went wrong.
	Msg string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("expr: row %d: %s (at offset %d of %q)", e.Row, e.Msg, e.Offset, e.Src)
}

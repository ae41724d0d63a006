package expr

import "fmt"

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

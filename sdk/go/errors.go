package sabot

import "errors"

// Errors a handler may meet, for errors.Is. Each is wrapped with the detail
// (the state, output or address at fault).
var (
	// ErrInvalidFunction: a Function (or a state it declares) is not valid;
	// Serve, ServeListener, NewHandler and Function.Validate report it
	// before serving anything.
	ErrInvalidFunction = errors.New("sabot: invalid function")

	// ErrUndeclaredState: a handler used a state its function does not
	// list in Function.States.
	ErrUndeclaredState = errors.New("sabot: state not declared by the function")

	// ErrUndeclaredOutput: Context.Send named an output the function does
	// not list in Function.Outputs.
	ErrUndeclaredOutput = errors.New("sabot: output not declared by the function")

	// ErrInvalidAddress: an address is not "function/key" with a valid
	// function name.
	ErrInvalidAddress = errors.New("sabot: invalid address")

	// ErrNotInvoked: Context.Reply outside the handling of an invoked
	// message (a streamed or function-to-function message, or a timer):
	// nobody waits for a reply.
	ErrNotInvoked = errors.New("sabot: reply outside an invoked message")

	// ErrAlreadyReplied: Context.Reply a second time for the same message.
	ErrAlreadyReplied = errors.New("sabot: message already replied to")

	// ErrNoTimerHandler: a timer was set by (or fired for) a function
	// without OnTimer.
	ErrNoTimerHandler = errors.New("sabot: function has no OnTimer")

	// ErrStateRead: the worker could not serve a read of lazy state, or the
	// session ended before it answered.
	ErrStateRead = errors.New("sabot: state read failed")
)

package nexmark

import "errors"

// ErrInvalidConfig is wrapped by every error [Config.Validate] returns; the
// wrapping error names the offending field.
var ErrInvalidConfig = errors.New("nexmark: invalid config")

// ErrUnbounded is returned by the reference queries and [ForEachBid] when
// Config.NumEvents is 0: a single-threaded reference loop over an unbounded
// stream would never return.
var ErrUnbounded = errors.New("nexmark: reference loop needs a bounded stream (NumEvents > 0)")

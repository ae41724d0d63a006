package state

import "errors"

// ErrClosed is returned by a backend's methods after Close.
var ErrClosed = errors.New("state: backend closed")

// ErrKeyGroupOutOfRange is returned by SetCurrentKey and the key-group range
// methods when a key group lies outside the backend's KeyGroupRange: the
// record or timer was routed to the wrong subtask.
var ErrKeyGroupOutOfRange = errors.New("state: key group out of the backend's range")

// ErrStateConflict is returned when a state is registered twice under one
// operator with the same name but a different kind (value, list, map, ...).
var ErrStateConflict = errors.New("state: state registered again with a different kind")

// ErrInvalidDescriptor is returned for a descriptor that cannot be used: an
// empty or reserved name, a missing codec or function, a bad TTL.
var ErrInvalidDescriptor = errors.New("state: invalid state descriptor")

// ErrCorrupt is returned when stored bytes cannot be decoded: a stored key
// that does not follow the key layout, or a value shorter than its header.
var ErrCorrupt = errors.New("state: corrupt entry")

// ErrReentrant is returned when AdvanceWatermark or AdvanceProcessingTime
// is called from inside a timer callback.
var ErrReentrant = errors.New("state: timers advanced from inside a timer callback")

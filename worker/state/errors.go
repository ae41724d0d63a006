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
// that does not follow the key layout, a value shorter than its header, a
// snapshot object that breaks the canonical format, or a snapshot handle
// that does not match its objects (offsets, sizes, file names).
var ErrCorrupt = errors.New("state: corrupt entry")

// ErrReentrant is returned when AdvanceWatermark or AdvanceProcessingTime
// is called from inside a timer callback.
var ErrReentrant = errors.New("state: timers advanced from inside a timer callback")

// ErrRestoreAfterRegister is returned by RestoreFull and RestorePebbleInto
// when a state or timer service is already registered on the backend:
// restores load raw entries and must come first, so that no handle or
// in-memory timer index misses them.
var ErrRestoreAfterRegister = errors.New("state: restore into a backend with registered states")

// ErrReleased is returned by a snapshot's Upload after Release, or after
// the backend it reads (pebble) was closed.
var ErrReleased = errors.New("state: snapshot released")

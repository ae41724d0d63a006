// Package state is the keyed state, TTL and timers of the dataflow runtime
// (Flink's KeyedStateBackend, StateTtlConfig and InternalTimerService),
// plus the operator state of non-keyed operators.
//
// It owns: the two keyed backends (Heap, in memory; Pebble, a pebble DB in
// a directory the task owns), the key layout that makes every entry
// addressable by key group, the typed state handles (ValueState,
// ListState, MapState, ReducingState, AggregatingState) and their codecs,
// TTL, timer services, operator list and broadcast state, and the hooks
// snapshots build on (IterateKeyGroups, SnapshotKeyGroups,
// DeleteKeyGroups, Pebble.Checkpoint), and the keyed snapshots themselves:
// taking, uploading and restoring them (canonical full snapshots, pebble
// incremental checkpoints). It does not own the checkpoint protocol
// (barriers, _metadata, which handles a subtask restores), or the
// redistribution of operator state on rescale.
//
// # Ownership and concurrency
//
// One backend per task (one subtask of one operator chain). The chained
// operators share it: each gets a Keyed from NewKeyed(backend, operatorID),
// and the operator id is part of every key, so operators never see each
// other's state. A backend, its Keyed contexts, handles and timer services
// are used from the task's goroutine only; nothing on the hot path locks.
//
//	b, _ := state.OpenPebble(dir, state.Config{KeyGroups: r, Clock: clk})
//	k, _ := state.NewKeyed(b, "window-1")
//	sum, _ := state.Reducing(k, state.ReducingDescriptor[int64]{
//		Name: "sum", Codec: state.Int64Codec{}, Reduce: func(a, b int64) int64 { return a + b }})
//	timers, _ := k.TimerService("window")
//	// per record:
//	k.SetCurrentKey(keyBytes, keyGroup)
//	k.SetCurrentNamespace(windowBytes)
//	sum.Add(v)
//	timers.RegisterEventTimeTimer(windowEnd)
//	// per watermark:
//	timers.AdvanceWatermark(wm, func(t state.Timer) error { s, _, err := sum.Get(); ...; return sum.Clear() })
//
// # Key layout
//
//	key group (uint16 big-endian) | uvarint len + operator id | uvarint len + state name
//	| uvarint len + key | uvarint len + namespace | column
//
// The column is the encoded user key of a map entry, the timestamp of a
// timer, and empty otherwise. Length prefixes make every part prefix-free,
// so the entries of a key-group range [a, b) are exactly the byte range
// [a, b) of 2-byte prefixes (pebble cuts it out with one DeleteRange), the
// entries of one (key, namespace) of a map are contiguous, and byte order
// equals tuple order. The heap backend stores the same bytes per key group
// and iterates them sorted, so IterateKeyGroups yields the same entries in
// the same order on both backends: one savepoint format for both.
//
// Values are stored encoded on both backends (the heap does not keep
// decoded objects): one code path, identical snapshots, and a decode per
// read, which costs nanoseconds with the fixed-size codecs.
//
// # TTL
//
// TTLConfig follows Flink's StateTtlConfig, in processing time from
// Config.Clock, milliseconds. Each value, list element and map entry
// carries its last-access timestamp (an 8-byte header); it is expired once
// now ≥ timestamp + TTL. Writes always refresh it, reads too with
// OnReadAndWrite. NeverReturnExpired hides expired entries;
// ReturnExpiredIfNotCleanedUp returns them until a cleanup removed them.
// Reducing and aggregating adds treat an expired value as absent. Cleanup
// is opt-in per mode (Flink always cleans on read): CleanupOnRead deletes
// what a read finds expired; CleanupFullSnapshot leaves expired entries out
// of SnapshotKeyGroups; CleanupIncremental checks N entries of the state
// after each access; Backend.CleanupStep(n) sweeps any state with a TTL
// from a cursor (the pebble stand-in for a compaction filter; call it from
// a processing-time timer).
//
// # Timers
//
// A TimerService holds event-time and processing-time timers per (key,
// namespace, timestamp): registering twice gives one timer, deleting an
// absent one is a no-op. AdvanceWatermark(wm, fn) fires every event-time
// timer with timestamp ≤ wm in timestamp order, setting the Keyed's
// current key and namespace before each callback, and removing the timer
// first; timers the callback registers at or before wm fire in the same
// call (Flink). AdvanceProcessingTime does the same for processing time;
// NextProcessingTime tells the runtime when to wake up. Timers with the
// same timestamp fire in the order of their stored keys (key group, then
// the length-prefixed key, then namespace), whatever the order they were
// registered in, so firing is deterministic and the same before and after
// a restore. Timers are stored as entries of a reserved table (so they are
// in their key's key group and in every snapshot) and indexed in memory
// by timestamp: a min-heap of distinct timestamps, each with a bucket of
// its timers (window operators put one timer per key at a window end);
// on the heap backend that index is the table itself. Creating a service
// on pebble loads the stored timers.
//
// # Snapshots and restore
//
// Two formats. The canonical one (FullSnapshot, canonical.go) is one
// object of entries sorted by key group, with per-key-group offsets in
// its handle: every savepoint, whichever backend, and the heap's
// checkpoints. It is byte-identical from both backends and restores into
// either. Pebble checkpoints are incremental (PebbleSnapshot): the files
// of a pebble checkpoint, SSTs shared between checkpoints by name.
//
// Taking is synchronous, in the task goroutine, at the barrier; uploading
// runs in another goroutine while the task goes on:
//
//	// task goroutine, barrier n:
//	full, _ := state.TakeFullSnapshot(b, b.KeyGroups()) // heap: copies the state; pebble: O(1)
//	inc, _ := p.TakeSnapshot(filepath.Join(tmp, "chk-n")) // pebble: flush + hard links
//	// uploader goroutine:
//	h, err := full.Upload(ctx, store, key)
//	ph, uploaded, err := inc.Upload(ctx, store, privatePrefix, sharedKey, reuse)
//	full.Release(); inc.Release()
//
// Release every snapshot after its Upload returned (or on abort). Closing
// a pebble backend releases its full snapshots (a running Upload then
// fails with ErrReleased); a PebbleSnapshot is files and survives it. A
// FullSnapshot's lock is taken per 64 KiB of encoding, never while
// Pebble's is held.
//
// Restore happens before any state or timer service is registered on the
// backend (else ErrRestoreAfterRegister): RestoreFull once per canonical
// handle overlapping the subtask's key groups (each reads only its
// groups' bytes); for pebble, OpenPebbleRestored with the handle of the
// largest overlap (download, open, cut to the range) and
// RestorePebbleInto for any other. Restored entries keep their bytes
// (TTL timestamps included); timers come back as timers. On the heap,
// restored entries wait in per-table stores until their state is
// registered, and are iterated and snapshotted meanwhile; a state's kind
// is not stored, so it must be registered as the kind it was written as.
// A failed restore leaves the backend partly filled: discard it.
//
// Pebble reuse rules (snapshot_pebble.go): reuse maps only from this DB's
// own uploads or the handle it was restored from, and shared keys unique
// to the DB instance.
//
// # Deferred
//
//   - The checkpoint protocol; the heap's copy-on-write (Heap documents
//     the plan: TakeFullSnapshot copies the whole state today).
//   - Ranged reads of canonical objects (the store verifies whole
//     objects, so a sub-range restore streams the object and decodes its
//     part), and compaction after a restore's key-group cut.
//   - Redistributing operator state (OperatorStore documents the rules).
//   - Timer indexes are in memory (O(timers)); on pebble a timer service
//     does not see DeleteKeyGroups done after it was created.
//   - State schema evolution and serializer snapshots.
package state

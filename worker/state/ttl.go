package state

import (
	"encoding/binary"
	"fmt"
	"time"
)

// TTLUpdate says which accesses refresh an entry's last-access timestamp
// (Flink's StateTtlConfig.UpdateType).
type TTLUpdate uint8

const (
	// OnCreateAndWrite refreshes on writes only (the default).
	OnCreateAndWrite TTLUpdate = iota
	// OnReadAndWrite refreshes on reads too.
	OnReadAndWrite
)

// TTLVisibility says whether an expired entry not yet cleaned up may be
// returned (Flink's StateTtlConfig.StateVisibility).
type TTLVisibility uint8

const (
	// NeverReturnExpired hides expired entries (the default).
	NeverReturnExpired TTLVisibility = iota
	// ReturnExpiredIfNotCleanedUp returns an expired entry until a cleanup
	// removed it.
	ReturnExpiredIfNotCleanedUp
)

// TTLConfig is a state's time-to-live (Flink's StateTtlConfig). The zero
// value disables TTL. Time is processing time from the backend's clock, in
// milliseconds: an entry written at t expires at t+TTL (it is expired when
// now ≥ t+TTL). For list and map states TTL applies per element and per
// map entry.
//
// Cleanup is explicit here: with no cleanup set, an expired entry stays in
// the backend until it is overwritten or cleared (NeverReturnExpired still
// hides it). Flink always cleans up on read; set CleanupOnRead for that.
type TTLConfig struct {
	// TTL is the time to live, at least a millisecond; 0 disables TTL.
	TTL time.Duration
	// Update is which accesses refresh the timestamp. Default
	// OnCreateAndWrite.
	Update TTLUpdate
	// Visibility of expired, not yet cleaned-up entries. Default
	// NeverReturnExpired.
	Visibility TTLVisibility
	// CleanupOnRead deletes an expired entry (list element, map entry) when
	// a read finds it.
	CleanupOnRead bool
	// CleanupFullSnapshot leaves expired entries out of SnapshotKeyGroups.
	CleanupFullSnapshot bool
	// CleanupIncremental, if positive, checks that many entries of the state
	// for expiry after every access to it (Flink's incremental cleanup);
	// Backend.CleanupStep sweeps regardless of this setting. On pebble each
	// check opens an iterator: prefer CleanupStep from a timer there.
	CleanupIncremental int
}

// ttlParams is a validated TTLConfig; ms == 0 means no TTL.
type ttlParams struct {
	ms           int64
	update       TTLUpdate
	visibility   TTLVisibility
	onRead       bool
	fullSnapshot bool
	incremental  int
}

func (c TTLConfig) params() (ttlParams, error) {
	switch {
	case c.TTL < 0 || (c.TTL > 0 && c.TTL < time.Millisecond):
		return ttlParams{}, fmt.Errorf("%w: ttl %v must be 0 (off) or at least 1ms", ErrInvalidDescriptor, c.TTL)
	case c.Update > OnReadAndWrite:
		return ttlParams{}, fmt.Errorf("%w: ttl update type %d", ErrInvalidDescriptor, c.Update)
	case c.Visibility > ReturnExpiredIfNotCleanedUp:
		return ttlParams{}, fmt.Errorf("%w: ttl visibility %d", ErrInvalidDescriptor, c.Visibility)
	case c.CleanupIncremental < 0:
		return ttlParams{}, fmt.Errorf("%w: negative incremental cleanup size %d", ErrInvalidDescriptor, c.CleanupIncremental)
	}
	return ttlParams{
		ms:           c.TTL.Milliseconds(),
		update:       c.Update,
		visibility:   c.Visibility,
		onRead:       c.CleanupOnRead,
		fullSnapshot: c.CleanupFullSnapshot,
		incremental:  c.CleanupIncremental,
	}, nil
}

// Stored value formats with TTL (without TTL there is no header):
//
//	value, reducing, aggregating, map entry: ts (8 bytes BE, last access ms) | payload
//	list: elements, each uvarint(len(body)) | body, body = ts | payload
//
// The list format concatenates, so an append is a pebble merge (pebble's
// default concatenating merger) and a slice append on the heap.

const tsLen = 8

func (p *ttlParams) expired(ts, now int64) bool { return ts+p.ms <= now }

// appendHeader appends the TTL header for now (nothing without TTL).
func (p *ttlParams) appendHeader(dst []byte, now int64) []byte {
	if p.ms == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(dst, uint64(now))
}

// splitHeader splits a stored single value into its timestamp and payload.
func (p *ttlParams) splitHeader(stored []byte) (ts int64, payload []byte, err error) {
	if p.ms == 0 {
		return 0, stored, nil
	}
	if len(stored) < tsLen {
		return 0, nil, fmt.Errorf("%w: value of %d bytes has no ttl header", ErrCorrupt, len(stored))
	}
	return int64(binary.BigEndian.Uint64(stored)), stored[tsLen:], nil
}

// nextElem reads one list element: its timestamp (0 without TTL), payload
// and the rest of the list.
func (p *ttlParams) nextElem(list []byte) (ts int64, payload, rest []byte, err error) {
	body, rest, err := readPart(list)
	if err != nil {
		return 0, nil, nil, err
	}
	ts, payload, err = p.splitHeader(body)
	return ts, payload, rest, err
}

// filter applies TTL to one stored entry of the spec: keep it, remove it,
// or (lists with some expired elements) replace it by out, appended to dst.
// Corrupt entries are kept: a filter is no place to lose data.
func (s *tableSpec) filter(val []byte, now int64, dst []byte) ([]byte, action) {
	p := &s.ttl
	if p.ms == 0 {
		return nil, keep
	}
	switch s.kind {
	case kindList:
		expired, total := 0, 0
		for rest := val; len(rest) > 0; total++ {
			ts, _, r, err := p.nextElem(rest)
			if err != nil {
				return nil, keep
			}
			if p.expired(ts, now) {
				expired++
			}
			rest = r
		}
		switch expired {
		case 0:
			return nil, keep
		case total:
			return nil, remove
		}
		for rest := val; len(rest) > 0; {
			body, r, _ := readPart(rest)
			if ts := int64(binary.BigEndian.Uint64(body)); !p.expired(ts, now) {
				dst = appendPart(dst, body)
			}
			rest = r
		}
		return dst, replace
	case kindTimer:
		return nil, keep
	default:
		if len(val) < tsLen {
			return nil, keep
		}
		if p.expired(int64(binary.BigEndian.Uint64(val)), now) {
			return nil, remove
		}
		return nil, keep
	}
}

// sweeper is filter bound to now, for incremental cleanup.
func (s *tableSpec) sweeper(now int64) sweepFunc {
	return func(val []byte) ([]byte, action) { return s.filter(val, now, nil) }
}

package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// Keyed operators (keyed_aggregate, process) read one hash edge. Each
// subtask owns the key groups [TaskInfo.KeyGroupStart, KeyGroupEnd] and
// one state backend for them, opened in Open and closed in Close. Per
// input row it computes the key group exactly as the sending hash
// partitioner did (HashKeys, KeyGroup over the edge's key columns), checks
// that the row belongs here, and encodes the key bytes that keyed state is
// scoped by.
//
// Key bytes, per key column in order: 0x00 for null, else 0x01 followed by
//
//   - signed integers, timestamps, dates, times, durations: the value
//     widened to int64, 8 bytes big-endian with the sign bit flipped (byte
//     order is numeric order);
//   - unsigned integers: widened to uint64, 8 bytes big-endian;
//   - floats: widened to float64, IEEE-754 bits big-endian, -0 as 0 (as the
//     hash);
//   - booleans: one byte, 0 or 1;
//   - strings and binaries: uvarint length, then the bytes.
//
// The encoding is decodable (Key), prefix-free per column and, like the
// hash, part of the savepoint format once savepoints exist.

// keyKind is how one key column is encoded.
type keyKind uint8

const (
	keyInt keyKind = iota + 1
	keyUint
	keyFloat
	keyBool
	keyBytes  // binary
	keyString // utf8: encoded as keyBytes, rendered as text
)

func keyKindOf(t arrow.DataType) (keyKind, error) {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.DURATION:
		return keyInt, nil
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return keyUint, nil
	case arrow.FLOAT32, arrow.FLOAT64:
		return keyFloat, nil
	case arrow.BOOL:
		return keyBool, nil
	case arrow.STRING, arrow.LARGE_STRING:
		return keyString, nil
	case arrow.BINARY, arrow.LARGE_BINARY:
		return keyBytes, nil
	default:
		return 0, fmt.Errorf("runtime: cannot key by a column of type %s", t)
	}
}

// keySelector computes, per row of a batch, the key group and key bytes of
// a keyed operator's input. Its buffers are reused from batch to batch.
type keySelector struct {
	keys   []int
	kinds  []keyKind
	fields []arrow.Field
	maxP   int
	lo, hi int // key groups owned, inclusive

	hashes []uint32
	buf    []byte // key bytes of every row, back to back
	ends   []int  // end of row i's key in buf
}

func newKeySelector(v *jobgraph.Vertex, info TaskInfo, maxP int) (*keySelector, error) {
	if len(v.Inputs) != 1 || v.Inputs[0].Partitioning != sabotv1.Partitioning_PARTITIONING_HASH || len(v.Inputs[0].KeyIndices) == 0 {
		return nil, errors.New("runtime: a keyed operator needs exactly one input, partitioned by hash on the key")
	}
	s := &keySelector{keys: v.Inputs[0].KeyIndices, maxP: maxP, lo: info.KeyGroupStart, hi: info.KeyGroupEnd}
	for _, k := range s.keys {
		f := v.InputSchema.Field(k)
		kind, err := keyKindOf(f.Type)
		if err != nil {
			return nil, fmt.Errorf("key column %q: %w", f.Name, err)
		}
		s.kinds = append(s.kinds, kind)
		s.fields = append(s.fields, f)
	}
	return s, nil
}

// prepare computes the key groups and key bytes of rec's rows. A row whose
// key group this subtask does not own means routing and state disagree: it
// fails with state.ErrKeyGroupOutOfRange.
func (s *keySelector) prepare(rec arrow.RecordBatch) error {
	n := int(rec.NumRows())
	if cap(s.hashes) < n {
		s.hashes = make([]uint32, n)
		s.ends = make([]int, n)
	}
	s.hashes, s.ends = s.hashes[:n], s.ends[:n]
	if err := HashKeys(rec, s.keys, s.hashes); err != nil {
		return err
	}
	for i, h := range s.hashes {
		kg := KeyGroup(h, s.maxP)
		if kg < s.lo || kg > s.hi {
			return fmt.Errorf("%w: row %d has key group %d, this subtask owns [%d, %d]", state.ErrKeyGroupOutOfRange, i, kg, s.lo, s.hi)
		}
		s.hashes[i] = uint32(kg) // reused as the key group from here on
	}
	b := s.buf[:0]
	for i := range n {
		for c, k := range s.keys {
			b = appendKeyValue(b, rec.Column(k), s.kinds[c], i)
		}
		s.ends[i] = len(b)
	}
	s.buf = b
	return nil
}

// key returns row i's key bytes, valid until the next prepare.
func (s *keySelector) key(i int) []byte {
	start := 0
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]]
}

// group returns row i's key group.
func (s *keySelector) group(i int) uint16 { return uint16(s.hashes[i]) }

// appendKeyValue appends the key encoding of col[i].
func appendKeyValue(b []byte, col arrow.Array, kind keyKind, i int) []byte {
	if col.IsNull(i) {
		return append(b, 0)
	}
	b = append(b, 1)
	switch kind {
	case keyInt:
		return binary.BigEndian.AppendUint64(b, uint64(intValue(col, i))^(1<<63))
	case keyUint:
		return binary.BigEndian.AppendUint64(b, uintValue(col, i))
	case keyFloat:
		return binary.BigEndian.AppendUint64(b, floatBits(floatValue(col, i)))
	case keyBool:
		if col.(*array.Boolean).Value(i) {
			return append(b, 1)
		}
		return append(b, 0)
	default: // keyBytes, keyString
		v := bytesValue(col, i)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
}

// intValue reads a signed integer or temporal column's value widened to
// int64 (raw, in the column's unit). It returns 0 for other types.
func intValue(col arrow.Array, i int) int64 {
	switch a := col.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int64(a.Value(i))
	case *array.Date64:
		return int64(a.Value(i))
	case *array.Time32:
		return int64(a.Value(i))
	case *array.Time64:
		return int64(a.Value(i))
	case *array.Duration:
		return int64(a.Value(i))
	case *array.Uint64, *array.Uint32, *array.Uint16, *array.Uint8:
		return int64(uintValue(col, i)) // wraps above MaxInt64, as sql/expr
	default:
		return 0
	}
}

func uintValue(col arrow.Array, i int) uint64 {
	switch a := col.(type) {
	case *array.Uint64:
		return a.Value(i)
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint8:
		return uint64(a.Value(i))
	default:
		return 0
	}
}

func floatValue(col arrow.Array, i int) float64 {
	switch a := col.(type) {
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	default:
		return float64(intValue(col, i))
	}
}

// bytesValue views a string or binary value without copying.
func bytesValue(col arrow.Array, i int) []byte {
	switch a := col.(type) {
	case *array.String:
		return unsafeBytes(a.Value(i))
	case *array.LargeString:
		return unsafeBytes(a.Value(i))
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	default:
		return nil
	}
}

// unsafeBytes views s's bytes without copying; they must not be modified.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Key is the current key of a keyed operator, decoded from its key bytes
// (see keyed.go for the encoding): one value per key column of the input
// edge, in key_fields order. It is a view, valid until the current key
// changes (the next row or timer); copy what you keep.
type Key struct {
	b     []byte
	kinds []keyKind
}

// Bytes returns the encoded key, as keyed state stores it.
func (k Key) Bytes() []byte { return k.b }

// NumColumns is the number of key columns.
func (k Key) NumColumns() int { return len(k.kinds) }

// part returns the encoded value of key column i (without the null
// marker) and whether it is non-null.
func (k Key) part(i int) ([]byte, bool) {
	b := k.b
	for c := 0; c < len(k.kinds) && len(b) > 0; c++ {
		null := b[0] == 0
		b = b[1:]
		var v []byte
		if !null {
			switch k.kinds[c] {
			case keyInt, keyUint, keyFloat:
				if len(b) < 8 {
					return nil, false
				}
				v, b = b[:8], b[8:]
			case keyBool:
				if len(b) < 1 {
					return nil, false
				}
				v, b = b[:1], b[1:]
			default:
				n, w := binary.Uvarint(b)
				if w <= 0 || uint64(len(b)-w) < n {
					return nil, false
				}
				v, b = b[w:w+int(n)], b[w+int(n):]
			}
		}
		if c == i {
			return v, !null
		}
	}
	return nil, false
}

// IsNull reports whether key column i is null.
func (k Key) IsNull(i int) bool {
	_, ok := k.part(i)
	return !ok
}

// Int64 returns key column i as an int64: signed integers and temporal
// types in their unit, unsigned integers wrapping above MaxInt64, floats
// truncated, booleans as 0 or 1; 0 for null, strings and binaries.
func (k Key) Int64(i int) int64 {
	v, ok := k.part(i)
	if !ok {
		return 0
	}
	switch k.kinds[i] {
	case keyInt:
		return int64(binary.BigEndian.Uint64(v) ^ (1 << 63))
	case keyUint:
		return int64(binary.BigEndian.Uint64(v))
	case keyFloat:
		return int64(math.Float64frombits(binary.BigEndian.Uint64(v)))
	case keyBool:
		return int64(v[0])
	default:
		return 0
	}
}

// Float64 returns key column i as a float64 (numbers converted); 0 for
// null, strings and binaries.
func (k Key) Float64(i int) float64 {
	v, ok := k.part(i)
	if !ok {
		return 0
	}
	switch k.kinds[i] {
	case keyFloat:
		return math.Float64frombits(binary.BigEndian.Uint64(v))
	case keyUint:
		return float64(binary.BigEndian.Uint64(v))
	default:
		return float64(k.Int64(i))
	}
}

// Bool returns key column i as a boolean (non-zero numbers are true).
func (k Key) Bool(i int) bool { return k.Int64(i) != 0 }

// BytesAt returns the bytes of string or binary key column i, without
// copying; nil for null and other types.
func (k Key) BytesAt(i int) []byte {
	if k.kinds[i] != keyBytes && k.kinds[i] != keyString {
		return nil
	}
	v, _ := k.part(i)
	return v
}

// String renders the key as text: each column as its value (integers in
// decimal, floats in the shortest form that round-trips, booleans as
// true/false, strings as they are, binaries as hex), null as "null",
// columns joined by ",". A single string key column renders as its string.
func (k Key) String() string {
	var b []byte
	for i, kind := range k.kinds {
		if i > 0 {
			b = append(b, ',')
		}
		v, ok := k.part(i)
		if !ok {
			b = append(b, "null"...)
			continue
		}
		switch kind {
		case keyInt:
			b = strconv.AppendInt(b, k.Int64(i), 10)
		case keyUint:
			b = strconv.AppendUint(b, binary.BigEndian.Uint64(v), 10)
		case keyFloat:
			b = strconv.AppendFloat(b, k.Float64(i), 'g', -1, 64)
		case keyBool:
			b = strconv.AppendBool(b, v[0] != 0)
		case keyString:
			b = append(b, v...)
		default:
			b = fmt.Appendf(b, "%x", v)
		}
	}
	return string(b)
}

// keyedState is the state backend of one keyed operator's subtask.
type keyedState struct {
	operatorID string
	kind       sabotv1.StateBackend
	dir        string // pebble only
	cfg        state.Config

	backend state.Backend
	keyed   *state.Keyed

	// Checkpoints (nil cp: none).
	cp       *checkpointing
	subtask  int
	instance string // names this DB lineage's shared files
	mu       keyedCheckpointState
}

func newKeyedState(v *jobgraph.Vertex, info TaskInfo, e *env) *keyedState {
	k := &keyedState{
		operatorID: v.ID,
		kind:       e.stateBackend,
		cp:         e.cp,
		subtask:    info.Subtask,
		instance:   newInstanceID(),
		cfg: state.Config{
			KeyGroups: state.KeyGroupRange{Start: uint16(info.KeyGroupStart), End: uint16(info.KeyGroupEnd + 1)},
			Clock:     e.clock,
			Logger:    e.logger,
		},
	}
	if k.kind == sabotv1.StateBackend_STATE_BACKEND_PEBBLE {
		k.dir = filepath.Join(e.stateDir, pathPart(info.JobID, "job"), "attempt-"+strconv.FormatInt(info.Attempt, 10),
			pathPart(info.VertexID, "vertex"), "subtask-"+strconv.Itoa(info.Subtask))
	}
	return k
}

// open creates the backend, empty or restored from the attempt's
// checkpoint (whatever an earlier run left in a pebble directory is stale:
// state comes back only from checkpoints).
func (k *keyedState) open(ctx context.Context) error {
	var err error
	switch k.kind {
	case sabotv1.StateBackend_STATE_BACKEND_PEBBLE:
		if err := os.RemoveAll(k.dir); err != nil {
			return fmt.Errorf("runtime: clear state directory: %w", err)
		}
		if err := os.MkdirAll(k.dir, 0o750); err != nil {
			return fmt.Errorf("runtime: create state directory: %w", err)
		}
		k.backend, err = state.OpenPebble(k.dir, k.cfg)
	default: // UNSPECIFIED and HEAP
		k.backend, err = state.NewHeap(k.cfg)
	}
	if err != nil {
		return err
	}
	k.mu.uploaded = map[int64]*clusterv1.PebbleStateHandle{}
	if k.cp != nil {
		if err := k.restoreKeyed(ctx); err != nil {
			return fmt.Errorf("runtime: restore state of %s[%d]: %w", k.operatorID, k.subtask, err)
		}
	}
	k.keyed, err = state.NewKeyed(k.backend, k.operatorID)
	return err
}

// cleanupPerBatch is how many state entries with a TTL a keyed operator
// checks for expiry per input batch (Flink's incremental cleanup, which
// checks a few entries per state access): expired state goes away in the
// background even for keys never read again.
const cleanupPerBatch = 256

// cleanup runs one incremental TTL cleanup step.
func (k *keyedState) cleanup() error {
	_, err := k.backend.CleanupStep(cleanupPerBatch)
	return err
}

// close closes the backend and, for pebble, removes its directory (state
// outlives its task only through checkpoints). It is
// idempotent and tolerates a failed open.
func (k *keyedState) close() error {
	var err error
	if k.backend != nil {
		err = k.backend.Close()
		k.backend = nil
	}
	if k.dir != "" {
		if rerr := os.RemoveAll(k.dir); rerr != nil && err == nil {
			err = fmt.Errorf("runtime: remove state directory: %w", rerr)
		}
		// k.dir+".chk" holds pebble checkpoints whose upload may still be
		// running: each upload removes its own, and Run removes what is
		// left once every upload returned.
	}
	return err
}

// pathPart makes s safe as one path element: characters other than
// letters, digits, '.', '-' and '_' become '_'; empty becomes def.
func pathPart(s, def string) string {
	if s == "" {
		return def
	}
	s = strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, s)
	if strings.Trim(s, ".") == "" {
		return "_" + s
	}
	return s
}

// isKeyed reports whether v runs a keyed operator (and so has state).
func isKeyed(v *jobgraph.Vertex) bool {
	switch v.Operator.GetKind().(type) {
	case *sabotv1.Operator_KeyedAggregate, *sabotv1.Operator_Process, *sabotv1.Operator_Window:
		return true
	default:
		return false
	}
}

// prepareStateDir returns the directory pebble backends live under and a
// cleanup to run when Run returns: Config.StateDir as given (cleanup does
// nothing; each subtask removes its own directory on close), or, when the
// job needs one, a fresh temporary directory removed by cleanup.
func prepareStateDir(cfg Config) (string, func(), error) {
	if cfg.StateDir != "" || cfg.Graph.Spec.GetStateBackend() != sabotv1.StateBackend_STATE_BACKEND_PEBBLE {
		return cfg.StateDir, func() {}, nil
	}
	needed := false
	for _, v := range cfg.Graph.Vertices {
		needed = needed || isKeyed(v)
	}
	if !needed {
		return "", func() {}, nil
	}
	dir, err := os.MkdirTemp("", "sabot-state-")
	if err != nil {
		return "", nil, fmt.Errorf("runtime: create state directory: %w", err)
	}
	return dir, func() {
		if err := os.RemoveAll(dir); err != nil {
			cfg.Logger.Warn("runtime: remove state directory", "dir", dir, "err", err)
		}
	}, nil
}

// nowMillis is the clock's time in milliseconds since the epoch.
func nowMillis(c clockwork.Clock) int64 { return c.Now().UnixMilli() }

package kafka

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// kind is how a column's values are parsed and appended.
type kind uint8

const (
	kInt8 kind = iota + 1
	kInt16
	kInt32
	kInt64
	kUint8
	kUint16
	kUint32
	kUint64
	kFloat32
	kFloat64
	kBool
	kString
	kLargeString
	kBinary
	kLargeBinary
	kTimestamp
	kDate32
)

// kindOf maps a supported arrow type to its kind.
func kindOf(t arrow.DataType) (kind, bool) {
	switch t.ID() {
	case arrow.INT8:
		return kInt8, true
	case arrow.INT16:
		return kInt16, true
	case arrow.INT32:
		return kInt32, true
	case arrow.INT64:
		return kInt64, true
	case arrow.UINT8:
		return kUint8, true
	case arrow.UINT16:
		return kUint16, true
	case arrow.UINT32:
		return kUint32, true
	case arrow.UINT64:
		return kUint64, true
	case arrow.FLOAT32:
		return kFloat32, true
	case arrow.FLOAT64:
		return kFloat64, true
	case arrow.BOOL:
		return kBool, true
	case arrow.STRING:
		return kString, true
	case arrow.LARGE_STRING:
		return kLargeString, true
	case arrow.BINARY:
		return kBinary, true
	case arrow.LARGE_BINARY:
		return kLargeBinary, true
	case arrow.TIMESTAMP:
		return kTimestamp, true
	case arrow.DATE32:
		return kDate32, true
	default:
		return 0, false
	}
}

// column is one user column of a decoder: its parsing kind and builder.
type column struct {
	name string
	kind kind
	unit arrow.TimeUnit // for kTimestamp
	b    array.Builder
}

// slot stages one column's value for the row being decoded, so that a
// malformed record leaves the builders untouched (a row is appended
// whole or not at all).
type slot struct {
	state uint8 // slotMissing, slotNull or slotValue
	i     int64 // signed ints, timestamps (in the column's unit), date32 days
	u     uint64
	f     float64
	b     bool
	bs    []byte // strings and binaries: into the record value or the scratch buffer
}

const (
	slotMissing uint8 = iota
	slotNull
	slotValue
)

// decoder turns record values into rows of the user columns. It is owned
// by one Source and reused for every record: per record it allocates
// nothing for the common types (strings are copied into the builders
// straight from the record value unless they hold escapes).
type decoder struct {
	format  Format
	cols    []column
	slots   []slot
	index   map[string]int // JSON field name → column
	scratch []byte         // unescaped strings and decoded base64 of the current row
	keyBuf  []byte         // unescaped JSON key
	fields  [][]byte       // CSV fields of the current row
	quoted  []bool
	sc      jsonScanner
}

func newDecoder(format Format, schema *arrow.Schema, builders []array.Builder) *decoder {
	d := &decoder{format: format}
	if format == FormatRaw {
		return d
	}
	d.cols = make([]column, schema.NumFields())
	d.slots = make([]slot, schema.NumFields())
	d.index = make(map[string]int, schema.NumFields())
	for i, f := range schema.Fields() {
		k, _ := kindOf(f.Type) // validated
		c := column{name: f.Name, kind: k, b: builders[i]}
		if ts, ok := f.Type.(*arrow.TimestampType); ok {
			c.unit = ts.Unit
		}
		d.cols[i] = c
		if _, dup := d.index[f.Name]; !dup {
			d.index[f.Name] = i
		}
	}
	return d
}

// stage parses value into d.slots. On error the builders are untouched.
func (d *decoder) stage(value []byte) error {
	for i := range d.slots {
		d.slots[i] = slot{}
	}
	d.scratch = d.scratch[:0]
	switch d.format {
	case FormatJSON:
		return d.stageJSON(value)
	case FormatCSV:
		return d.stageCSV(value)
	case FormatRaw:
		return nil
	default:
		panic("kafka: decoder for unknown format " + d.format.String())
	}
}

// commit appends the staged row to the builders.
func (d *decoder) commit() {
	for i := range d.cols {
		c, s := &d.cols[i], &d.slots[i]
		if s.state != slotValue {
			c.b.AppendNull()
			continue
		}
		switch c.kind {
		case kInt8:
			c.b.(*array.Int8Builder).Append(int8(s.i))
		case kInt16:
			c.b.(*array.Int16Builder).Append(int16(s.i))
		case kInt32:
			c.b.(*array.Int32Builder).Append(int32(s.i))
		case kInt64:
			c.b.(*array.Int64Builder).Append(s.i)
		case kUint8:
			c.b.(*array.Uint8Builder).Append(uint8(s.u))
		case kUint16:
			c.b.(*array.Uint16Builder).Append(uint16(s.u))
		case kUint32:
			c.b.(*array.Uint32Builder).Append(uint32(s.u))
		case kUint64:
			c.b.(*array.Uint64Builder).Append(s.u)
		case kFloat32:
			c.b.(*array.Float32Builder).Append(float32(s.f))
		case kFloat64:
			c.b.(*array.Float64Builder).Append(s.f)
		case kBool:
			c.b.(*array.BooleanBuilder).Append(s.b)
		case kString:
			c.b.(*array.StringBuilder).BinaryBuilder.Append(s.bs)
		case kLargeString:
			c.b.(*array.LargeStringBuilder).BinaryBuilder.Append(s.bs)
		case kBinary, kLargeBinary:
			c.b.(*array.BinaryBuilder).Append(s.bs)
		case kTimestamp:
			c.b.(*array.TimestampBuilder).Append(arrow.Timestamp(s.i))
		case kDate32:
			c.b.(*array.Date32Builder).Append(arrow.Date32(s.i))
		default:
			panic("kafka: commit of unknown kind")
		}
	}
}

// eventTimeMillis is the staged value of column i (a timestamp or int64
// column) in milliseconds.
func (d *decoder) eventTimeMillis(i int) (int64, error) {
	c, s := &d.cols[i], &d.slots[i]
	if s.state != slotValue {
		return 0, malformedf("event-time field %q is null or missing", c.name)
	}
	if c.kind != kTimestamp {
		return s.i, nil
	}
	switch c.unit {
	case arrow.Second:
		return s.i * 1000, nil
	case arrow.Millisecond:
		return s.i, nil
	case arrow.Microsecond:
		return s.i / 1000, nil
	case arrow.Nanosecond:
		return s.i / 1_000_000, nil
	default:
		return s.i, nil
	}
}

// stageJSON parses one JSON object.
func (d *decoder) stageJSON(value []byte) error {
	sc := &d.sc
	sc.reset(value)
	sc.ws()
	if !sc.consume('{') {
		return malformedf("not a JSON object: %s", sc.near())
	}
	sc.ws()
	if sc.consume('}') {
		return sc.end()
	}
	for {
		sc.ws()
		if sc.peek() != '"' {
			return malformedf("expected a field name at byte %d: %s", sc.pos, sc.near())
		}
		key, err := sc.str(&d.keyBuf, true)
		if err != nil {
			return err
		}
		sc.ws()
		if !sc.consume(':') {
			return malformedf("expected ':' after field %q", key)
		}
		sc.ws()
		if i, ok := d.index[string(key)]; ok {
			if err := d.jsonValue(i); err != nil {
				return err
			}
		} else if err := sc.skip(0); err != nil {
			return err
		}
		sc.ws()
		if sc.consume(',') {
			continue
		}
		if sc.consume('}') {
			return sc.end()
		}
		return malformedf("expected ',' or '}' at byte %d: %s", sc.pos, sc.near())
	}
}

// jsonValue parses the value at the scanner into slot i.
func (d *decoder) jsonValue(i int) error {
	sc, c, s := &d.sc, &d.cols[i], &d.slots[i]
	switch sc.peek() {
	case 'n':
		if err := sc.literal("null"); err != nil {
			return err
		}
		s.state = slotNull
		return nil
	case '"':
		v, err := sc.str(&d.scratch, false)
		if err != nil {
			return err
		}
		switch c.kind {
		case kString, kLargeString:
			s.bs = v
		case kBinary, kLargeBinary:
			start := len(d.scratch)
			out, err := base64.StdEncoding.AppendDecode(d.scratch, v)
			if err != nil {
				return malformedf("field %q: invalid base64: %v", c.name, err)
			}
			d.scratch = out
			s.bs = out[start:]
		case kTimestamp, kDate32:
			if err := parseTime(c, s, v); err != nil {
				return err
			}
		default:
			return malformedf("field %q: expected %v, got a string", c.name, kindName(c.kind))
		}
		s.state = slotValue
		return nil
	case 't', 'f':
		if c.kind != kBool {
			return malformedf("field %q: expected %v, got a boolean", c.name, kindName(c.kind))
		}
		lit := "false"
		if sc.peek() == 't' {
			lit = "true"
		}
		if err := sc.literal(lit); err != nil {
			return err
		}
		s.b, s.state = lit == "true", slotValue
		return nil
	case '{', '[':
		return malformedf("field %q: expected %v, got a nested value", c.name, kindName(c.kind))
	default:
		tok := sc.number()
		if len(tok) == 0 {
			return malformedf("field %q: invalid value at byte %d: %s", c.name, sc.pos, sc.near())
		}
		switch c.kind {
		case kString, kLargeString, kBinary, kLargeBinary, kBool, kDate32:
			return malformedf("field %q: expected %v, got a number", c.name, kindName(c.kind))
		default:
		}
		return parseNumber(c, s, tok)
	}
}

// stageCSV splits one CSV line into the columns in order.
func (d *decoder) stageCSV(value []byte) error {
	// One record is one line: drop a trailing line break.
	for len(value) > 0 && (value[len(value)-1] == '\n' || value[len(value)-1] == '\r') {
		value = value[:len(value)-1]
	}
	var err error
	d.fields, d.quoted, d.scratch, err = splitCSV(value, d.fields[:0], d.quoted[:0], d.scratch)
	if err != nil {
		return err
	}
	if len(d.fields) != len(d.cols) {
		return malformedf("%d CSV fields, want %d (%s)", len(d.fields), len(d.cols), colNames(d.cols))
	}
	for i, f := range d.fields {
		c, s := &d.cols[i], &d.slots[i]
		if len(f) == 0 && !d.quoted[i] {
			s.state = slotNull
			continue
		}
		switch c.kind {
		case kString, kLargeString, kBinary, kLargeBinary:
			s.bs, s.state = f, slotValue
		case kBool:
			switch string(f) {
			case "true", "TRUE", "True", "1":
				s.b = true
			case "false", "FALSE", "False", "0":
				s.b = false
			default:
				return malformedf("field %q: expected bool, got %q", c.name, f)
			}
			s.state = slotValue
		case kTimestamp, kDate32:
			if c.kind == kTimestamp && isInteger(f) {
				if err := parseNumber(c, s, f); err != nil {
					return err
				}
				continue
			}
			if err := parseTime(c, s, f); err != nil {
				return err
			}
			s.state = slotValue
		default:
			if err := parseNumber(c, s, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func colNames(cols []column) string {
	b := make([]byte, 0, 64)
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.name...)
	}
	return string(b)
}

// splitCSV splits line into fields (RFC 4180: "" inside quotes is a
// quote). Unquoted fields and quoted fields without escapes point into
// line; others into scratch.
func splitCSV(line []byte, fields [][]byte, quoted []bool, scratch []byte) ([][]byte, []bool, []byte, error) {
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			i++
			start := i
			escaped := false
			var field []byte
			for {
				if i >= len(line) {
					return fields, quoted, scratch, malformedf("CSV: unterminated quoted field")
				}
				if line[i] == '"' {
					if i+1 < len(line) && line[i+1] == '"' {
						escaped = true
						i += 2
						continue
					}
					break
				}
				i++
			}
			field = line[start:i]
			i++ // closing quote
			if escaped {
				s := len(scratch)
				for j := 0; j < len(field); j++ {
					scratch = append(scratch, field[j])
					if field[j] == '"' {
						j++ // skip the doubled quote
					}
				}
				field = scratch[s:]
			}
			fields, quoted = append(fields, field), append(quoted, true)
			if i == len(line) {
				return fields, quoted, scratch, nil
			}
			if line[i] != ',' {
				return fields, quoted, scratch, malformedf("CSV: unexpected %q after quoted field %d", line[i], len(fields))
			}
			i++
			continue
		}
		start := i
		for i < len(line) && line[i] != ',' {
			if line[i] == '"' {
				return fields, quoted, scratch, malformedf("CSV: bare quote in unquoted field %d", len(fields)+1)
			}
			i++
		}
		fields, quoted = append(fields, line[start:i]), append(quoted, false)
		if i == len(line) {
			return fields, quoted, scratch, nil
		}
		i++ // comma
	}
}

func kindName(k kind) string {
	switch k {
	case kInt8, kInt16, kInt32, kInt64, kUint8, kUint16, kUint32, kUint64:
		return "integer"
	case kFloat32, kFloat64:
		return "number"
	case kBool:
		return "bool"
	case kString, kLargeString:
		return "string"
	case kBinary, kLargeBinary:
		return "base64 string"
	case kTimestamp:
		return "timestamp"
	case kDate32:
		return "date"
	default:
		return "value"
	}
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseNumber parses tok (a JSON number or CSV field) into slot s of c.
func parseNumber(c *column, s *slot, tok []byte) error {
	switch c.kind {
	case kInt8, kInt16, kInt32, kInt64, kTimestamp:
		v, ok := parseInt(tok)
		if !ok {
			return malformedf("field %q: expected integer, got %q", c.name, tok)
		}
		if !fitsInt(c.kind, v) {
			return malformedf("field %q: %d out of range", c.name, v)
		}
		s.i = v
	case kUint8, kUint16, kUint32, kUint64:
		v, ok := parseUint(tok)
		if !ok {
			return malformedf("field %q: expected unsigned integer, got %q", c.name, tok)
		}
		if !fitsUint(c.kind, v) {
			return malformedf("field %q: %d out of range", c.name, v)
		}
		s.u = v
	case kFloat32, kFloat64:
		bits := 64
		if c.kind == kFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(string(tok), bits)
		if err != nil {
			return malformedf("field %q: expected number, got %q", c.name, tok)
		}
		s.f = f
	default:
		return malformedf("field %q: expected %v, got %q", c.name, kindName(c.kind), tok)
	}
	s.state = slotValue
	return nil
}

// parseInt parses a decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	u, ok := parseUint(b)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true //nolint:gosec // u ≤ 2^63 checked; -(2^63) wraps to MinInt64 as intended
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func fitsInt(k kind, v int64) bool {
	switch k {
	case kInt8:
		return v >= math.MinInt8 && v <= math.MaxInt8
	case kInt16:
		return v >= math.MinInt16 && v <= math.MaxInt16
	case kInt32:
		return v >= math.MinInt32 && v <= math.MaxInt32
	default:
		return true
	}
}

func fitsUint(k kind, v uint64) bool {
	switch k {
	case kUint8:
		return v <= math.MaxUint8
	case kUint16:
		return v <= math.MaxUint16
	case kUint32:
		return v <= math.MaxUint32
	default:
		return true
	}
}

// parseTime parses a timestamp or date string into slot s (kTimestamp in
// c.unit, kDate32 in days). Times without a zone are UTC.
func parseTime(c *column, s *slot, v []byte) error {
	if c.kind == kDate32 {
		t, ok := parseDate(v)
		if !ok {
			return malformedf("field %q: expected a date (2006-01-02), got %q", c.name, v)
		}
		s.i = t.Unix() / 86400
		s.state = slotValue
		return nil
	}
	t, ok := parseTimestamp(v)
	if !ok {
		return malformedf("field %q: expected an RFC 3339 timestamp, got %q", c.name, v)
	}
	switch c.unit {
	case arrow.Second:
		s.i = t.Unix()
	case arrow.Millisecond:
		s.i = t.UnixMilli()
	case arrow.Microsecond:
		s.i = t.UnixMicro()
	case arrow.Nanosecond:
		s.i = t.UnixNano()
	default:
		s.i = t.UnixMilli()
	}
	s.state = slotValue
	return nil
}

func digits(b []byte, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func parseDate(b []byte) (time.Time, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return time.Time{}, false
	}
	y, ok1 := digits(b, 4)
	m, ok2 := digits(b[5:], 2)
	d, ok3 := digits(b[8:], 2)
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

// parseTimestamp parses "2006-01-02T15:04:05[.fffffffff](Z|±hh:mm)" and
// the same with a space for T and no zone (UTC), without allocating.
func parseTimestamp(b []byte) (time.Time, bool) {
	if len(b) < 19 || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	day, ok := parseDate(b[:10])
	if !ok {
		return time.Time{}, false
	}
	hh, ok1 := digits(b[11:], 2)
	mm, ok2 := digits(b[14:], 2)
	ss, ok3 := digits(b[17:], 2)
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	rest := b[19:]
	nanos := 0
	if len(rest) > 0 && rest[0] == '.' {
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			if n < 9 {
				nanos = nanos*10 + int(rest[n]-'0')
			}
			n++
		}
		if n == 0 {
			return time.Time{}, false
		}
		for k := n; k < 9; k++ {
			nanos *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:], 2)
		om, ok2 := digits(rest[4:], 2)
		if !ok1 || !ok2 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := day.Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second + time.Duration(nanos))
	return t.Add(-time.Duration(offset) * time.Second), true
}

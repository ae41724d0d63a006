// Package jsonrow encodes rows of Arrow record batches as JSON objects, one
// key per column. Sinks that write JSON (print, files, Kafka) share it so a
// row reads the same wherever it lands. An Encoder is used by one goroutine
// at a time.
package jsonrow

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Encoder appends rows of a batch as JSON objects, a key per column:
// integers and floats as numbers (NaN and ±Inf, which JSON cannot hold, as
// null), bools, strings, binaries as base64 strings (as encoding/json),
// timestamps as RFC 3339 strings in UTC, date32 as "2006-01-02", nulls as
// null; other types through arrow's JSON form (slower, rare). It is the
// inverse of the Kafka source's JSON decoding for the types both support. It
// allocates nothing per row for those types.
type Encoder struct {
	schema *arrow.Schema
	keys   [][]byte // `"name":` per column, with the separating comma
	cols   []arrow.Array
}

// NewEncoder returns an encoder for batches of schema.
func NewEncoder(schema *arrow.Schema) *Encoder {
	e := &Encoder{schema: schema, keys: make([][]byte, schema.NumFields())}
	for i, f := range schema.Fields() {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		k = appendJSONString(k, f.Name)
		e.keys[i] = append(k, ':')
	}
	return e
}

// Reset points the encoder at rec, whose schema is the encoder's.
func (e *Encoder) Reset(rec arrow.RecordBatch) { e.cols = rec.Columns() }

// Schema is the schema the encoder was made for.
func (e *Encoder) Schema() *arrow.Schema { return e.schema }

// AppendRow appends row i of the current batch as a JSON object.
func (e *Encoder) AppendRow(b []byte, i int) []byte {
	b = append(b, '{')
	for c, col := range e.cols {
		b = append(b, e.keys[c]...)
		b = AppendValue(b, col, i)
	}
	return append(b, '}')
}

// AppendValue appends row i of col as a JSON value, by the rules of
// Encoder.
func AppendValue(b []byte, col arrow.Array, i int) []byte {
	if col.IsNull(i) {
		return append(b, "null"...)
	}
	switch a := col.(type) {
	case *array.Int64:
		return strconv.AppendInt(b, a.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(b, int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(b, int64(a.Value(i)), 10)
	case *array.Int8:
		return strconv.AppendInt(b, int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(b, a.Value(i), 10)
	case *array.Uint32:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10)
	case *array.Uint16:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10)
	case *array.Uint8:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10)
	case *array.Float64:
		return appendJSONFloat(b, a.Value(i), 64)
	case *array.Float32:
		return appendJSONFloat(b, float64(a.Value(i)), 32)
	case *array.Boolean:
		return strconv.AppendBool(b, a.Value(i))
	case *array.String:
		return appendJSONString(b, a.Value(i))
	case *array.LargeString:
		return appendJSONString(b, a.Value(i))
	case *array.Binary:
		return appendBase64(b, a.Value(i))
	case *array.LargeBinary:
		return appendBase64(b, a.Value(i))
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		b = append(b, '"')
		b = a.Value(i).ToTime(unit).UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case *array.Date32:
		b = append(b, '"')
		b = a.Value(i).ToTime().UTC().AppendFormat(b, time.DateOnly)
		return append(b, '"')
	case *array.Date64:
		b = append(b, '"')
		b = a.Value(i).ToTime().UTC().AppendFormat(b, time.DateOnly)
		return append(b, '"')
	default:
		v, err := json.Marshal(col.GetOneForMarshal(i))
		if err != nil {
			return appendJSONString(b, col.ValueStr(i))
		}
		return append(b, v...)
	}
}

func appendJSONFloat(b []byte, f float64, bitSize int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bitSize)
}

func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; <, > and & are not escaped (the output is
// not HTML).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript: escape
		// them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

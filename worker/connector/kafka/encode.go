package kafka

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"
)

// appendKeyValue appends the key bytes of row i of col: a string's
// UTF-8, a binary's bytes, anything else its JSON text. It reports false
// for null.
func appendKeyValue(b []byte, col arrow.Array, i int) ([]byte, bool) {
	if col.IsNull(i) {
		return b, false
	}
	switch a := col.(type) {
	case *array.String:
		return append(b, a.Value(i)...), true
	case *array.LargeString:
		return append(b, a.Value(i)...), true
	case *array.Binary:
		return append(b, a.Value(i)...), true
	case *array.LargeBinary:
		return append(b, a.Value(i)...), true
	default:
		return jsonrow.AppendValue(b, col, i), true
	}
}

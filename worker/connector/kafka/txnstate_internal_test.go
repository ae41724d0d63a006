package kafka

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeTxnState: decoding never panics, and what decodes re-encodes
// to a state that decodes to the same.
func FuzzDecodeTxnState(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(txnState{Version: 1, Prefix: "job-sink", Subtask: 2, NextSeq: 7}.encode())
	f.Add(txnState{Version: 1, Prefix: "p", NextSeq: 3, Pending: []pendingTxn{
		{Checkpoint: 4, TransactionalID: "p-0-1", ProducerID: 99, ProducerEpoch: 3},
		{Checkpoint: 5, TransactionalID: "p-0-2", ProducerID: 100, ProducerEpoch: 0},
	}}.encode())
	f.Add([]byte(`{"version":1,"transactional_id_prefix":"p","subtask":0,"next_seq":1,"pending":[{"checkpoint":2,"transactional_id":"x","producer_id":1,"producer_epoch":1},{"checkpoint":2,"transactional_id":"y","producer_id":1,"producer_epoch":1}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeTxnState(b)
		if err != nil {
			return
		}
		if len(b) == 0 {
			return
		}
		again, err := decodeTxnState(st.encode())
		if err != nil {
			t.Fatalf("re-decode of %s: %v", st.encode(), err)
		}
		if diff := cmp.Diff(st, again); diff != "" {
			t.Fatalf("round trip (-first +again):\n%s", diff)
		}
	})
}

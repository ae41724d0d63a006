package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// txnStateVersion is the version of the TxnSink state encoding.
const txnStateVersion = 1

// txnState is a TxnSink's operator state, as Snapshot encodes it (JSON,
// so that an operator can read it from a checkpoint):
//
//	{"version":1,"transactional_id_prefix":"job-sink","subtask":0,"next_seq":4,
//	 "pending":[{"checkpoint":7,"transactional_id":"job-sink-0-3","producer_id":1234,"producer_epoch":1}]}
//
// Ids of (prefix, subtask) with sequence numbers below NextSeq are all
// committed, aborted, or listed in Pending; ids from NextSeq on may hold
// transactions the checkpoint does not cover, which recovery aborts.
type txnState struct {
	Version int    `json:"version"`
	Prefix  string `json:"transactional_id_prefix"`
	Subtask int    `json:"subtask"`
	NextSeq int64  `json:"next_seq"`
	// Pending are the pre-committed transactions, by ascending checkpoint:
	// a restore from this checkpoint must commit every one.
	Pending []pendingTxn `json:"pending,omitempty"`
}

// pendingTxn is a pre-committed transaction: all its records are
// acknowledged and it is open on the broker, waiting for its checkpoint.
// The producer id and epoch are the ones it produced with, which EndTxn
// needs to commit it from any client.
type pendingTxn struct {
	Checkpoint      int64  `json:"checkpoint"`
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
}

// transactionalID names transaction seq of a subtask.
func transactionalID(prefix string, subtask int, seq int64) string {
	return prefix + "-" + strconv.Itoa(subtask) + "-" + strconv.FormatInt(seq, 10)
}

func (st txnState) encode() []byte {
	b, err := json.Marshal(st)
	if err != nil {
		// Only strings and integers: marshalling cannot fail.
		panic(fmt.Sprintf("kafka: encode txn sink state: %v", err))
	}
	return b
}

// decodeTxnState decodes what txnState.encode wrote. Empty input is the
// state of a sink that never ran (no pending transaction, sequence 0).
func decodeTxnState(b []byte) (txnState, error) {
	if len(b) == 0 {
		return txnState{}, nil
	}
	var st txnState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return txnState{}, fmt.Errorf("kafka: txn sink state: %w", err)
	}
	if dec.More() {
		return txnState{}, errors.New("kafka: txn sink state: trailing data")
	}
	if st.Version != txnStateVersion {
		return txnState{}, fmt.Errorf("kafka: txn sink state: version %d, want %d", st.Version, txnStateVersion)
	}
	if st.Prefix == "" || st.Subtask < 0 || st.NextSeq < 0 {
		return txnState{}, fmt.Errorf("kafka: txn sink state: bad prefix %q, subtask %d or next seq %d", st.Prefix, st.Subtask, st.NextSeq)
	}
	for i, p := range st.Pending {
		if p.TransactionalID == "" || p.ProducerID < 0 || p.ProducerEpoch < 0 {
			return txnState{}, fmt.Errorf("kafka: txn sink state: bad pending transaction %+v", p)
		}
		if i > 0 && p.Checkpoint <= st.Pending[i-1].Checkpoint {
			return txnState{}, fmt.Errorf("kafka: txn sink state: pending checkpoints out of order (%d after %d)", p.Checkpoint, st.Pending[i-1].Checkpoint)
		}
	}
	return st, nil
}

package kafka

// Crash abandons s as a killed process would: its clients close without
// ending any transaction, so the open one stays open on the broker.
func (s *TxnSink) Crash() { _ = s.close(false) }

// TxnStateOf decodes a TxnSink snapshot: the next sequence number and the
// pending transactions' ids.
func TxnStateOf(b []byte) (nextSeq int64, pending []string, err error) {
	st, err := decodeTxnState(b)
	for _, p := range st.Pending {
		pending = append(pending, p.TransactionalID)
	}
	return st.NextSeq, pending, err
}

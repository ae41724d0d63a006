package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// closeAbortTimeout bounds Close's abort of the open transaction. The
// abort is a courtesy to read_committed consumers (the next attempt's
// Recover, or the broker's transaction timeout, aborts it otherwise), so
// Close does not wait long for it.
const closeAbortTimeout = 5 * time.Second

var errNotRecovered = errors.New("kafka: txn sink: Recover must be called before Write, PreCommit and Snapshot")

// TxnSink writes the rows of Arrow record batches to one Kafka topic
// exactly once, as the two phases of a checkpoint's two-phase commit over
// Kafka transactions. Rows become visible to read_committed consumers only
// when the checkpoint covering them completes and Commit runs.
//
// Each transaction has its own transactional id, "<prefix>-<subtask>-<seq>",
// and its own kgo client (a kgo client holds one open transaction, under a
// fixed id); seq counts the subtask's transactions. A transaction moves
// through
//
//	      Write          PreCommit(n)            Commit(m ≥ n)
//	─────────────▶ open ─────────────▶ pending(n) ─────────────▶ committed
//	                │                      │
//	                │ Close; crash and     │ crash and Recover from checkpoint
//	                ▼ Recover              ▼ ≥ n: committed; < n: aborted
//	             aborted
//
// and the broker aborts either when its timeout elapses (for a pending
// transaction whose checkpoint completed: lost, see ErrTransactionLost).
// It is begun by the first Write after a PreCommit (an interval without
// rows makes no transaction and no round trip), pre-committed by PreCommit
// (flushed: every record acknowledged, the transaction left open) and
// committed by Commit once its checkpoint is complete.
//
// Task goroutine: Recover (once, first), Write, PreCommit, Snapshot and
// Close are called by one goroutine, never concurrently. Commit may be
// called from any goroutine, concurrently with them. See the package doc.
type TxnSink struct {
	cfg TxnSinkConfig
	// raw sends the requests of recovery and commit (InitProducerID,
	// EndTxn, DescribeConfigs), for any transactional id. It has no
	// transactional id itself; kgo routes those requests to the id's
	// transaction coordinator.
	raw *kgo.Client
	// ctx is the sink's lifetime: the produced records' context, and a
	// Commit's (Close cancels it).
	ctx    context.Context
	cancel context.CancelFunc

	w recordWriter

	// Owned by the task goroutine.
	recovered bool
	open      *txn  // nil until the first Write after a PreCommit
	nextSeq   int64 // seq of the next transaction to begin

	// slots holds a token per pending transaction: PreCommit blocks while
	// it is full (backpressure until a checkpoint completes).
	slots chan struct{}
	// commitTurn is a token that serializes the commits of Commit and
	// Recover; Close takes it for good. It also guards rawV4.
	commitTurn chan struct{}
	// rawV4 is raw with EndTxn capped at v4, made on first need (see
	// commit).
	rawV4 *kgo.Client

	mu struct {
		sync.Mutex
		pending []*txn // pre-committed, by ascending checkpoint
	}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// txn is one transaction of this sink: open (Checkpoint unset) or pending.
type txn struct {
	pendingTxn
	seq int64
	cl  *kgo.Client // its transactional client
}

// NewTxnSink validates cfg and makes the sink. It connects to no broker:
// Recover is the first call to make, and the first to talk to Kafka.
func NewTxnSink(cfg TxnSinkConfig) (*TxnSink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	raw, err := kgo.NewClient(append(baseOpts(cfg.Brokers, cfg.Logger), cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: txn sink client: %w", err)
	}
	s := &TxnSink{
		cfg:        cfg,
		raw:        raw,
		slots:      make(chan struct{}, cfg.MaxPendingTransactions),
		commitTurn: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.w.init(s.ctx, cfg.Topic, cfg.KeyColumns)
	return s, nil
}

// Recover prepares the sink from state, the sink's operator state in the
// restored checkpoint (what Snapshot returned then), or nil for a fresh
// start. It must be called once, before anything else but Close:
//
//  1. Every transaction state lists as pending is committed: the restored
//     checkpoint is complete, so its rows must be visible. The crashed
//     attempt may already have committed it; committing again is then a
//     no-op. A transaction the broker aborted (its timeout elapsed) is
//     lost: Recover tries the others and returns a *LostTransactionError
//     (ErrTransactionLost) for each.
//  2. Every transaction the crashed attempt began after the checkpoint is
//     aborted, and its writer fenced: InitProducerID on each of the
//     subtask's transactional ids from state's next sequence number on,
//     until one the broker did not know. Their rows were never covered by
//     a completed checkpoint; aborting them promptly, rather than at their
//     timeout, lets read_committed consumers past them.
//
// New transactions then continue the sequence from state's. The broker
// refusing TransactionTimeout fails step 2 with an error naming
// transaction_timeout_ms and the broker's limit. state must be this
// subtask's own (same prefix and subtask; rescaling is not supported):
// another one is refused, since its ids belong to whichever sink recovers
// it. Recover blocks until done or ctx ends; after an error it may be
// called again, or the attempt restarted: every step is idempotent.
func (s *TxnSink) Recover(ctx context.Context, state []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.recovered {
		return errors.New("kafka: txn sink: Recover called twice")
	}
	st, err := decodeTxnState(state)
	if err != nil {
		return err
	}
	if st.Version != 0 && (st.Prefix != s.cfg.TransactionalIDPrefix || st.Subtask != s.cfg.Subtask) {
		// The ids of a state belong to the sink that recovers it. This
		// sink's own ids may be pending in a state another sink is
		// committing right now, and probing them would abort them.
		return fmt.Errorf("kafka: txn sink: the state of transactional ids %s-%d-* cannot be restored into the sink of %s-%d-*: "+
			"each subtask must recover its own state (rescaling, or renaming the prefix, is not supported)",
			st.Prefix, st.Subtask, s.cfg.TransactionalIDPrefix, s.cfg.Subtask)
	}
	if err := s.takeCommitTurn(ctx); err != nil {
		return err
	}
	var errs []error
	for _, p := range st.Pending {
		if err := s.commit(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		s.cfg.Logger.Info("kafka: txn sink: committed the transaction of a restored checkpoint",
			"transactional_id", p.TransactionalID, "checkpoint", p.Checkpoint)
	}
	<-s.commitTurn
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// A fresh start probes from 0: a run of the prefix that crashed before
	// its first checkpoint may have left transactions open.
	next := st.NextSeq
	if err := s.abortLingering(ctx, s.cfg.TransactionalIDPrefix, s.cfg.Subtask, next); err != nil {
		return err
	}
	s.nextSeq = next
	s.recovered = true
	return nil
}

// abortLingering sends InitProducerID for the ids of (prefix, subtask)
// from seq on, which aborts a transaction left open under each and fences
// its writer, and stops at the first id the broker did not know.
//
// A sink uses its ids in order and initializes each before using the
// next, so the ids a crashed attempt touched are contiguous from the
// restored next seq, and the first unknown one ends them. The broker
// answers an id it does not know with a new producer id at epoch 0 (kfake
// and Kafka alike); a known id's epoch is bumped, so it is at least 1.
// (Kafka also answers epoch 0 when a known id exhausts its 32767 epochs
// and gets a new producer id; one transaction per id makes that moot.)
func (s *TxnSink) abortLingering(ctx context.Context, prefix string, subtask int, seq int64) error {
	for ; ; seq++ {
		id := transactionalID(prefix, subtask, seq)
		_, epoch, err := s.initProducerID(ctx, id)
		if err != nil {
			return err
		}
		if epoch == 0 {
			return nil
		}
		s.cfg.Logger.Info("kafka: txn sink: fenced a transactional id of a previous attempt, aborting any transaction it left open",
			"transactional_id", id)
	}
}

// initProducerID sends InitProducerID for id with the sink's transaction
// timeout, with no producer id or epoch: the broker aborts a transaction
// open under id, bumps the epoch and returns it (a new producer id at
// epoch 0 for an id it did not know). Kafka answers
// CONCURRENT_TRANSACTIONS while it aborts; that is retried until ctx ends.
func (s *TxnSink) initProducerID(ctx context.Context, id string) (int64, int16, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = int32(s.cfg.TransactionTimeout.Milliseconds())
	for try := 0; ; try++ {
		resp, err := req.RequestWith(ctx, s.raw)
		if err != nil {
			return 0, 0, fmt.Errorf("kafka: txn sink: init producer id of %s: %w", id, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		switch {
		case err == nil:
			return resp.ProducerID, resp.ProducerEpoch, nil
		case errors.Is(err, kerr.InvalidTransactionTimeout):
			return 0, 0, s.timeoutRefused(ctx, id, err)
		case retriableTxnErr(err):
			if err := retryWait(ctx, try); err != nil {
				return 0, 0, fmt.Errorf("kafka: txn sink: init producer id of %s: %w (last broker answer: %w)", id, err, kerr.ErrorForCode(resp.ErrorCode))
			}
		default:
			return 0, 0, fmt.Errorf("kafka: txn sink: init producer id of %s: %w", id, err)
		}
	}
}

// timeoutRefused explains the broker's INVALID_TRANSACTION_TIMEOUT (err)
// for id, with the broker's limit if it can be read.
func (s *TxnSink) timeoutRefused(ctx context.Context, id string, err error) error {
	limit := "unknown"
	if m, derr := s.TransactionMaxTimeout(ctx); derr == nil {
		limit = m.String()
	} else {
		limit += " (" + derr.Error() + ")"
	}
	return fmt.Errorf("kafka: txn sink: the broker refused transaction_timeout_ms=%d (%v) for %s: it exceeds the broker's transaction.max.timeout.ms, %s; "+
		"lower the sink's transaction timeout or raise the brokers' limit (see CheckTransactionTimeout): %w",
		s.cfg.TransactionTimeout.Milliseconds(), s.cfg.TransactionTimeout, id, limit, err)
}

// TransactionMaxTimeout reads transaction.max.timeout.ms from a broker of
// the cluster, for CheckTransactionTimeout.
func (s *TxnSink) TransactionMaxTimeout(ctx context.Context) (time.Duration, error) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.Topics = []kmsg.MetadataRequestTopic{} // brokers only
	mresp, err := meta.RequestWith(ctx, s.raw)
	if err != nil {
		return 0, fmt.Errorf("kafka: txn sink: metadata: %w", err)
	}
	if len(mresp.Brokers) == 0 {
		return 0, errors.New("kafka: txn sink: metadata lists no brokers")
	}
	// Brokers of a cluster share the setting; ask the first.
	const name = "transaction.max.timeout.ms"
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeBroker
	res.ResourceName = strconv.Itoa(int(mresp.Brokers[0].NodeID))
	res.ConfigNames = []string{name}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, s.raw)
	if err != nil {
		return 0, fmt.Errorf("kafka: txn sink: describe broker configs: %w", err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return 0, fmt.Errorf("kafka: txn sink: describe broker %s configs: %w", r.ResourceName, err)
		}
		for _, c := range r.Configs {
			if c.Name != name || c.Value == nil {
				continue
			}
			ms, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("kafka: txn sink: %s %q: %w", name, *c.Value, err)
			}
			return time.Duration(ms) * time.Millisecond, nil
		}
	}
	return 0, fmt.Errorf("kafka: txn sink: broker does not report %s", name)
}

// usable returns why the task goroutine's methods cannot proceed, if so.
func (s *TxnSink) usable() error {
	switch {
	case s.closed.Load():
		return ErrClosed
	case !s.recovered:
		return errNotRecovered
	case s.w.failed.Load():
		return s.w.firstErr()
	}
	return nil
}

// Write produces every row of batch as one record (as Sink.Write does) in
// the open transaction, beginning one if none is open: a new
// transactional client, whose InitProducerID (bounded by ctx) fences any
// earlier holder of the id. It returns once the records are buffered,
// blocking while MaxBufferedRecords or MaxBufferedBytes are
// unacknowledged. A produce failure fails the sink: every later Write and
// PreCommit returns it, and the runtime must restart from the last
// checkpoint (the failed transaction is never committed).
func (s *TxnSink) Write(ctx context.Context, batch arrow.RecordBatch) error {
	if err := s.usable(); err != nil {
		return err
	}
	if batch.NumRows() == 0 {
		return nil
	}
	// Bind before beginning: a schema the sink cannot write must not
	// leave an empty transaction behind.
	if err := s.w.bind(batch.Schema()); err != nil {
		return err
	}
	if s.open == nil {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	return s.w.write(ctx, s.open.cl, batch)
}

// begin opens transaction s.nextSeq.
func (s *TxnSink) begin(ctx context.Context) error {
	seq := s.nextSeq
	id := transactionalID(s.cfg.TransactionalIDPrefix, s.cfg.Subtask, seq)
	cl, err := kgo.NewClient(producerOpts(s.cfg.SinkConfig,
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(s.cfg.TransactionTimeout),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: txn sink client: %w", err)
	}
	// InitProducerID now, under ctx: BeginTransaction would do it without
	// a deadline. It is also where the broker refuses the timeout.
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		cl.Close()
		if errors.Is(err, kerr.InvalidTransactionTimeout) {
			return s.timeoutRefused(ctx, id, err)
		}
		return fmt.Errorf("kafka: txn sink: init transactional id %s: %w", id, err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return fmt.Errorf("kafka: txn sink: begin transaction %s: %w", id, err)
	}
	// The id is known to the broker from now on: the next transaction
	// takes the next id, which keeps the ids a restore must probe
	// contiguous.
	s.nextSeq = seq + 1
	s.open = &txn{pendingTxn: pendingTxn{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch}, seq: seq, cl: cl}
	return nil
}

// PreCommit is the first phase of checkpoint's commit, called when the
// checkpoint's barrier reaches the sink, before Snapshot: it waits until
// every record of the open transaction is acknowledged and makes the
// transaction pending under checkpoint, open on the broker until Commit
// (or a restore from checkpoint) commits it. With no open transaction (no
// row since the last PreCommit) it does nothing. It blocks while
// MaxPendingTransactions are pending, until Commit frees one or ctx ends;
// on an error the transaction stays open and a later PreCommit may take
// it. Checkpoint ids must increase.
func (s *TxnSink) PreCommit(ctx context.Context, checkpoint int64) error {
	if err := s.usable(); err != nil {
		return err
	}
	t := s.open
	if t == nil {
		return nil
	}
	s.mu.Lock()
	var last int64
	if n := len(s.mu.pending); n > 0 {
		last = s.mu.pending[n-1].Checkpoint
	}
	s.mu.Unlock()
	if last != 0 && checkpoint <= last {
		return fmt.Errorf("kafka: txn sink: pre-commit of checkpoint %d after checkpoint %d: checkpoint ids must increase", checkpoint, last)
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("kafka: txn sink: pre-commit of checkpoint %d: %d transactions wait for their checkpoints to complete: %w",
			checkpoint, cap(s.slots), ctx.Err())
	}
	if err := s.preCommit(ctx, t); err != nil {
		<-s.slots
		return err
	}
	t.Checkpoint = checkpoint
	s.open = nil
	s.mu.Lock()
	s.mu.pending = append(s.mu.pending, t)
	s.mu.Unlock()
	return nil
}

// preCommit flushes t and checks that it is still the transaction begun.
func (s *TxnSink) preCommit(ctx context.Context, t *txn) error {
	if err := t.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: txn sink: pre-commit flush of %s: %w", t.TransactionalID, err)
	}
	if s.w.failed.Load() {
		return s.w.firstErr()
	}
	// The producer id and epoch are what a commit from another client
	// (Recover's) names. kgo changes them only after an error that also
	// fails records, but a commit under the wrong ones would fail, so
	// check.
	pid, epoch, err := t.cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("kafka: txn sink: pre-commit of %s: %w", t.TransactionalID, err)
	}
	if pid != t.ProducerID || epoch != t.ProducerEpoch {
		return fmt.Errorf("kafka: txn sink: pre-commit of %s: producer id/epoch changed from %d/%d to %d/%d during the transaction",
			t.TransactionalID, t.ProducerID, t.ProducerEpoch, pid, epoch)
	}
	return nil
}

// Snapshot returns the sink's operator state for the checkpoint whose
// PreCommit just returned: the pending transactions (checkpoint,
// transactional id, producer id, epoch) and the next sequence number. The
// state of checkpoint n lists n's own transaction, so a restore from n
// commits it; Recover reads it back. The encoding is JSON (see txnState).
func (s *TxnSink) Snapshot() ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !s.recovered {
		return nil, errNotRecovered
	}
	st := txnState{Version: txnStateVersion, Prefix: s.cfg.TransactionalIDPrefix, Subtask: s.cfg.Subtask, NextSeq: s.nextSeq}
	if s.open != nil {
		// Called without PreCommit: the open transaction is not part of
		// the checkpoint, and a restore must abort it, so probing starts
		// at its id.
		st.NextSeq = s.open.seq
	}
	s.mu.Lock()
	for _, t := range s.mu.pending {
		st.Pending = append(st.Pending, t.pendingTxn)
	}
	s.mu.Unlock()
	return st.encode(), nil
}

// Commit is the second phase: it commits every pending transaction of a
// checkpoint up to checkpoint, which must be complete (its metadata
// durable), oldest first, and closes their clients. Safe from any
// goroutine, concurrently with the task goroutine's calls; calls are
// serialized. Idempotent: committing what is already committed does
// nothing.
//
// On an error other than a lost transaction the transaction stays pending
// (its outcome may be unknown): a later Commit retries it, and so does the
// next attempt's Recover, since the checkpoint lists it. A transaction the
// broker aborted returns a *LostTransactionError (ErrTransactionLost) and
// fails the sink: rows of a completed checkpoint are lost. After Close,
// Commit returns ErrClosed and the next attempt's Recover commits.
func (s *TxnSink) Commit(ctx context.Context, checkpoint int64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	// Close ends a commit in flight.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if err := s.takeCommitTurn(ctx); err != nil {
		if s.closed.Load() {
			return ErrClosed
		}
		return err
	}
	defer func() { <-s.commitTurn }()
	if s.closed.Load() { // Close began while we waited for the turn
		return ErrClosed
	}
	for {
		s.mu.Lock()
		var t *txn
		if len(s.mu.pending) > 0 && s.mu.pending[0].Checkpoint <= checkpoint {
			t = s.mu.pending[0]
		}
		s.mu.Unlock()
		if t == nil {
			return nil
		}
		err := s.commit(ctx, t.pendingTxn)
		if err != nil && !errors.Is(err, ErrTransactionLost) {
			return err
		}
		// Committed or lost: either way it is done. Only Commit (under
		// the turn) removes pending transactions, so t is still first.
		t.cl.Close()
		s.mu.Lock()
		s.mu.pending = s.mu.pending[1:]
		s.mu.Unlock()
		<-s.slots
		if err != nil {
			s.w.fail(err)
			return err
		}
	}
}

// takeCommitTurn takes the commit token, or returns ctx's error.
func (s *TxnSink) takeCommitTurn(ctx context.Context) error {
	select {
	case s.commitTurn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit commits the pre-committed transaction p with a raw EndTxn naming
// its producer id and epoch, from the sink's own client: it works the
// same whether p's client is this sink's or belonged to a crashed attempt.
// The commit turn must be held.
//
// A retry of a commit that already happened succeeds, but what "already
// happened" looks like depends on the EndTxn version (Kafka's
// TransactionCoordinator; kfake's doEnd agrees):
//
//   - v0–v4 (transaction version 1): the epoch stays; a commit retry at
//     the same epoch finds CompleteCommit and succeeds.
//   - v5 (KIP-890, transaction version 2, what kgo speaks to Kafka 4 with
//     transaction.version=2 and to kfake): every commit or abort bumps the
//     epoch, so a retry is recognised by an epoch one below the broker's
//     and succeeds against CompleteCommit. But v5 answers
//     INVALID_TXN_STATE to a retry at the SAME epoch, which is what a
//     transaction committed under v0–v4 rules looks like (a client that
//     capped EndTxn at v4, or a cluster at transaction.version 1 whose
//     kgo client did). The coordinator takes the rules from the request
//     version, so that answer is asked again with EndTxn v4: NONE means
//     committed, anything else means aborted.
//
// A transaction the broker aborted (timeout) shows as INVALID_TXN_STATE
// (v5: epoch bumped by the abort, state CompleteAbort) or PRODUCER_FENCED
// (v4: epoch moved), and one it forgot (transactional.id.expiration.ms)
// as INVALID_PRODUCER_ID_MAPPING: all lost. CONCURRENT_TRANSACTIONS (a
// commit or abort still writing its markers) and coordinator moves are
// retried until ctx ends.
func (s *TxnSink) commit(ctx context.Context, p pendingTxn) error {
	cl := s.raw
	for try := 0; ; try++ {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = p.TransactionalID
		req.ProducerID = p.ProducerID
		req.ProducerEpoch = p.ProducerEpoch
		req.Commit = true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("kafka: txn sink: commit %s (checkpoint %d), outcome unknown, left pending: %w", p.TransactionalID, p.Checkpoint, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.InvalidTxnState) && resp.Version >= 5:
			if cl, err = s.endTxnV4Client(); err != nil {
				return err
			}
		case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.ProducerFenced),
			errors.Is(err, kerr.InvalidProducerEpoch), errors.Is(err, kerr.InvalidProducerIDMapping):
			lost := &LostTransactionError{
				TransactionalID: p.TransactionalID, Checkpoint: p.Checkpoint,
				ProducerID: p.ProducerID, ProducerEpoch: p.ProducerEpoch,
				Unknown: errors.Is(err, kerr.InvalidProducerIDMapping), Err: err,
			}
			s.cfg.Logger.Error(lost.Error())
			return lost
		case retriableTxnErr(err):
			if err := retryWait(ctx, try); err != nil {
				return fmt.Errorf("kafka: txn sink: commit %s (checkpoint %d), left pending: %w (last broker answer: %w)",
					p.TransactionalID, p.Checkpoint, err, kerr.ErrorForCode(resp.ErrorCode))
			}
		default:
			return fmt.Errorf("kafka: txn sink: commit %s (checkpoint %d), left pending: %w", p.TransactionalID, p.Checkpoint, err)
		}
	}
}

// endTxnV4Client returns raw's twin that sends EndTxn at most at v4. The
// commit turn must be held.
func (s *TxnSink) endTxnV4Client() (*kgo.Client, error) {
	if s.rawV4 != nil {
		return s.rawV4, nil
	}
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	opts := append(baseOpts(s.cfg.Brokers, s.cfg.Logger), s.cfg.ClientOpts...)
	cl, err := kgo.NewClient(append(opts, kgo.MaxVersions(v))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: txn sink client: %w", err)
	}
	s.rawV4 = cl
	return cl, nil
}

// retriableTxnErr reports whether a transaction coordinator's answer is
// worth asking again: it is moving, loading, or still completing the
// previous transition of the id.
func retriableTxnErr(err error) bool {
	return errors.Is(err, kerr.ConcurrentTransactions) || kerr.IsRetriable(err)
}

// retryWait sleeps before retry try (from 0): 10 ms doubling to 1 s, or
// until ctx ends.
func retryWait(ctx context.Context, try int) error {
	t := time.NewTimer(min(10*time.Millisecond<<min(try, 7), time.Second))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is a hard stop, from the task goroutine (or once it has stopped):
// it ends a Commit in flight, aborts the open transaction (InitProducerID
// on its id, which also fences its client; bounded by closeAbortTimeout)
// and closes every client. Pending transactions are left open on the
// broker, neither committed nor aborted: their checkpoints may still
// complete, and the next attempt's Recover commits or aborts them. For a
// graceful stop, take a last checkpoint and Commit it before Close. Close
// reports a failed abort (read_committed consumers of the partitions the
// transaction wrote then wait for its timeout). Idempotent.
func (s *TxnSink) Close() error {
	return s.close(true)
}

// close stops the sink; abortOpen false leaves the open transaction open,
// as a crash would (for tests).
func (s *TxnSink) close(abortOpen bool) error {
	s.closeOnce.Do(func() {
		// Stop intake; cancel the records still buffered and a Commit in
		// flight; then wait for that Commit and keep its turn, so that
		// nothing else uses the clients.
		s.closed.Store(true)
		s.cancel()
		s.commitTurn <- struct{}{}
		if t := s.open; t != nil {
			s.open = nil
			t.cl.Close()
			if abortOpen {
				ctx, cancel := context.WithTimeout(context.Background(), closeAbortTimeout)
				if _, _, err := s.initProducerID(ctx, t.TransactionalID); err != nil {
					s.closeErr = fmt.Errorf("kafka: txn sink: close: abort open transaction %s: %w", t.TransactionalID, err)
				}
				cancel()
			}
		}
		s.mu.Lock()
		pending := s.mu.pending
		s.mu.pending = nil
		s.mu.Unlock()
		for _, t := range pending {
			t.cl.Close()
			s.cfg.Logger.Info("kafka: txn sink: closed with a pre-committed transaction; the next attempt commits it if its checkpoint completed",
				"transactional_id", t.TransactionalID, "checkpoint", t.Checkpoint)
		}
		s.raw.Close()
		if s.rawV4 != nil {
			s.rawV4.Close()
		}
	})
	return s.closeErr
}

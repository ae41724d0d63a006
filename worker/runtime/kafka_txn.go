package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// kafkaTxnSink is the exactly-once KafkaSink: a two-phase commit over
// Kafka transactions. Rows go into the subtask's open transaction; at a
// checkpoint barrier the transaction is flushed and kept open (pre-commit)
// and recorded in the snapshot; when the checkpoint completes it is
// committed. On restore, the transactions the checkpoint lists are
// committed and those a crashed attempt left open are aborted. Consumers
// see the output with isolation.level=read_committed, once the checkpoint
// covering it completes.
type kafkaTxnSink struct {
	cfg      kafka.TxnSinkConfig
	sink     *kafka.TxnSink
	restored []byte
	subtask  int
	p        int
	jobID    string
	// restoreJob is the job whose checkpoint or savepoint is restored.
	restoreJob string
	// fromSavepoint: the restored state is a savepoint's.
	fromSavepoint bool
	logger        *slog.Logger
}

func newKafkaTxnSink(spec *sabotv1.KafkaSink, base kafka.SinkConfig, v *jobgraph.Vertex, info TaskInfo, e *env) (*kafkaTxnSink, error) {
	if e.cp == nil || e.cp.atLeast {
		return nil, fmt.Errorf("kafka sink: delivery exactly_once needs exactly-once checkpointing")
	}
	prefix := spec.GetTransactionalIdPrefix()
	if prefix == "" {
		prefix = "sabot-" + info.JobID + "-" + v.ID
	}
	timeout := time.Duration(spec.GetTransactionTimeoutMs()) * time.Millisecond
	if timeout == 0 {
		timeout = jobgraph.DefaultTransactionTimeout
	}
	cfg := kafka.TxnSinkConfig{SinkConfig: base, TransactionalIDPrefix: prefix, TransactionTimeout: timeout}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &kafkaTxnSink{cfg: cfg, subtask: info.Subtask, p: info.Parallelism, jobID: info.JobID, restoreJob: e.cp.restoreJob,
		fromSavepoint: e.cp.restoreSavepoint, logger: base.Logger}, nil
}

// restoreState takes the pending transactions of the same subtask. The
// transactional ids are the subtask's, so the sink restores at its
// checkpointed parallelism only (a savepoint's transactions were committed
// when it completed: a job started from another job's savepoint starts
// its sink fresh).
func (s *kafkaTxnSink) restoreState(_ context.Context, snaps []*clusterv1.OperatorSnapshot) error {
	if s.restoreJob != s.jobID {
		s.logger.Info("kafka sink: state of another job's savepoint; starting fresh transactions", "from job", s.restoreJob)
		return nil
	}
	for _, sn := range snaps {
		if int(sn.GetParallelism()) != s.p && s.fromSavepoint {
			// A rescale (stop with savepoint, restart at another
			// parallelism): the savepoint's transactions were committed
			// before its attempt ended. Fresh transactions; recovery
			// still fences and aborts whatever this subtask's ids left.
			s.logger.Info("kafka sink: savepoint taken at another parallelism; starting fresh transactions", "from", sn.GetParallelism(), "to", s.p)
			return nil
		}
		if int(sn.GetParallelism()) != s.p && len(sn.GetOperatorState()) > 0 {
			return fmt.Errorf("kafka sink: exactly-once state was taken at parallelism %d; its transactions restore at that parallelism only (restore from a savepoint of a stopped job to change it)", sn.GetParallelism())
		}
		if int(sn.GetSubtask()) == s.subtask {
			s.restored = sn.GetOperatorState()
		}
	}
	return nil
}

// Open starts the sink and recovers: it commits the restored checkpoint's
// pending transactions and aborts what a crashed attempt left open.
func (s *kafkaTxnSink) Open(ctx context.Context) error {
	sink, err := kafka.NewTxnSink(s.cfg)
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	s.sink = sink
	if err := sink.Recover(ctx, s.restored); err != nil {
		return lostIsUnrecoverable(fmt.Errorf("kafka sink: recover: %w", err))
	}
	return nil
}

func (s *kafkaTxnSink) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, _ Output) error {
	if err := s.sink.Write(ctx, rec); err != nil {
		// After a lost transaction the sink is failed and Write returns
		// that error.
		return lostIsUnrecoverable(fmt.Errorf("kafka sink: %w", err))
	}
	return nil
}

func (s *kafkaTxnSink) ProcessWatermark(context.Context, int64, Output) error { return nil }

// snapshotState pre-commits the open transaction under checkpoint id.
func (s *kafkaTxnSink) snapshotState(ctx context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	if err := s.sink.PreCommit(ctx, id); err != nil {
		return nil, nil, lostIsUnrecoverable(fmt.Errorf("kafka sink: pre-commit: %w", err))
	}
	b, err := s.sink.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	return &clusterv1.OperatorSnapshot{OperatorState: b}, nil, nil
}

// checkpointComplete commits the transactions of checkpoints up to id.
func (s *kafkaTxnSink) checkpointComplete(ctx context.Context, id int64) error {
	return lostIsUnrecoverable(s.sink.Commit(ctx, id))
}

// Finish commits what the bounded input wrote: the job ends without a
// final checkpoint, so its last transaction is committed directly.
func (s *kafkaTxnSink) Finish(ctx context.Context, _ Output) error {
	if err := s.sink.PreCommit(ctx, math.MaxInt64); err != nil {
		return lostIsUnrecoverable(err)
	}
	return lostIsUnrecoverable(s.sink.Commit(ctx, math.MaxInt64))
}

// lostIsUnrecoverable marks an error that includes a lost transaction
// (kafka.ErrTransactionLost) unrecoverable: the rows of a completed
// checkpoint are not in the topic, and no restart brings them back, so the
// job must fail loudly rather than restart in a loop. Other errors pass
// unchanged (a restart retries them).
func lostIsUnrecoverable(err error) error {
	if errors.Is(err, kafka.ErrTransactionLost) {
		return Unrecoverable(err)
	}
	return err
}

// Close aborts the open transaction, if any. Idempotent.
func (s *kafkaTxnSink) Close() error {
	if s.sink == nil {
		return nil
	}
	err := s.sink.Close()
	s.sink = nil
	return err
}

// snapshotState of the at-least-once sink: every record written before the
// barrier is acknowledged before the checkpoint can complete.
func (s *kafkaSink) snapshotState(ctx context.Context, _ int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	return nil, nil, s.flush(ctx)
}

package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sabotdev/sabot/worker/connector/kafka"
)

// The calls a runtime makes on a TxnSink for one subtask: Recover with the
// restored state, Write batches, PreCommit and Snapshot at each barrier,
// and Commit (from any goroutine) once the checkpoint is complete.
// Consumers read the topic with isolation.level=read_committed.
func ExampleTxnSink() {
	if err := runTxnSink(context.Background(), nil, nil); err != nil {
		fmt.Println(err)
	}
}

// runTxnSink restores a sink from restored (nil on a fresh start), writes
// batch and takes checkpoint 7.
func runTxnSink(ctx context.Context, restored []byte, batch arrow.RecordBatch) (err error) {
	sink, err := kafka.NewTxnSink(kafka.TxnSinkConfig{
		SinkConfig:            kafka.SinkConfig{Brokers: []string{"localhost:9092"}, Topic: "out", Subtask: 0},
		TransactionalIDPrefix: "job-42-sink",
		TransactionTimeout:    10 * time.Minute,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sink.Close()) }()

	// The brokers' limit and the job's checkpoint interval bound the
	// timeout (here a 1 minute interval, 5 minutes to recover a crash).
	brokerMax, err := sink.TransactionMaxTimeout(ctx)
	if err != nil {
		return err
	}
	if err := kafka.CheckTransactionTimeout(10*time.Minute, brokerMax, time.Minute, 5*time.Minute); err != nil {
		return err
	}

	if err := sink.Recover(ctx, restored); err != nil {
		return err // errors.Is(err, kafka.ErrTransactionLost): rows of a completed checkpoint are lost
	}
	if err := sink.Write(ctx, batch); err != nil {
		return err
	}
	// The barrier of checkpoint 7 reaches the sink.
	if err := sink.PreCommit(ctx, 7); err != nil {
		return err // decline checkpoint 7
	}
	state, err := sink.Snapshot() // into checkpoint 7
	if err != nil {
		return err
	}
	_ = state
	// Checkpoint 7 is complete (its metadata durable): commit, possibly
	// from the checkpoint coordinator's goroutine.
	return sink.Commit(ctx, 7)
}

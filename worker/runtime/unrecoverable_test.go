package runtime_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sabotdev/sabot/worker/connector/kafka"
	"github.com/sabotdev/sabot/worker/runtime"
)

func TestUnrecoverable(t *testing.T) {
	t.Parallel()
	lost := &kafka.LostTransactionError{TransactionalID: "t-0", Checkpoint: 3, Err: errors.New("PRODUCER_FENCED")}
	marked := runtime.Unrecoverable(fmt.Errorf("kafka sink: %w", lost))
	if !errors.Is(marked, runtime.ErrUnrecoverable) || !errors.Is(marked, kafka.ErrTransactionLost) {
		t.Fatalf("%v matches ErrUnrecoverable %t, ErrTransactionLost %t; want both", marked,
			errors.Is(marked, runtime.ErrUnrecoverable), errors.Is(marked, kafka.ErrTransactionLost))
	}
	var le *kafka.LostTransactionError
	if !errors.As(fmt.Errorf("task: %w", marked), &le) || le.Checkpoint != 3 {
		t.Fatalf("the marked error lost its cause: %v", le)
	}
	if got, want := marked.Error(), "kafka sink: "+lost.Error(); got != want {
		t.Fatalf("message %q, want %q (the mark adds no text)", got, want)
	}
	if runtime.Unrecoverable(nil) != nil {
		t.Fatal("Unrecoverable(nil) is not nil")
	}
	if errors.Is(errors.New("boom"), runtime.ErrUnrecoverable) {
		t.Fatal("an unmarked error matches ErrUnrecoverable")
	}
}

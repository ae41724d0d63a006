package kafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Nothing is ignored: sources, sinks, kgo clients and kfake clusters
	// all stop what they start.
	goleak.VerifyTestMain(m)
}

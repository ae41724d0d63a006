package eventtime_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The package starts no goroutines; keep it that way.
	goleak.VerifyTestMain(m)
}

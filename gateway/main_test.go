package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every gateway a test starts is closed by its cleanup.
	goleak.VerifyTestMain(m)
}

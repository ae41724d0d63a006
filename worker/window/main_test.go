package window_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The engine starts no goroutines; pebble's are closed with each DB.
	goleak.VerifyTestMain(m)
}

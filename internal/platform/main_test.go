package platform_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every platform a test starts is stopped by its cleanup; nothing may
	// outlive it.
	goleak.VerifyTestMain(m)
}

package blob_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Nothing is ignored: stores close their idle connections, Put's part
	// goroutines end before Put returns, and the test proxies and servers
	// are closed by t.Cleanup.
	goleak.VerifyTestMain(m)
}

package testkit_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Nothing is ignored: every helper stops what it starts (etcd and its
	// clients, kfake brokers and kgo clients, the httptest S3 server).
	goleak.VerifyTestMain(m)
}

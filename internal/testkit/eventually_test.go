package testkit_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sabotdev/sabot/internal/testkit"
)

func TestEventually(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	testkit.Eventually(t, 5*time.Second, func() error {
		if n.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if got := n.Load(); got != 3 {
		t.Fatalf("cond called %d times, want 3", got)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr %s: %v", addr, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

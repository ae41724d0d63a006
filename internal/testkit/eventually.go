package testkit

import (
	"net"
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, and fails t with cond's last
// error if that has not happened within timeout. It polls with a short,
// growing interval (1 ms up to 100 ms): waiting is for an asynchronous
// effect to land, never a pause standing in for an assertion. Call it from
// the test's goroutine (it calls t.Fatalf).
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		<-time.After(interval)
		interval = min(2*interval, 100*time.Millisecond)
	}
}

// FreeAddr returns a loopback "127.0.0.1:port" that was free a moment ago.
// Another process may take the port before the caller binds it, so prefer
// port 0 wherever the component reports its bound address; use this only
// for components that must be told a concrete port in advance.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: free address: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("testkit: free address: %v", err)
	}
	return addr
}

package testkit

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// ServeH2C serves h on a loopback port over HTTP/2 without TLS only (as
// workers and function processes serve) until the test ends, and returns
// its base URL (http://127.0.0.1:port).
func ServeH2C(t testing.TB, h http.Handler) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owned by the cleanup below
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	})
	return "http://" + ln.Addr().String()
}

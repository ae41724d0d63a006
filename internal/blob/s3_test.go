package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/testkit"
)

// faultProxy sits between a store and gofakes3 and injects faults: the
// hook sees every request with its per-operation sequence number and may
// answer it instead of forwarding.
type faultProxy struct {
	URL  string
	rp   *httputil.ReverseProxy
	done chan struct{} // closed at cleanup: stalled handlers return

	mu     sync.Mutex
	counts map[string]int
	reqs   []*http.Request // clones, bodies not kept
	hook   func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool
}

func startProxy(t *testing.T, srv *testkit.S3, hook func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool) *faultProxy {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	p := &faultProxy{
		rp:     &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr},
		done:   make(chan struct{}),
		counts: map[string]int{},
		hook:   hook,
	}
	hs := httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = hs.URL
	t.Cleanup(func() {
		hs.Close()
		tr.CloseIdleConnections()
	})
	t.Cleanup(func() { close(p.done) }) // runs first: unblocks stalled handlers
	return p
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	op := operation(r)
	p.mu.Lock()
	n := p.counts[op]
	p.counts[op]++
	p.reqs = append(p.reqs, r.Clone(context.Background()))
	p.mu.Unlock()
	if p.hook != nil && p.hook(p, w, r, op, n) {
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *faultProxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[op]
}

// requests returns the requests seen for op.
func (p *faultProxy) requests(op string) []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rs []*http.Request
	for _, r := range p.reqs {
		if operation(r) == op {
			rs = append(rs, r)
		}
	}
	return rs
}

// operation names the S3 operation of a path-style request.
func operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodPost && q.Has("delete"):
		return "DeleteObjects"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodHead:
		return "HeadObject"
	case r.Method == http.MethodGet && q.Has("list-type"):
		return "ListObjectsV2"
	case r.Method == http.MethodGet:
		return "GetObject"
	}
	return r.Method
}

// s3Error answers r with an S3 XML error, after reading its body as S3
// does (answering early would reset the connection under the client).
func s3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>`, code)
}

// forward sends r on to the server and returns its response, recorded.
func (p *faultProxy) forward(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	return rec
}

// writeRecorded writes a recorded response's status, headers and the first
// n bytes of its body.
func writeRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder, n int) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes()[:n])
	w.(http.Flusher).Flush()
}

// fastRetries keeps retry tests quick.
func fastRetries(attempts int) blob.Options {
	o := suiteOptions()
	o.MaxAttempts = attempts
	return o
}

func TestS3RetriesTransientErrors(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	// The first two requests of every operation fail with 503.
	proxy := startProxy(t, srv, func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ string, n int) bool {
		if n < 2 {
			s3Error(w, r, http.StatusServiceUnavailable, "ServiceUnavailable")
			return true
		}
		return false
	})
	st := openS3(t, srv, proxy.URL, fastRetries(3))
	small, big := data(1, 1000), data(2, 3*partSize+5)
	put(t, st, "small", small)
	put(t, st, "big", big)
	if got := mustRead(t, st, "small"); !bytes.Equal(got, small) {
		t.Fatal("small object differs")
	}
	if got := mustRead(t, st, "big"); !bytes.Equal(got, big) {
		t.Fatal("big object differs")
	}
	if got := keys(t, st, ""); len(got) != 2 {
		t.Fatalf("List = %v", got)
	}
	if err := st.Delete(t.Context(), "small", "big"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, op := range []string{"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "GetObject", "ListObjectsV2", "DeleteObjects"} {
		if proxy.count(op) < 3 {
			t.Errorf("%s: %d requests, want at least 3 (two failed, then success)", op, proxy.count(op))
		}
	}
}

func TestS3RetriesAreBounded(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"PutObject", "UploadPart", "GetObject", "ListObjectsV2"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			srv := testkit.StartS3(t)
			failing := op
			proxy := startProxy(t, srv, func(_ *faultProxy, w http.ResponseWriter, r *http.Request, op string, _ int) bool {
				if op == failing {
					s3Error(w, r, http.StatusServiceUnavailable, "ServiceUnavailable")
					return true
				}
				return false
			})
			st := openS3(t, srv, proxy.URL, fastRetries(3))
			start := time.Now()
			var err error
			switch op {
			case "PutObject":
				err = st.Put(t.Context(), "k", strings.NewReader("v"), 1)
			case "UploadPart":
				err = st.Put(t.Context(), "k", bytes.NewReader(data(1, 2*partSize+1)), -1)
			case "GetObject":
				put(t, st, "k", []byte("v"))
				_, err = read(t.Context(), st, "k")
			case "ListObjectsV2":
				for _, e := range st.List(t.Context(), "") {
					err = e
				}
			}
			if err == nil {
				t.Fatalf("%s always failing: no error", op)
			}
			for _, want := range []string{"exceeded maximum number of attempts, 3", "503"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("giving up took %v", elapsed)
			}
			want := 3
			if op == "UploadPart" {
				// Parts run concurrently, 3 attempts each; the first part
				// to give up cancels the others' retries.
				if n := proxy.count(op); n < 3 || n > 3*suiteOptions().PartConcurrency {
					t.Errorf("UploadPart: %d requests, want 3 to %d", n, 3*suiteOptions().PartConcurrency)
				}
				if n := proxy.count("AbortMultipartUpload"); n != 1 {
					t.Errorf("AbortMultipartUpload: %d requests, want 1", n)
				}
				want = proxy.count(op)
			}
			if n := proxy.count(op); n != want {
				t.Errorf("%s: %d requests, want %d", op, n, want)
			}
			if ok, _ := st.Exists(t.Context(), "k"); ok && op != "GetObject" {
				t.Error("a failed Put left an object")
			}
			noUploads(t, srv)
		})
	}
}

func TestS3NonRetryableErrorsReturnAtOnce(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	proxy := startProxy(t, srv, func(_ *faultProxy, w http.ResponseWriter, r *http.Request, op string, _ int) bool {
		if op == "PutObject" {
			s3Error(w, r, http.StatusForbidden, "AccessDenied")
			return true
		}
		return false
	})
	st := openS3(t, srv, proxy.URL, fastRetries(5))
	err := st.Put(t.Context(), "k", strings.NewReader("v"), 1)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Put = %v, want AccessDenied", err)
	}
	if n := proxy.count("PutObject"); n != 1 {
		t.Fatalf("PutObject: %d requests, want 1 (no retry of a 403)", n)
	}
}

func TestS3RetriesConditionalConflict(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	proxy := startProxy(t, srv, func(_ *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool {
		if op == "PutObject" && n == 0 {
			s3Error(w, r, http.StatusConflict, "ConditionalRequestConflict")
			return true
		}
		return false
	})
	st := openS3(t, srv, proxy.URL, fastRetries(3))
	put(t, st, "k", []byte("v"))
	if n := proxy.count("PutObject"); n != 2 {
		t.Fatalf("PutObject: %d requests, want 2 (409, then success)", n)
	}
}

// TestS3LostResponse: the server applies a conditional write but the
// response is lost; the retry sees 412 (or NoSuchUpload) and the Put must
// recognise its own object rather than report ErrExists.
func TestS3LostResponse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		op   string
		size int
	}{
		{"PutObject", 1000},
		{"CompleteMultipartUpload", 2*partSize + 3},
	} {
		t.Run(c.op, func(t *testing.T) {
			t.Parallel()
			srv := testkit.StartS3(t)
			lose := c.op
			proxy := startProxy(t, srv, func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool {
				if op == lose && n == 0 {
					p.forward(r)
					s3Error(w, r, http.StatusServiceUnavailable, "ServiceUnavailable")
					return true
				}
				return false
			})
			st := openS3(t, srv, proxy.URL, fastRetries(3))
			want := data(3, c.size)
			put(t, st, "k", want)
			if n := proxy.count(c.op); n != 2 {
				t.Fatalf("%s: %d requests, want 2", c.op, n)
			}
			if got := mustRead(t, st, "k"); !bytes.Equal(got, want) {
				t.Fatal("object differs")
			}
			// Someone else's object is still reported as ErrExists.
			if err := st.Put(t.Context(), "k", bytes.NewReader(want), int64(len(want))); !errors.Is(err, blob.ErrExists) {
				t.Fatalf("second Put = %v, want ErrExists", err)
			}
			noUploads(t, srv)
		})
	}
}

// TestS3CompleteIsConditional checks what makes multipart writes exclusive
// on AWS S3, which gofakes3 does not model: CompleteMultipartUpload carries
// If-None-Match: "*", and its 412 becomes ErrExists with the upload
// aborted.
func TestS3CompleteIsConditional(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	proxy := startProxy(t, srv, func(_ *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool {
		if op == "CompleteMultipartUpload" && n == 1 {
			s3Error(w, r, http.StatusPreconditionFailed, "PreconditionFailed")
			return true
		}
		return false
	})
	st := openS3(t, srv, proxy.URL, fastRetries(3))
	put(t, st, "first", data(1, 2*partSize+1))
	for _, r := range proxy.requests("CompleteMultipartUpload") {
		if got := r.Header.Get("If-None-Match"); got != "*" {
			t.Fatalf("CompleteMultipartUpload If-None-Match = %q, want *", got)
		}
	}
	err := st.Put(t.Context(), "second", bytes.NewReader(data(2, 2*partSize+1)), -1)
	if !errors.Is(err, blob.ErrExists) {
		t.Fatalf("Put whose completion got 412 = %v, want ErrExists", err)
	}
	if n := proxy.count("AbortMultipartUpload"); n != 1 {
		t.Fatalf("AbortMultipartUpload: %d requests, want 1", n)
	}
	if ok, _ := st.Exists(t.Context(), "second"); ok {
		t.Fatal("object exists after a failed completion")
	}
	noUploads(t, srv)
	for _, r := range proxy.requests("PutObject") {
		t.Fatalf("unexpected PutObject %v", r.URL)
	}
	put(t, st, "small", []byte("x"))
	for _, r := range proxy.requests("PutObject") {
		if got := r.Header.Get("If-None-Match"); got != "*" {
			t.Fatalf("PutObject If-None-Match = %q, want *", got)
		}
	}
}

// TestS3GetResumes cuts or stalls the first GET's body part way; the reader
// must resume with a ranged GET and still verify the whole object.
func TestS3GetResumes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cut", "stall"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := testkit.StartS3(t)
			stall := mode == "stall"
			proxy := startProxy(t, srv, func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, n int) bool {
				if op != "GetObject" || n != 0 {
					return false
				}
				rec := p.forward(r)
				writeRecorded(w, rec, rec.Body.Len()/3)
				if stall {
					select {
					case <-r.Context().Done():
					case <-p.done:
					}
				}
				panic(http.ErrAbortHandler) // drop the connection
			})
			o := fastRetries(3)
			o.ReadIdleTimeout = 200 * time.Millisecond
			st := openS3(t, srv, proxy.URL, o)
			want := data(4, 6<<20)
			put(t, st, "k", want)
			if got := mustRead(t, st, "k"); !bytes.Equal(got, want) {
				t.Fatal("object differs")
			}
			// The first GET breaks; the read resumes. On a loaded machine a
			// resumed GET may itself idle past the timeout and resume
			// again: every resumed GET must carry Range and If-Match.
			gets := proxy.requests("GetObject")
			if len(gets) < 2 {
				t.Fatalf("%d GETs, want the broken one and at least one resumed", len(gets))
			}
			for _, g := range gets[1:] {
				if rg := g.Header.Get("Range"); !strings.HasPrefix(rg, "bytes=") || g.Header.Get("If-Match") == "" {
					t.Fatalf("resumed GET has Range %q and If-Match %q; want both", rg, g.Header.Get("If-Match"))
				}
			}
		})
	}
}

func TestS3GetResumeIsBounded(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	proxy := startProxy(t, srv, func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, _ int) bool {
		if op != "GetObject" {
			return false
		}
		rec := p.forward(r)
		writeRecorded(w, rec, min(rec.Body.Len(), 1000))
		panic(http.ErrAbortHandler)
	})
	st := openS3(t, srv, proxy.URL, fastRetries(3))
	put(t, st, "k", data(5, 100000))
	_, err := read(t.Context(), st, "k")
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("read of an always-cut body = %v, want a failure after 3 attempts", err)
	}
	if n := proxy.count("GetObject"); n != 3 {
		t.Fatalf("%d GETs, want 3", n)
	}
}

func TestS3RequestTimeout(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	proxy := startProxy(t, srv, func(p *faultProxy, _ http.ResponseWriter, r *http.Request, op string, _ int) bool {
		if op != "PutObject" {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		select { // never answer
		case <-r.Context().Done():
		case <-p.done:
		}
		return true
	})
	o := fastRetries(3)
	o.RequestTimeout = 300 * time.Millisecond
	st := openS3(t, srv, proxy.URL, o)
	start := time.Now()
	err := st.Put(t.Context(), "k", strings.NewReader("v"), 1)
	if err == nil || !strings.Contains(err.Error(), "Options.RequestTimeout") {
		t.Fatalf("Put to a server that never answers = %v, want a RequestTimeout error", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("Put took %v with RequestTimeout 300ms", elapsed)
	}
}

func TestS3Prefix(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	open := func(prefix string) blob.Store {
		st, err := blob.Open(s3URL(srv, srv.Endpoint, prefix), blob.Options{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b, root := open("tenant/a/"), open("tenant/b"), open("")
	put(t, a, "jobs/j/chk-1/_metadata", []byte("a"))
	put(t, b, "jobs/j/chk-1/_metadata", []byte("b"))
	if got := keys(t, a, ""); len(got) != 1 || got[0] != "jobs/j/chk-1/_metadata" {
		t.Fatalf("List in a = %v", got)
	}
	if got := string(mustRead(t, b, "jobs/j/chk-1/_metadata")); got != "b" {
		t.Fatalf("b reads %q", got)
	}
	if got := keys(t, root, "tenant/"); len(got) != 2 || got[0] != "tenant/a/jobs/j/chk-1/_metadata" {
		t.Fatalf("List at the bucket root = %v", got)
	}
	if _, err := srv.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("tenant/a/jobs/j/chk-1/_metadata")}); err != nil {
		t.Fatalf("raw HeadObject of the prefixed key: %v", err)
	}
	// The prefix counts against S3's key length limit.
	long := strings.Repeat("x/", 508) + "y" // 1017 bytes: fits alone, not after "tenant/a/"
	if err := blob.CheckKey(long); err != nil {
		t.Fatalf("CheckKey: %v", err)
	}
	if err := a.Put(t.Context(), long, strings.NewReader("v"), 1); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Put of a key too long with the prefix = %v, want ErrInvalidKey", err)
	}
}

func TestS3Credentials(t *testing.T) {
	// Not parallel: it sets the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	_, err := blob.Open("s3://bucket/p?region=us-east-1", blob.Options{})
	if err == nil || !strings.Contains(err.Error(), "no s3 credentials") {
		t.Fatalf("Open without credentials = %v", err)
	}
	_, err = blob.Open("s3://bucket/p", blob.Options{AccessKeyID: "a", SecretAccessKey: "b"})
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("Open without a region = %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "id")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	st, err := blob.Open("s3://bucket/p", blob.Options{})
	if err != nil {
		t.Fatalf("Open with credentials and region from the environment: %v", err)
	}
	_ = st.Close()
}

// noUploads fails t if srv has multipart uploads in progress. It asks srv
// directly, not through a faulty proxy.
func noUploads(t *testing.T, srv *testkit.S3) {
	t.Helper()
	out, err := srv.Client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
		return // gofakes3's answer for a bucket that never had an upload
	}
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) > 0 {
		t.Fatalf("%d multipart uploads left in progress", len(out.Uploads))
	}
}

// TestS3PartsInFlightAreBounded checks that one Put never has more than
// PartConcurrency UploadPart requests outstanding.
func TestS3PartsInFlightAreBounded(t *testing.T) {
	t.Parallel()
	srv := testkit.StartS3(t)
	var mu sync.Mutex
	inFlight, peak := 0, 0
	proxy := startProxy(t, srv, func(p *faultProxy, w http.ResponseWriter, r *http.Request, op string, _ int) bool {
		if op != "UploadPart" {
			return false
		}
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // let the parts pile up if they would
		p.rp.ServeHTTP(w, r)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return true
	})
	o := suiteOptions()
	o.PartConcurrency = 2
	st := openS3(t, srv, proxy.URL, o)
	want := data(6, 8*partSize+1)
	if err := st.Put(t.Context(), "k", onlyReader{bytes.NewReader(want)}, -1); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := mustRead(t, st, "k"); !bytes.Equal(got, want) {
		t.Fatal("object differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > 2 || peak < 1 {
		t.Fatalf("peak of %d parts in flight, want 1 to PartConcurrency (2)", peak)
	}
	if n := proxy.count("UploadPart"); n != 9 {
		t.Fatalf("%d parts, want 9", n)
	}
}

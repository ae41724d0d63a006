package autoscale_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// ecsRequest is what the fake ECS endpoint saw of one request.
type ecsRequest struct {
	Target      string
	ContentType string
	Auth        string
	Body        map[string]any
}

// fakeECS records requests and answers each with respond(target).
type fakeECS struct {
	mu       sync.Mutex
	requests []ecsRequest
	respond  func(target string) (status int, body string)
}

func (f *fakeECS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := ecsRequest{Target: r.Header.Get("X-Amz-Target"), ContentType: r.Header.Get("Content-Type"), Auth: r.Header.Get("Authorization")}
	if err := json.Unmarshal(b, &req.Body); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	status, body := f.respond(strings.TrimPrefix(req.Target, "AmazonEC2ContainerServiceV20141113."))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeECS) seen() []ecsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ecsRequest(nil), f.requests...)
}

// newECS starts a fake endpoint and an ECS provisioner pointed at it, with
// static credentials and a fixed region: no network, no AWS configuration.
func newECS(t *testing.T, opts autoscale.ECSOptions, respond func(string) (int, string)) (*autoscale.ECS, *fakeECS) {
	t.Helper()
	f := &fakeECS{respond: respond}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts.Client = ecs.New(ecs.Options{
		Region:           "eu-west-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
		BaseEndpoint:     aws.String(srv.URL),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
	})
	p, err := autoscale.NewECS(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func ok(target string) (int, string) {
	switch target {
	case "UpdateService":
		return 200, `{"service":{"serviceName":"workers","desiredCount":3}}`
	case "DescribeServices":
		return 200, `{"services":[{"serviceName":"workers","desiredCount":4,"runningCount":3,"status":"ACTIVE"}],"failures":[]}`
	}
	return 400, `{"__type":"UnknownOperationException"}`
}

func TestECSSetWorkers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		opts    autoscale.ECSOptions
		ask     int
		body    map[string]any
		desired int
	}{
		{
			name: "desired count", opts: autoscale.ECSOptions{Cluster: "sabot", Service: "workers"}, ask: 3,
			body: map[string]any{"cluster": "sabot", "service": "workers", "desiredCount": 3.0}, desired: 3,
		},
		{
			name: "clamped to max", opts: autoscale.ECSOptions{Cluster: "sabot", Service: "workers", Min: 1, Max: 5}, ask: 9,
			body: map[string]any{"cluster": "sabot", "service": "workers", "desiredCount": 5.0}, desired: 5,
		},
		{
			name: "clamped to min", opts: autoscale.ECSOptions{Cluster: "sabot", Service: "workers", Min: 1, Max: 5}, ask: 0,
			body: map[string]any{"cluster": "sabot", "service": "workers", "desiredCount": 1.0}, desired: 1,
		},
		{
			name: "zero without min", opts: autoscale.ECSOptions{Cluster: "sabot", Service: "workers"}, ask: -2,
			body: map[string]any{"cluster": "sabot", "service": "workers", "desiredCount": 0.0}, desired: 0,
		},
		{
			name: "default cluster omitted", opts: autoscale.ECSOptions{Service: "workers"}, ask: 2,
			body: map[string]any{"service": "workers", "desiredCount": 2.0}, desired: 2,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, f := newECS(t, c.opts, ok)
			if p.Name() != "ecs" || p.Asked() != -1 {
				t.Errorf("name %q, asked %d before any request", p.Name(), p.Asked())
			}
			if err := p.SetWorkers(t.Context(), c.ask); err != nil {
				t.Fatal(err)
			}
			reqs := f.seen()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Target != "AmazonEC2ContainerServiceV20141113.UpdateService" {
				t.Errorf("X-Amz-Target %q", r.Target)
			}
			if r.ContentType != "application/x-amz-json-1.1" {
				t.Errorf("Content-Type %q", r.ContentType)
			}
			if !strings.HasPrefix(r.Auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(r.Auth, "/eu-west-1/ecs/aws4_request") {
				t.Errorf("Authorization %q: not signed for ecs in eu-west-1", r.Auth)
			}
			if diff := cmp.Diff(c.body, r.Body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if p.Asked() != c.desired {
				t.Errorf("Asked = %d, want %d", p.Asked(), c.desired)
			}
		})
	}
}

func TestECSWorkers(t *testing.T) {
	t.Parallel()
	p, f := newECS(t, autoscale.ECSOptions{Cluster: "sabot", Service: "workers"}, ok)
	n, err := p.Workers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("Workers = %d, want the desired count 4", n)
	}
	reqs := f.seen()
	if len(reqs) != 1 || reqs[0].Target != "AmazonEC2ContainerServiceV20141113.DescribeServices" {
		t.Fatalf("requests %+v, want one DescribeServices", reqs)
	}
	want := map[string]any{"cluster": "sabot", "services": []any{"workers"}}
	if diff := cmp.Diff(want, reqs[0].Body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestECSErrors(t *testing.T) {
	t.Parallel()
	notFound := func(string) (int, string) {
		return 400, `{"__type":"ServiceNotFoundException","message":"Service not found."}`
	}
	opts := autoscale.ECSOptions{Cluster: "sabot", Service: "workers"}

	t.Run("update", func(t *testing.T) {
		t.Parallel()
		p, _ := newECS(t, opts, notFound)
		err := p.SetWorkers(t.Context(), 2)
		var nf *types.ServiceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("SetWorkers = %v, want a ServiceNotFoundException", err)
		}
		for _, s := range []string{"service workers", "cluster sabot", "to 2", "Service not found"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
		if p.Asked() != -1 {
			t.Errorf("Asked = %d after a failed request, want -1", p.Asked())
		}
	})

	t.Run("describe", func(t *testing.T) {
		t.Parallel()
		p, _ := newECS(t, opts, func(string) (int, string) {
			return 400, `{"__type":"ClusterNotFoundException","message":"Cluster not found."}`
		})
		_, err := p.Workers(t.Context())
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ClusterNotFoundException" {
			t.Fatalf("Workers = %v, want a ClusterNotFoundException", err)
		}
		if !strings.Contains(err.Error(), "service workers in cluster sabot") {
			t.Errorf("error %q does not name the service and cluster", err)
		}
	})

	t.Run("describe failure", func(t *testing.T) {
		t.Parallel()
		p, _ := newECS(t, opts, func(string) (int, string) {
			return 200, `{"services":[],"failures":[{"arn":"arn:aws:ecs:eu-west-1:1:service/sabot/workers","reason":"MISSING"}]}`
		})
		_, err := p.Workers(t.Context())
		if err == nil || !strings.Contains(err.Error(), "service workers in cluster sabot: MISSING") {
			t.Fatalf("Workers = %v, want MISSING naming the service", err)
		}
	})
}

func TestNewECSRejects(t *testing.T) {
	t.Parallel()
	client := ecs.New(ecs.Options{Region: "eu-west-1"})
	for _, c := range []struct {
		name string
		opts autoscale.ECSOptions
		want string
	}{
		{"no client", autoscale.ECSOptions{Service: "w"}, "Client is nil"},
		{"no service", autoscale.ECSOptions{Client: client}, "Service is empty"},
		{"negative", autoscale.ECSOptions{Client: client, Service: "w", Max: -1}, "negative bounds"},
		{"min above max", autoscale.ECSOptions{Client: client, Service: "w", Min: 4, Max: 2}, "Min 4 is above Max 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := autoscale.NewECS(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewECS = %v, want %q", err, c.want)
			}
		})
	}
}

// The provisioners satisfy the interface.
var (
	_ autoscale.Provisioner = (*autoscale.Local)(nil)
	_ autoscale.Provisioner = (*autoscale.ECS)(nil)
)

package sabot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// Client talks to a Sabot gateway: it deploys functions (from a Go
// package or a URL) and jobs, and invokes functions. It is safe for
// concurrent use. Errors from the gateway are connect errors, wrapped with
// what was being done: inspect them with connect.CodeOf.
//
//	c := sabot.NewClient("http://127.0.0.1:8080")
//	defer c.Close()
//	if _, err := c.Deploy(ctx, "./greeter"); err != nil { … }
//	reply, err := c.Invoke(ctx, "greeter", "alice", []byte(`{"hello":true}`))
type Client struct {
	hc   *http.Client
	own  bool // hc is the default client, closed by Close
	goc  string
	fns  sabotv1connect.FunctionServiceClient
	jobs sabotv1connect.JobServiceClient
}

// ClientOption configures NewClient.
type ClientOption func(*clientConfig)

type clientConfig struct {
	hc  *http.Client
	goc string
}

// ClientHTTPClient makes the client send its requests with hc. Default: a
// client speaking HTTP/2 without TLS (h2c, prior knowledge) to http://
// URLs and HTTP/1.1 or HTTP/2 over TLS to https:// ones, with no overall
// timeout: each call's deadline is its context's.
func ClientHTTPClient(hc *http.Client) ClientOption {
	return func(c *clientConfig) { c.hc = hc }
}

// ClientGoCommand is the go command Deploy builds packages with. Default:
// "go", found on PATH.
func ClientGoCommand(path string) ClientOption {
	return func(c *clientConfig) { c.goc = path }
}

// NewClient returns a client of the gateway at baseURL ("http://host:port";
// a bare "host:port" means http).
func NewClient(baseURL string, opts ...ClientOption) *Client {
	cfg := clientConfig{goc: "go"}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Client{hc: cfg.hc, goc: cfg.goc}
	if c.hc == nil {
		c.hc, c.own = &http.Client{Transport: clientDefaultTransport()}, true
	}
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	baseURL = strings.TrimRight(baseURL, "/")
	c.fns = sabotv1connect.NewFunctionServiceClient(c.hc, baseURL)
	c.jobs = sabotv1connect.NewJobServiceClient(c.hc, baseURL)
	return c
}

// Close releases the idle connections of the default HTTP client (one
// given with ClientHTTPClient is left alone). The client may still be used
// afterwards; it dials again.
func (c *Client) Close() {
	if c.own {
		c.hc.CloseIdleConnections()
	}
}

// clientTransport sends http:// requests as HTTP/2 without TLS, the way
// the gateway, workers and function processes serve, and everything else
// through a standard transport.
type clientTransport struct {
	h2c *http.Transport
	std *http.Transport
}

func clientDefaultTransport() clientTransport {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	std := http.DefaultTransport.(*http.Transport).Clone()
	return clientTransport{
		h2c: &http.Transport{Protocols: p, IdleConnTimeout: 90 * time.Second,
			HTTP2: &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second}},
		std: std,
	}
}

func (t clientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		return t.h2c.RoundTrip(r)
	}
	return t.std.RoundTrip(r)
}

func (t clientTransport) CloseIdleConnections() {
	t.h2c.CloseIdleConnections()
	t.std.CloseIdleConnections()
}

// InvokeOption configures one Invoke.
type InvokeOption func(*sabotv1.InvokeRequest)

// WithIdempotencyKey deduplicates the invocation: requests with the same
// key (for the same function and key) have their effect once, and a repeat
// gets the first one's reply. Default: none, every request is applied.
// Retrying an invocation safely needs one.
func WithIdempotencyKey(key string) InvokeOption {
	return func(r *sabotv1.InvokeRequest) { r.IdempotencyKey = key }
}

// WithJob names the job hosting the function. Default: the one running
// job whose graph runs it (the gateway refuses when several do).
func WithJob(jobID string) InvokeOption {
	return func(r *sabotv1.InvokeRequest) { r.JobId = jobID }
}

// Uncommitted asks for the reply as soon as the function has run, before
// the checkpoint holding its effect completes: faster, but a worker crash
// before that checkpoint undoes the effect, so the caller must retry with
// the same idempotency key until it gets a committed reply to be sure of
// it. Default: the reply waits for the checkpoint.
func Uncommitted() InvokeOption {
	return func(r *sabotv1.InvokeRequest) { r.Uncommitted = true }
}

// InvokeReply is a function's reply with how it was obtained.
type InvokeReply struct {
	// Payload is what the function replied.
	Payload []byte
	// Replayed: the reply was stored by an earlier request with the same
	// idempotency key; this request had no effect of its own.
	Replayed bool
	// Committed: the effect is in a completed checkpoint.
	Committed bool
}

// Invoke sends payload to the instance (function, key) and returns its
// reply. The gateway routes it to the worker owning the key and waits,
// within ctx's deadline (30 s without one), while the job restarts or
// rescales. Invoke does not retry by itself.
func (c *Client) Invoke(ctx context.Context, function, key string, payload []byte, opts ...InvokeOption) ([]byte, error) {
	r, err := c.InvokeResult(ctx, function, key, payload, opts...)
	if err != nil {
		return nil, err
	}
	return r.Payload, nil
}

// InvokeResult is Invoke returning whether the reply was replayed and
// committed.
func (c *Client) InvokeResult(ctx context.Context, function, key string, payload []byte, opts ...InvokeOption) (*InvokeReply, error) {
	req := &sabotv1.InvokeRequest{Function: function, Key: key, Payload: payload}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.fns.Invoke(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("sabot: invoke %s/%s: %w", function, key, err)
	}
	return &InvokeReply{Payload: resp.Msg.GetPayload(), Replayed: resp.Msg.GetReplayed(), Committed: resp.Msg.GetCommitted()}, nil
}

// DeployOption configures Deploy and DeployURL.
type DeployOption func(*deployConfig)

type deployConfig struct {
	name   string
	limits *sabotv1.FunctionLimits
	noJob  bool
}

// DeployNoJob registers the function without starting its own job when
// no job runs it yet: a pipeline deployed next will run it.
func DeployNoJob() DeployOption {
	return func(c *deployConfig) { c.noJob = true }
}

// WithFunctionName picks the function to deploy from a program that
// declares several. Default: the program's only function (a program
// declaring several without a name is refused).
func WithFunctionName(name string) DeployOption {
	return func(c *deployConfig) { c.name = name }
}

// DeployLimits sets the function's per-call limits. Default: the
// gateway's defaults (10 s per call, 256 invocations per call).
func DeployLimits(l *sabotv1.FunctionLimits) DeployOption {
	return func(c *deployConfig) { c.limits = l }
}

// deployMaxArtifact is the largest artifact UploadArtifact takes.
const deployMaxArtifact = 256 << 20

// deployDescribeTimeout bounds the run of a built program that describes
// its functions, when ctx has no earlier deadline.
const deployDescribeTimeout = 30 * time.Second

// DeployBuildError is a failed build of the package Deploy was given; its
// message carries the compiler's output.
type DeployBuildError struct {
	// Dir is the package's directory.
	Dir string
	// Output is what the go command printed.
	Output string
	// Err is the go command's exit error.
	Err error
}

func (e *DeployBuildError) Error() string {
	return fmt.Sprintf("sabot: deploy: building %s failed (%v):\n%s", e.Dir, e.Err, strings.TrimRight(e.Output, "\n"))
}

func (e *DeployBuildError) Unwrap() error { return e.Err }

// Deploy builds the Go main package in dir as a Linux executable for this
// machine's architecture (go build -trimpath, CGO_ENABLED=0), runs it once
// with SABOT_FUNCTION_DESCRIBE=1 to learn the functions it declares (built
// again for this system when it is not Linux), uploads it as an artifact
// and registers the function (see WithFunctionName). Jobs running the
// function pick up the new version through a restart that keeps their
// state; a function no job runs gets a job of its own. It returns the
// registration as stored, with its new version.
//
// A failed build is a *DeployBuildError showing the compiler's output.
func (c *Client) Deploy(ctx context.Context, dir string, opts ...DeployOption) (*sabotv1.Function, error) {
	cfg := deployOptions(opts)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sabot: deploy: %s is not a directory holding a Go main package", dir)
	}
	tmp, err := os.MkdirTemp("", "sabot-deploy-")
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	bin := filepath.Join(tmp, "function")
	if err := c.deployBuild(ctx, dir, bin, "linux", runtime.GOARCH); err != nil {
		return nil, err
	}
	describer := bin
	if runtime.GOOS != "linux" {
		describer = filepath.Join(tmp, "describe")
		if err := c.deployBuild(ctx, dir, describer, runtime.GOOS, runtime.GOARCH); err != nil {
			return nil, err
		}
	}
	desc, err := deployDescribe(ctx, describer)
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: %w", dir, err)
	}
	spec, err := deployPick(desc, cfg.name)
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: %w", dir, err)
	}

	content, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy: %w", err)
	}
	if len(content) > deployMaxArtifact {
		return nil, fmt.Errorf("sabot: deploy %s: the executable has %d bytes, more than the %d an artifact may have", dir, len(content), deployMaxArtifact)
	}
	sum := sha256.Sum256(content)
	up, err := c.fns.UploadArtifact(ctx, connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: hex.EncodeToString(sum[:]), Content: content}))
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: upload: %w", spec.GetName(), err)
	}
	return c.deployFunction(ctx, &sabotv1.Function{
		Spec:   spec,
		Source: &sabotv1.Function_Artifact{Artifact: up.Msg.GetArtifact()},
		Limits: cfg.limits,
	}, cfg.noJob)
}

// DeployURL registers the function name served by a function process at
// url (the function protocol over HTTP/2; h2c for http://), after asking
// it (Describe) what it declares. An empty name picks the process's only
// function.
func (c *Client) DeployURL(ctx context.Context, url, name string, opts ...DeployOption) (*sabotv1.Function, error) {
	cfg := deployOptions(opts)
	if name != "" {
		cfg.name = name
	}
	desc, err := sabotv1connect.NewFunctionProcessServiceClient(c.hc, strings.TrimRight(url, "/")).
		Describe(ctx, connect.NewRequest(&sabotv1.DescribeRequest{}))
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: describe: %w", url, err)
	}
	spec, err := deployPick(desc.Msg, cfg.name)
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: %w", url, err)
	}
	return c.deployFunction(ctx, &sabotv1.Function{Spec: spec, Source: &sabotv1.Function_Url{Url: url}, Limits: cfg.limits}, cfg.noJob)
}

func deployOptions(opts []DeployOption) deployConfig {
	var cfg deployConfig
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func (c *Client) deployFunction(ctx context.Context, f *sabotv1.Function, noJob bool) (*sabotv1.Function, error) {
	resp, err := c.fns.DeployFunction(ctx, connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: f, NoJob: noJob}))
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy %s: %w", f.GetSpec().GetName(), err)
	}
	return resp.Msg.GetFunction(), nil
}

// deployBuild builds the main package in dir into out for goos/goarch.
func (c *Client) deployBuild(ctx context.Context, dir, out, goos, goarch string) error {
	cmd := exec.CommandContext(ctx, c.goc, "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return &DeployBuildError{Dir: dir, Output: string(output), Err: err}
	}
	// For a package that is not main, go build -o writes an archive.
	if head, err := deployReadHead(out, 8); err != nil || string(head) == "!<arch>\n" {
		return &DeployBuildError{Dir: dir, Output: string(output), Err: errors.New("no executable was built: the package is not a main package")}
	}
	return nil
}

// deployReadHead reads the first n bytes of a file.
func deployReadHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, n)
	m, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return head[:m], nil
}

// deployDescribe runs a built function program with
// SABOT_FUNCTION_DESCRIBE=1 and decodes the DescribeResponse it prints.
func deployDescribe(ctx context.Context, bin string) (*sabotv1.DescribeResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, deployDescribeTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), EnvDescribe+"=1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("describing its functions (running it with %s=1) failed: %w%s", EnvDescribe, err, deployIndent(stderr.String()))
	}
	desc := new(sabotv1.DescribeResponse)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(bytes.TrimSpace(stdout.Bytes()), desc); err != nil {
		return nil, fmt.Errorf("with %s=1 it printed no DescribeResponse (does its main call sabot.Serve?): %w", EnvDescribe, err)
	}
	return desc, nil
}

// deployPick chooses the function to deploy from what a program or
// process declares.
func deployPick(desc *sabotv1.DescribeResponse, name string) (*sabotv1.FunctionSpec, error) {
	names := make([]string, 0, len(desc.GetFunctions()))
	for _, f := range desc.GetFunctions() {
		if name != "" && f.GetName() == name {
			return f, nil
		}
		names = append(names, f.GetName())
	}
	slices.Sort(names)
	switch {
	case len(names) == 0:
		return nil, errors.New("it declares no function")
	case name != "":
		return nil, fmt.Errorf("it declares no function %q (it declares %s)", name, strings.Join(names, ", "))
	case len(names) > 1:
		return nil, fmt.Errorf("it declares functions %s: name the one to deploy (WithFunctionName, sabot deploy --name)", strings.Join(names, ", "))
	default:
		return desc.GetFunctions()[0], nil
	}
}

func deployIndent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// GetFunction returns a function's registration.
func (c *Client) GetFunction(ctx context.Context, name string) (*sabotv1.Function, error) {
	resp, err := c.fns.GetFunction(ctx, connect.NewRequest(&sabotv1.GetFunctionRequest{Name: name}))
	if err != nil {
		return nil, fmt.Errorf("sabot: get function %s: %w", name, err)
	}
	return resp.Msg.GetFunction(), nil
}

// ListFunctions returns every registered function, by name.
func (c *Client) ListFunctions(ctx context.Context) ([]*sabotv1.Function, error) {
	resp, err := c.fns.ListFunctions(ctx, connect.NewRequest(&sabotv1.ListFunctionsRequest{}))
	if err != nil {
		return nil, fmt.Errorf("sabot: list functions: %w", err)
	}
	return resp.Msg.GetFunctions(), nil
}

// DeployJob deploys a job spec (as `sabot deploy -f` does with a
// manifest). Function steps without a registration get the registry's.
func (c *Client) DeployJob(ctx context.Context, spec *sabotv1.JobSpec) (*sabotv1.Job, error) {
	resp, err := c.jobs.DeployJob(ctx, connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		return nil, fmt.Errorf("sabot: deploy job %s: %w", spec.GetName(), err)
	}
	return resp.Msg.GetJob(), nil
}

// GetJob returns a job: its spec and status.
func (c *Client) GetJob(ctx context.Context, jobID string) (*sabotv1.Job, error) {
	resp, err := c.jobs.GetJob(ctx, connect.NewRequest(&sabotv1.GetJobRequest{JobId: jobID}))
	if err != nil {
		return nil, fmt.Errorf("sabot: get job %s: %w", jobID, err)
	}
	return resp.Msg.GetJob(), nil
}

// ListJobs returns every job, newest first (all pages).
func (c *Client) ListJobs(ctx context.Context) ([]*sabotv1.Job, error) {
	var jobs []*sabotv1.Job
	token := ""
	for {
		resp, err := c.jobs.ListJobs(ctx, connect.NewRequest(&sabotv1.ListJobsRequest{PageToken: token}))
		if err != nil {
			return nil, fmt.Errorf("sabot: list jobs: %w", err)
		}
		jobs = append(jobs, resp.Msg.GetJobs()...)
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return jobs, nil
		}
	}
}

// CancelJob cancels a job without a savepoint and returns it as it stands.
func (c *Client) CancelJob(ctx context.Context, jobID string) (*sabotv1.Job, error) {
	resp, err := c.jobs.CancelJob(ctx, connect.NewRequest(&sabotv1.CancelJobRequest{JobId: jobID}))
	if err != nil {
		return nil, fmt.Errorf("sabot: cancel job %s: %w", jobID, err)
	}
	return resp.Msg.GetJob(), nil
}

// TriggerSavepoint asks for a savepoint of a running job (with req.Stop,
// one that stops it) and returns the request; poll GetSavepoint for its
// outcome.
func (c *Client) TriggerSavepoint(ctx context.Context, req *sabotv1.TriggerSavepointRequest) (*sabotv1.SavepointRequest, error) {
	resp, err := c.jobs.TriggerSavepoint(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("sabot: savepoint of job %s: %w", req.GetJobId(), err)
	}
	return resp.Msg.GetSavepoint(), nil
}

// GetSavepoint returns a savepoint request as it stands.
func (c *Client) GetSavepoint(ctx context.Context, jobID, requestID string) (*sabotv1.SavepointRequest, error) {
	resp, err := c.jobs.GetSavepoint(ctx, connect.NewRequest(&sabotv1.GetSavepointRequest{JobId: jobID, RequestId: requestID}))
	if err != nil {
		return nil, fmt.Errorf("sabot: get savepoint %s of job %s: %w", requestID, jobID, err)
	}
	return resp.Msg.GetSavepoint(), nil
}

package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/invoke"
)

// Function jobs: what DeployFunction deploys for a function no job runs.
const (
	// FunctionLabel labels a function's own job with the function's name.
	FunctionLabel = "sabot.function"
	// invocationsVertex is the id of a function job's InvocationSource.
	invocationsVertex = "invocations"
	// functionCheckpointInterval is a function job's checkpoint interval:
	// short, because a committed Invoke reply waits for the checkpoint
	// holding its effect.
	functionCheckpointInterval = 250 * time.Millisecond
	// redeployCause is Rescale.cause of a function redeploy.
	redeployCause = "redeploy"
)

// artifactReadMaxBytes bounds a FunctionService request: the largest
// artifact UploadArtifactRequest allows (256 MiB, its content's max_len)
// plus room for the message's framing and hash, so that an artifact of
// exactly the limit is accepted.
const artifactReadMaxBytes = 256<<20 + 64<<10

// functionService serves FunctionService: the registry (UploadArtifact,
// DeployFunction, GetFunction, ListFunctions) here, Invoke in invoke.go.
type functionService struct {
	cfg       Config
	jobs      *jobService // the deploy path function jobs go through
	validator protovalidate.Validator
	router    *invoke.Router
}

// UploadArtifact stores content under artifacts/<sha256> in the blob
// store, once: an artifact already stored is not written again.
//
// Refused: a gateway without a blob store (FailedPrecondition); content
// whose SHA-256 is not the request's (InvalidArgument, naming both).
func (s *functionService) UploadArtifact(ctx context.Context, req *connect.Request[sabotv1.UploadArtifactRequest]) (*connect.Response[sabotv1.UploadArtifactResponse], error) {
	if s.cfg.Blob == nil {
		return nil, errNoBlobStore()
	}
	content := req.Msg.GetContent()
	sum := sha256.Sum256(content)
	if got, want := hex.EncodeToString(sum[:]), req.Msg.GetSha256(); got != want {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"sha256: the request says %s but its %d bytes of content hash to %s; the upload was damaged or the hash computed over other bytes", want, len(content), got))
	}
	key := blob.ArtifactKey(sum)
	exists, err := s.cfg.Blob.Exists(ctx, key)
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "UploadArtifact", fmt.Errorf("stat artifact: %w", err))
	}
	if !exists {
		// Objects are immutable: a concurrent upload of the same content
		// that won the race stored the same bytes.
		err := s.cfg.Blob.Put(ctx, key, bytes.NewReader(content), int64(len(content)))
		if err != nil && !errors.Is(err, blob.ErrExists) {
			return nil, toConnect(s.cfg.Logger, "UploadArtifact", fmt.Errorf("store artifact: %w", err))
		}
		s.cfg.Logger.Info("artifact stored", "key", key, "bytes", len(content))
	}
	return connect.NewResponse(&sabotv1.UploadArtifactResponse{
		Artifact: &sabotv1.Artifact{Sha256: req.Msg.GetSha256(), Size: int64(len(content))},
	}), nil
}

func errNoBlobStore() error {
	return connect.NewError(connect.CodeFailedPrecondition, errors.New(
		"this gateway has no blob store, where function artifacts are kept for workers to run: start it with the workers' store (sabot gateway --blob-store URL), or deploy the function by URL"))
}

// DeployFunction stores a new version of a function's registration, and
// in the same etcd transaction either redeploys it in every job running it
// or, when none does, deploys the function's own job:
//
//   - a job that runs the function (a FunctionStep with its name) and is
//     not ending (not terminal, not CANCELING) gets a redeploy request:
//     status.rescale with function set to the new registration and cause
//     "redeploy", which the scheduler performs as it does a rescale (stop
//     with a savepoint, cluster.RescaledSpec swaps FunctionStep.function,
//     restart from the savepoint: state is kept). A job not yet placed
//     (CREATED, attempt 0) has the registration swapped in its spec
//     directly. A job with a rescale in progress has the function join
//     that rescale.
//   - otherwise the function's own job is deployed through DeployJob's
//     checks: name = the function's, parallelism 1, exactly-once
//     checkpoints every 250 ms, graph invocations (InvocationSource) →
//     hash by key → <name> (FunctionStep), labelled sabot.function=<name>.
//
// Refused, with nothing written: no spec (InvalidArgument); a URL that is
// not http(s) (InvalidArgument); an artifact missing from the blob store
// or of another size (NotFound, InvalidArgument); a gateway without a blob
// store for an artifact (FailedPrecondition); a job running the function
// that cannot be redeployed now: one without checkpointing, or one being
// redeployed for another function (FailedPrecondition naming the job).
func (s *functionService) DeployFunction(ctx context.Context, req *connect.Request[sabotv1.DeployFunctionRequest]) (*connect.Response[sabotv1.DeployFunctionResponse], error) {
	f := req.Msg.GetFunction()
	name := f.GetSpec().GetName()
	if f.GetSpec() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("function.spec is required: the function's name and declared state (what its Describe answers)"))
	}
	if err := s.checkSource(ctx, f); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var redeployed []string // of the attempt that committed
	var created *sabotv1.Job
	stored, err := cluster.RegisterFunction(ctx, s.cfg.Etcd, f, now, func(next *sabotv1.Function) ([]clientv3.Cmp, []clientv3.Op, error) {
		redeployed, created = nil, nil
		recs, _, err := cluster.List(ctx, s.cfg.Etcd, cluster.JobsPrefix, cluster.NewJob, cluster.ListOptions{})
		if err != nil {
			return nil, nil, err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, r := range recs {
			job := r.Value
			if !hostsFunction(job, name) {
				continue
			}
			if err := redeploy(job, next, now); err != nil {
				return nil, nil, err
			}
			// The job's record is written as read plus the request: if the
			// scheduler moved it meanwhile, the whole deploy is retried.
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.Key), "=", r.ModRevision))
			ops = append(ops, clientv3.OpPut(r.Key, cluster.Marshal(job)))
			redeployed = append(redeployed, job.GetId())
		}
		if len(ops) > 0 || req.Msg.GetNoJob() {
			return cmps, ops, nil
		}
		job, err := s.newFunctionJob(ctx, next)
		if err != nil {
			return nil, nil, err
		}
		created = job
		key := cluster.JobKey(job.GetId())
		return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key, cluster.Marshal(job))}, nil
	})
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "DeployFunction", err)
	}
	if created != nil {
		s.cfg.Logger.Info("function deployed", "function", name, "version", stored.GetVersion(), "job", created.GetId())
	} else {
		s.cfg.Logger.Info("function redeployed", "function", name, "version", stored.GetVersion(), "jobs", redeployed)
	}
	return connect.NewResponse(&sabotv1.DeployFunctionResponse{Function: stored}), nil
}

// checkSource checks where f's code is: a URL must be http(s); an
// artifact must be in the blob store with the size the registration says.
func (s *functionService) checkSource(ctx context.Context, f *sabotv1.Function) error {
	invalid := func(format string, args ...any) error {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	switch src := f.GetSource().(type) {
	case *sabotv1.Function_Url:
		u, err := url.Parse(src.Url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("function.url %q: expected an http:// or https:// URL of the function process", src.Url)
		}
	case *sabotv1.Function_Artifact:
		if s.cfg.Blob == nil {
			return errNoBlobStore()
		}
		a := src.Artifact
		sum, err := hex.DecodeString(a.GetSha256())
		if err != nil || len(sum) != sha256.Size {
			return invalid("function.artifact.sha256 %q: expected 64 hex digits", a.GetSha256())
		}
		key := blob.ArtifactKey([sha256.Size]byte(sum))
		info, err := s.cfg.Blob.Stat(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf(
				"function.artifact: no artifact with sha256 %s is stored (%s); upload it first (UploadArtifact)", a.GetSha256(), key))
		}
		if err != nil {
			return toConnect(s.cfg.Logger, "DeployFunction", fmt.Errorf("stat artifact: %w", err))
		}
		if info.Size != a.GetSize() {
			return invalid("function.artifact.size: %d, but the stored artifact with sha256 %s has %d bytes", a.GetSize(), a.GetSha256(), info.Size)
		}
	default:
		// The request's rule "function.source" already refuses this.
		return invalid("function: a function needs an artifact or a url")
	}
	return nil
}

// hostsFunction reports whether job runs the function name and will go on
// running: not terminal and not being cancelled.
func hostsFunction(job *sabotv1.Job, name string) bool { return invoke.HostsFunction(job, name) }

// redeploy records on job the switch to the registration f (see
// DeployFunction), or says as FailedPrecondition why job cannot take it
// now.
func redeploy(job *sabotv1.Job, f *sabotv1.Function, now time.Time) error {
	st := job.GetStatus()
	name := f.GetSpec().GetName()
	if st.GetState() == sabotv1.JobState_JOB_STATE_CREATED && st.GetAttempt() == 0 {
		// Never placed: nothing runs the old registration. The scheduler's
		// placement compares the job's revision, so it sees this spec.
		job.Spec = cluster.RescaledSpec(job.GetSpec(), &sabotv1.Rescale{Function: f})
		st.UpdatedAt = timestamppb.New(now)
		return nil
	}
	if job.GetSpec().GetCheckpointing() == nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"job %s (%s) runs function %s but has no checkpointing: a redeploy stops the job with a savepoint and restarts it from there; cancel the job and deploy it again to run the new version",
			job.GetId(), job.GetSpec().GetName(), name))
	}
	if r := st.GetRescale(); r != nil {
		if other := r.GetFunction().GetSpec().GetName(); other != "" && other != name {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"job %s (%s) is being redeployed for function %s since %s; deploy %s again once that completes",
				job.GetId(), job.GetSpec().GetName(), other, r.GetRequestedAt().AsTime().UTC().Format(time.RFC3339), name))
		}
		// Join the rescale in progress: the scheduler reads status.rescale
		// when it restarts the job, so the new registration goes with it.
		r.Function = f
	} else {
		st.Rescale = &sabotv1.Rescale{Cause: redeployCause, RequestedAt: timestamppb.New(now), Function: f}
	}
	st.UpdatedAt = timestamppb.New(now)
	return nil
}

// FunctionJobSpec is the spec of a function's own job (see DeployFunction).
func FunctionJobSpec(f *sabotv1.Function) *sabotv1.JobSpec {
	name := f.GetSpec().GetName()
	return &sabotv1.JobSpec{
		Name:        name,
		Parallelism: 1,
		Labels:      map[string]string{FunctionLabel: name},
		Checkpointing: &sabotv1.Checkpointing{
			IntervalMs: functionCheckpointInterval.Milliseconds(),
			Mode:       sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE,
		},
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: invocationsVertex, Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Invocations{Invocations: &sabotv1.InvocationSource{}}}},
				{Id: name, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: &sabotv1.FunctionStep{
					Name: name, Function: proto.Clone(f).(*sabotv1.Function),
				}}}},
			},
			Edges: []*sabotv1.Edge{{
				From: invocationsVertex, To: name,
				Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"key"},
			}},
		},
	}
}

// newFunctionJob builds the record of f's own job and checks it as
// DeployJob checks a request: its protovalidate rules, then the rest of
// the deploy path.
func (s *functionService) newFunctionJob(ctx context.Context, f *sabotv1.Function) (*sabotv1.Job, error) {
	spec := FunctionJobSpec(f)
	if err := s.validator.Validate(&sabotv1.DeployJobRequest{Spec: spec}); err != nil {
		return nil, fmt.Errorf("function %s: its job: %w", f.GetSpec().GetName(), validationError(err))
	}
	return s.jobs.newJob(ctx, spec)
}

// fillFunctions sets FunctionStep.function of every step of spec that has
// none to the registry's registration of its function. A function that is
// not registered is NotFound, naming the step.
func (s *jobService) fillFunctions(ctx context.Context, spec *sabotv1.JobSpec) error {
	regs := map[string]*sabotv1.Function{}
	var missing []string
	for i, v := range spec.GetGraph().GetVertices() {
		step := v.GetOperator().GetFunction()
		if step == nil || step.GetFunction() != nil {
			continue
		}
		name := step.GetName()
		f, ok := regs[name]
		if !ok {
			rec, err := cluster.Get(ctx, s.cfg.Etcd, cluster.FunctionKey(name), cluster.NewFunction)
			switch {
			case cluster.IsNotFound(err):
			case err != nil:
				return toConnect(s.cfg.Logger, "DeployJob", err)
			default:
				f = rec.Value
			}
			regs[name] = f
		}
		if f == nil {
			missing = append(missing, fmt.Sprintf("spec.graph.vertices[%d] (%s): function %q is not registered", i, v.GetId(), name))
			continue
		}
		step.Function = proto.Clone(f).(*sabotv1.Function)
	}
	if len(missing) > 0 {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s; deploy it first (sabot deploy DIR or --url)", strings.Join(missing, "; ")))
	}
	return nil
}

// GetFunction returns one registration.
func (s *functionService) GetFunction(ctx context.Context, req *connect.Request[sabotv1.GetFunctionRequest]) (*connect.Response[sabotv1.GetFunctionResponse], error) {
	name := req.Msg.GetName()
	rec, err := cluster.Get(ctx, s.cfg.Etcd, cluster.FunctionKey(name), cluster.NewFunction)
	if cluster.IsNotFound(err) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("function %q is not registered", name))
	}
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "GetFunction", err)
	}
	return connect.NewResponse(&sabotv1.GetFunctionResponse{Function: rec.Value}), nil
}

// ListFunctions returns every registration, by name.
func (s *functionService) ListFunctions(ctx context.Context, _ *connect.Request[sabotv1.ListFunctionsRequest]) (*connect.Response[sabotv1.ListFunctionsResponse], error) {
	recs, _, err := cluster.List(ctx, s.cfg.Etcd, cluster.FunctionsPrefix, cluster.NewFunction, cluster.ListOptions{})
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "ListFunctions", err)
	}
	out := &sabotv1.ListFunctionsResponse{Functions: make([]*sabotv1.Function, 0, len(recs))}
	for _, r := range recs {
		out.Functions = append(out.Functions, r.Value)
	}
	// Key order is name order already; the sort keeps the promise.
	slices.SortFunc(out.Functions, func(a, b *sabotv1.Function) int {
		return strings.Compare(a.GetSpec().GetName(), b.GetSpec().GetName())
	})
	return connect.NewResponse(out), nil
}

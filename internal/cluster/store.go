package cluster

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Versioned is a record read from etcd with the mod revision to
// compare-and-swap against.
type Versioned[T proto.Message] struct {
	Key         string
	Value       T
	ModRevision int64
}

// Get reads one record into a new T. It returns ErrNotFound if the key is
// absent.
func Get[T proto.Message](ctx context.Context, kv clientv3.KV, key string, newT func() T) (Versioned[T], error) {
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return Versioned[T]{}, fmt.Errorf("cluster: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Versioned[T]{}, fmt.Errorf("cluster: %s: %w", key, ErrNotFound)
	}
	return decode(resp.Kvs[0].Key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision, newT)
}

// List reads every record under prefix, in key order (or descending key
// order if desc), at most limit records (0 = all) starting at from (inclusive;
// "" = the start of the range in that order).
func List[T proto.Message](ctx context.Context, kv clientv3.KV, prefix string, newT func() T, opts ListOptions) ([]Versioned[T], int64, error) {
	// The range is [key, end): the whole prefix, narrowed at one side by From.
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	ops := []clientv3.OpOption{}
	switch {
	case opts.From != "" && opts.Descending:
		end = opts.From + "\x00" // keys up to and including From
	case opts.From != "":
		key = opts.From
	}
	ops = append(ops, clientv3.WithRange(end))
	if opts.Descending {
		ops = append(ops, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	}
	if opts.Limit > 0 {
		ops = append(ops, clientv3.WithLimit(int64(opts.Limit)))
	}
	resp, err := kv.Get(ctx, key, ops...)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: list %s: %w", prefix, err)
	}
	out := make([]Versioned[T], 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := decode(kv.Key, kv.Value, kv.ModRevision, newT)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v)
	}
	return out, resp.Header.Revision, nil
}

// ListOptions bounds a List.
type ListOptions struct {
	Limit      int
	Descending bool
	From       string
}

func decode[T proto.Message](key, val []byte, rev int64, newT func() T) (Versioned[T], error) {
	v := newT()
	if err := proto.Unmarshal(val, v); err != nil {
		return Versioned[T]{}, fmt.Errorf("cluster: decode %s: %w", key, err)
	}
	return Versioned[T]{Key: string(key), Value: v, ModRevision: rev}, nil
}

// Marshal encodes a record for a Put. Marshalling our own generated messages
// cannot fail short of a bug, so a failure panics.
func Marshal(m proto.Message) string {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("cluster: marshal %T: %v", m, err))
	}
	return string(b)
}

// NewJob allocates a job record for Get and List.
func NewJob() *sabotv1.Job { return new(sabotv1.Job) }

// NewWorker allocates a worker registration for Get and List.
func NewWorker() *clusterv1.Worker { return new(clusterv1.Worker) }

// NewAssignment allocates an assignment for Get and List.
func NewAssignment() *clusterv1.Assignment { return new(clusterv1.Assignment) }

// NewReport allocates a task report for Get and List.
func NewReport() *clusterv1.TaskReport { return new(clusterv1.TaskReport) }

// UpdateJob applies fn to the job's current record and writes the result if
// the record did not change meanwhile, retrying a bounded number of times on
// a conflict. fn returns false to leave the record as it is. extra
// comparisons (e.g. leadership) and operations (e.g. writing an assignment)
// are added to the same transaction. It returns the record as stored after
// the call.
func UpdateJob(ctx context.Context, kv clientv3.KV, jobID string, fn func(*sabotv1.Job) (bool, error), extraCmp []clientv3.Cmp, extraOps func(*sabotv1.Job) []clientv3.Op) (*sabotv1.Job, error) {
	const maxAttempts = 8
	key := JobKey(jobID)
	for range maxAttempts {
		cur, err := Get(ctx, kv, key, NewJob)
		if err != nil {
			return nil, err
		}
		job := cur.Value
		changed, err := fn(job)
		if err != nil || !changed {
			return job, err
		}
		ops := []clientv3.Op{clientv3.OpPut(key, Marshal(job))}
		if extraOps != nil {
			ops = append(ops, extraOps(job)...)
		}
		cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)}, extraCmp...)
		resp, err := kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("cluster: update job %s: %w", jobID, err)
		}
		if resp.Succeeded {
			return job, nil
		}
		if len(extraCmp) > 0 {
			// Find out whether our own precondition failed rather than the
			// record changing: then retrying is pointless.
			check, err := kv.Txn(ctx).If(extraCmp...).Commit()
			if err != nil {
				return nil, fmt.Errorf("cluster: update job %s: %w", jobID, err)
			}
			if !check.Succeeded {
				return nil, fmt.Errorf("cluster: update job %s: %w", jobID, ErrPrecondition)
			}
		}
	}
	return nil, fmt.Errorf("cluster: update job %s: %w", jobID, ErrConflict)
}

// IsTerminal reports whether a job in state s will never run again.
func IsTerminal(s sabotv1.JobState) bool {
	switch s {
	case sabotv1.JobState_JOB_STATE_FINISHED, sabotv1.JobState_JOB_STATE_CANCELED, sabotv1.JobState_JOB_STATE_FAILED:
		return true
	default:
		return false
	}
}

// IsNotFound reports whether err means a record was absent.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Root is the prefix of every key Sabot writes.
const Root = "/sabot/v1/"

// Key prefixes.
const (
	JobsPrefix        = Root + "jobs/"
	WorkersPrefix     = Root + "workers/"
	AssignmentsPrefix = Root + "assignments/"
	ReportsPrefix     = Root + "reports/"
	ElectionPrefix    = Root + "scheduler/election"
)

// JobKey is the key of a job record.
func JobKey(jobID string) string { return JobsPrefix + jobID }

// WorkerKey is the key of a worker registration.
func WorkerKey(workerID string) string { return WorkersPrefix + workerID }

// WorkerAssignmentsPrefix is the prefix a worker watches for its assignments.
func WorkerAssignmentsPrefix(workerID string) string {
	return AssignmentsPrefix + workerID + "/"
}

// AssignmentKey is the key of one job's assignment to one worker.
func AssignmentKey(workerID, jobID string) string {
	return WorkerAssignmentsPrefix(workerID) + jobID
}

// JobReportsPrefix is the prefix of every worker's report on a job.
func JobReportsPrefix(jobID string) string { return ReportsPrefix + jobID + "/" }

// ReportKey is the key of one worker's report on one job.
func ReportKey(jobID, workerID string) string { return JobReportsPrefix(jobID) + workerID }

// ParseAssignmentKey splits an assignment key into worker and job ids.
func ParseAssignmentKey(key string) (workerID, jobID string, err error) {
	rest, ok := strings.CutPrefix(key, AssignmentsPrefix)
	if !ok {
		return "", "", fmt.Errorf("cluster: %q is not an assignment key", key)
	}
	workerID, jobID, ok = strings.Cut(rest, "/")
	if !ok || workerID == "" || jobID == "" {
		return "", "", fmt.Errorf("cluster: malformed assignment key %q", key)
	}
	return workerID, jobID, nil
}

// NewJobID returns a new job id: 12 hex digits of milliseconds since the
// epoch, then 8 random hex digits. Ids sort by creation time.
func NewJobID(now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never returns an error
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(r[:]))
}

// NewWorkerID returns a new worker id, unique per worker process start: a
// restarted worker is a new worker, as a restarted TaskManager is in Flink.
func NewWorkerID(prefix string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	if prefix == "" {
		prefix = "worker"
	}
	return prefix + "-" + hex.EncodeToString(r[:])
}

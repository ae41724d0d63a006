package blob

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// Layout of the blob store shared by every Sabot component. Keys are built
// only through these helpers, so that the checkpoint coordinator, the
// workers, savepoint tooling and garbage collection agree on where things
// are. Names passed in (job IDs, savepoint IDs, file names) must each be a
// single key segment; check untrusted ones with CheckName.
//
//	jobs/<job>/chk-<n>/_metadata    a checkpoint's metadata; written last, it
//	                                 marks the checkpoint complete in the blob store
//	jobs/<job>/chk-<n>/<file>       state files owned by that checkpoint alone
//	jobs/<job>/shared/<file>        state files shared by several checkpoints
//	                                 (incremental pebble SSTs), reference-counted
//	savepoints/<id>/_metadata       a savepoint's metadata, written last
//	savepoints/<id>/<file>          a savepoint's self-contained state files
//	artifacts/<sha256 hex>          a deployed function artifact, named by the
//	                                 SHA-256 of its content
const (
	JobsPrefix       = "jobs/"
	SavepointsPrefix = "savepoints/"
	ArtifactsPrefix  = "artifacts/"
	// MetadataName is the last object written into a checkpoint or
	// savepoint directory.
	MetadataName = "_metadata"
	// SharedDir is the directory of a job's shared state files.
	SharedDir = "shared"
	// checkpointDirPrefix starts a checkpoint's directory name.
	checkpointDirPrefix = "chk-"
)

// JobPrefix returns "jobs/<job>/": everything a job has stored.
func JobPrefix(job string) string { return JobsPrefix + job + "/" }

// CheckpointPrefix returns "jobs/<job>/chk-<n>/". Checkpoint numbers are not
// zero-padded (as in Flink), so a listing sorts chk-10 before chk-9; use
// ParseCheckpointKey to order them.
func CheckpointPrefix(job string, n int64) string {
	return JobPrefix(job) + checkpointDirPrefix + strconv.FormatInt(n, 10) + "/"
}

// CheckpointKey returns "jobs/<job>/chk-<n>/<name>", a state file owned by
// one checkpoint.
func CheckpointKey(job string, n int64, name string) string {
	return CheckpointPrefix(job, n) + name
}

// CheckpointMetadataKey returns "jobs/<job>/chk-<n>/_metadata".
func CheckpointMetadataKey(job string, n int64) string {
	return CheckpointKey(job, n, MetadataName)
}

// SharedPrefix returns "jobs/<job>/shared/".
func SharedPrefix(job string) string { return JobPrefix(job) + SharedDir + "/" }

// SharedKey returns "jobs/<job>/shared/<name>", a state file that several
// checkpoints of the job may reference.
func SharedKey(job, name string) string { return SharedPrefix(job) + name }

// SavepointPrefix returns "savepoints/<id>/".
func SavepointPrefix(id string) string { return SavepointsPrefix + id + "/" }

// SavepointKey returns "savepoints/<id>/<name>".
func SavepointKey(id, name string) string { return SavepointPrefix(id) + name }

// SavepointMetadataKey returns "savepoints/<id>/_metadata".
func SavepointMetadataKey(id string) string { return SavepointKey(id, MetadataName) }

// ArtifactKey returns "artifacts/<hex>" for an artifact whose content has
// the given SHA-256. A Put that fails with ErrExists means the same
// artifact is already stored.
func ArtifactKey(sum [32]byte) string { return ArtifactsPrefix + hex.EncodeToString(sum[:]) }

// ParseCheckpointKey splits a key under a checkpoint directory,
// "jobs/<job>/chk-<n>/<name>", into its parts. ok is false for any other
// key (shared files included).
func ParseCheckpointKey(key string) (job string, n int64, name string, ok bool) {
	rest, found := strings.CutPrefix(key, JobsPrefix)
	if !found {
		return "", 0, "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", 0, "", false
	}
	num, found := strings.CutPrefix(parts[1], checkpointDirPrefix)
	if !found {
		return "", 0, "", false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != num {
		return "", 0, "", false
	}
	return parts[0], n, parts[2], true
}

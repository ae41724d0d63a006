package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/connector/jsonrow"
)

// txnFileSink is the JSON-lines file sink of a job with exactly-once
// checkpoints: a two-phase commit over file renames (Flink's FileSink).
// Rows go to a hidden in-progress part file; at a checkpoint barrier it is
// flushed, fsynced and renamed to a hidden pending file, recorded in the
// snapshot; when the checkpoint completes, pending files become visible
// part files, part-<vertex>-<subtask>-<n>.jsonl. On restore, the pending
// files the checkpoint lists are committed (a rename that already happened
// is skipped) and every other hidden file of the subtask — what the failed
// attempt wrote after the checkpoint — is deleted. Readers see only
// committed part files; at the end of a bounded input the last part is
// committed directly.
type txnFileSink struct {
	baseOperator
	dir, base string // base: part-<vertex>-<subtask>
	enc       *jsonrow.Encoder
	f         *os.File
	w         *bufio.Writer
	buf       []byte
	subtask   int
	next      int // number of the next part
	restored  []byte

	mu      sync.Mutex // pending is shared with the coordinator (commit)
	pending []pendingPart
}

type pendingPart struct {
	Checkpoint int64 `json:"checkpoint"`
	Part       int   `json:"part"`
}

// fileSinkState is the snapshot of a txnFileSink.
type fileSinkState struct {
	Next    int           `json:"next"`
	Pending []pendingPart `json:"pending"`
}

func newTxnFileSink(dir string, v *jobgraph.Vertex, info TaskInfo) *txnFileSink {
	return &txnFileSink{dir: dir, base: fmt.Sprintf("part-%s-%d", v.ID, info.Subtask), subtask: info.Subtask,
		enc: jsonrow.NewEncoder(v.InputSchema)}
}

func (s *txnFileSink) final(n int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d.jsonl", s.base, n))
}
func (s *txnFileSink) inProgress(n int) string {
	return filepath.Join(s.dir, fmt.Sprintf(".%s-%d.inprogress", s.base, n))
}
func (s *txnFileSink) pendingName(n int) string {
	return filepath.Join(s.dir, fmt.Sprintf(".%s-%d.pending", s.base, n))
}

func (s *txnFileSink) restoreState(_ context.Context, snaps []*clusterv1.OperatorSnapshot) error {
	for _, sn := range snaps {
		if int(sn.GetSubtask()) == s.subtask {
			s.restored = sn.GetOperatorState()
		}
	}
	return nil
}

// Open commits the restored pending parts and deletes what a failed
// attempt left uncommitted.
func (s *txnFileSink) Open(context.Context) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if len(s.restored) > 0 {
		var st fileSinkState
		if err := json.Unmarshal(s.restored, &st); err != nil {
			return fmt.Errorf("file sink: undecodable state: %w", err)
		}
		s.next, s.pending = st.Next, st.Pending
		if err := s.commit(1<<62 - 1); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+s.base+"-") {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
				return fmt.Errorf("file sink: remove uncommitted %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func (s *txnFileSink) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ Output) error {
	if s.f == nil {
		f, err := os.OpenFile(s.inProgress(s.next), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		s.f, s.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	s.buf = appendJSONLines(s.enc, s.buf[:0], rec)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

// seal flushes, fsyncs and closes the in-progress part and renames it to
// to (pending or final). Without an open part it does nothing.
func (s *txnFileSink) seal(to string) (bool, error) {
	if s.f == nil {
		return false, nil
	}
	f := s.f
	s.f = nil
	err := s.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.inProgress(s.next), to)
	}
	if err != nil {
		return false, fmt.Errorf("file sink: %w", err)
	}
	return true, nil
}

// snapshotState pre-commits: the in-progress part becomes pending under
// checkpoint id.
func (s *txnFileSink) snapshotState(_ context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	sealed, err := s.seal(s.pendingName(s.next))
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if sealed {
		s.pending = append(s.pending, pendingPart{Checkpoint: id, Part: s.next})
		s.next++
	}
	b, err := json.Marshal(fileSinkState{Next: s.next, Pending: s.pending})
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	return &clusterv1.OperatorSnapshot{OperatorState: b}, nil, nil
}

// checkpointComplete commits the parts of checkpoints up to id.
func (s *txnFileSink) checkpointComplete(_ context.Context, id int64) error {
	return s.commit(id)
}

func (s *txnFileSink) commit(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.Checkpoint > id {
			keep = append(keep, p)
			continue
		}
		err := os.Rename(s.pendingName(p.Part), s.final(p.Part))
		if err != nil && (!errors.Is(err, os.ErrNotExist) || !exists(s.final(p.Part))) {
			return fmt.Errorf("file sink: commit part %d: %w", p.Part, err)
		}
	}
	s.pending = keep
	return syncDir(s.dir)
}

// Finish commits everything directly: a bounded input has ended (as the
// Kafka sink, without waiting for a final checkpoint; a failure between
// this and the job's end restores the latest checkpoint and writes the
// last parts again).
func (s *txnFileSink) Finish(context.Context, Output) error {
	if err := s.commit(1<<62 - 1); err != nil {
		return err
	}
	if _, err := s.seal(s.final(s.next)); err != nil {
		return err
	}
	s.next++
	return syncDir(s.dir)
}

// Close abandons the in-progress part (a restore deletes it).
func (s *txnFileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("file sink: sync %s: %w", dir, err)
	}
	return nil
}

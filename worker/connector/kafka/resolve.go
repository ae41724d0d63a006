package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// baseOpts are the kgo options every client of this package starts from.
func baseOpts(brokers []string, log *slog.Logger) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.WithLogger(kgoLogger{log}),
	}
}

// kgoLogger forwards the kgo client's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelInfo:
		lvl = slog.LevelInfo
	case kgo.LogLevelDebug:
		lvl = slog.LevelDebug
	default:
	}
	k.l.Log(context.Background(), lvl, "kgo: "+msg, keyvals...)
}

// resolve lists this subtask's splits, sorted, and the exact offset each
// starts at.
func resolve(ctx context.Context, cfg SourceConfig) ([]Split, []int64, error) {
	// A short-lived client: the consuming client is created with its
	// partitions already assigned (kgo fixes a client's consumer kind at
	// creation).
	cl, err := kgo.NewClient(append(baseOpts(cfg.Brokers, cfg.Logger), cfg.ClientOpts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: source client: %w", err)
	}
	defer cl.Close()

	all, err := listSplits(ctx, cl, cfg)
	if err != nil {
		return nil, nil, err
	}
	var splits []Split
	for _, sp := range all {
		if splitOwner(sp, cfg.Parallelism) == cfg.Subtask {
			splits = append(splits, sp)
		}
	}
	starts := make([]int64, len(splits))
	var query []Split // splits whose start needs ListOffsets
	for i, sp := range splits {
		if o, ok := cfg.Start.Offsets[sp.Topic][sp.Partition]; ok && cfg.Start.Mode == StartOffsets {
			starts[i] = o
			continue
		}
		query = append(query, sp)
	}
	if len(query) == 0 {
		return splits, starts, nil
	}
	var ts int64
	switch cfg.Start.Mode {
	case StartEarliest, StartOffsets:
		ts = -2
	case StartLatest:
		ts = -1
	case StartTimestamp:
		ts = cfg.Start.TimestampMillis
	}
	got, err := listOffsets(ctx, cl, query, ts, !cfg.ReadUncommitted)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Start.Mode == StartTimestamp {
		// No record at or after the time: start at the end.
		var ends []Split
		for _, sp := range query {
			if got[sp] < 0 {
				ends = append(ends, sp)
			}
		}
		if len(ends) > 0 {
			endOffs, err := listOffsets(ctx, cl, ends, -1, !cfg.ReadUncommitted)
			if err != nil {
				return nil, nil, err
			}
			for sp, o := range endOffs {
				got[sp] = o
			}
		}
	}
	for i, sp := range splits {
		if o, ok := got[sp]; ok {
			starts[i] = o
		}
	}
	return splits, starts, nil
}

// listSplits returns every partition of the configured topics, sorted.
func listSplits(ctx context.Context, cl *kgo.Client, cfg SourceConfig) ([]Split, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range cfg.Topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	// With TopicRegex, req.Topics stays nil: all topics.
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata: %w", err)
	}
	var re *regexp.Regexp
	if cfg.TopicRegex != "" {
		re = regexp.MustCompile(cfg.TopicRegex) // validated
	}
	var splits []Split
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if re != nil && (t.IsInternal || strings.HasPrefix(name, "__") || !re.MatchString(name)) {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
			}
			return nil, fmt.Errorf("kafka: metadata of topic %q: %w", name, err)
		}
		for _, p := range t.Partitions {
			splits = append(splits, Split{Topic: name, Partition: p.Partition})
		}
	}
	if re != nil && len(splits) == 0 {
		return nil, fmt.Errorf("%w: no topic matches /%s/", ErrUnknownTopic, cfg.TopicRegex)
	}
	slices.SortFunc(splits, func(a, b Split) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return splits, nil
}

// listOffsets asks the partition leaders for the offset at ts (-2
// earliest, -1 latest, else the first at or after ts ms; -1 in the result
// when there is none).
func listOffsets(ctx context.Context, cl *kgo.Client, splits []Split, ts int64, readCommitted bool) (map[Split]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if readCommitted {
		req.IsolationLevel = 1
	}
	idx := map[string]int{}
	for _, sp := range splits {
		i, ok := idx[sp.Topic]
		if !ok {
			i = len(req.Topics)
			idx[sp.Topic] = i
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = sp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = sp.Partition
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = ts
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	out := make(map[Split]int64, len(splits))
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			return nil, fmt.Errorf("kafka: list offsets: %w", shard.Err)
		}
		resp := shard.Resp.(*kmsg.ListOffsetsResponse)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("kafka: list offsets of %s/%d: %w", t.Topic, p.Partition, err)
				}
				out[Split{Topic: t.Topic, Partition: p.Partition}] = p.Offset
			}
		}
	}
	for _, sp := range splits {
		if _, ok := out[sp]; !ok {
			return nil, fmt.Errorf("kafka: list offsets: no answer for %v", sp)
		}
	}
	return out, nil
}

// splitOwner is the subtask that reads sp among n, as Flink's
// KafkaSourceEnumerator.getSplitOwner: consecutive partitions of a topic
// go to consecutive subtasks, starting at a topic-dependent subtask.
func splitOwner(sp Split, n int) int {
	start := int((javaStringHash(sp.Topic)*31)&0x7fffffff) % n
	return (start + int(sp.Partition)) % n
}

// javaStringHash is Java's String.hashCode (over UTF-16 code units).
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			h = 31*h + r1
			h = 31*h + r2
			continue
		}
		h = 31*h + r
	}
	return h
}

// CommitGroupOffsets commits offsets (as returned by Offsets) to GroupID,
// for monitoring only: lag dashboards and kafka-consumer-groups see the
// job's progress. Call it after the checkpoint holding these offsets has
// completed, never before. Without GroupID it does nothing.
func (s *Source) CommitGroupOffsets(ctx context.Context, offsets map[string]map[int32]int64) error {
	if s.cfg.GroupID == "" || len(offsets) == 0 {
		return nil
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = s.cfg.GroupID
	req.Generation = -1 // a "simple" commit: no group membership
	for t, ps := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = t
		for p, o := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition = p
			rp.Offset = o
			rp.LeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return fmt.Errorf("kafka: commit group offsets: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("kafka: commit group offsets of %s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// `sabot kafka produce|consume`: JSON lines into and out of a Kafka topic,
// so that a pipeline can be tried against `sabot dev --kafka` with nothing
// but the sabot binary. They are conveniences for trying things, not
// tools for operating Kafka.

// defaultKafkaBrokers is where `sabot dev --kafka 127.0.0.1:9092` listens.
const defaultKafkaBrokers = "127.0.0.1:9092"

// kafkaDeliveryTimeout bounds how long produce tries to deliver a record:
// an unreachable broker is an error, not a hang.
const kafkaDeliveryTimeout = 30 * time.Second

// maxKafkaLine is the longest input line produce takes.
const maxKafkaLine = 16 << 20

func newKafkaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Create Kafka topics, produce JSON lines to one, print one's records",
		Long: "kafka create-topic, produce and consume create topics and move JSON lines into and out of\n" +
			"them, to try pipelines against \"sabot dev --kafka 127.0.0.1:9092\" (or any Kafka cluster)\n" +
			"without other tools.",
	}
	cmd.AddCommand(newKafkaCreateTopicCmd(), newKafkaProduceCmd(), newKafkaConsumeCmd())
	return cmd
}

func newKafkaCreateTopicCmd() *cobra.Command {
	var (
		brokers     []string
		partitions  int32
		replication int16
	)
	cmd := &cobra.Command{
		Use:   "create-topic TOPIC... [--brokers HOST:PORT,...] [--partitions N] [--replication-factor N]",
		Short: "Create topics (a topic that exists already is left as it is)",
		Long: "Create-topic creates each TOPIC with --partitions partitions and prints one line per topic:\n" +
			"created, or exists (left as it is, whatever its partitions). A Kafka source or sink\n" +
			"needs its topics to exist when the job starts.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions < 1 {
				return fmt.Errorf("kafka create-topic: --partitions %d: must be at least 1", partitions)
			}
			return kafkaCreateTopics(cmd.Context(), brokers, partitions, replication, args, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{defaultKafkaBrokers}, "the Kafka brokers to connect to")
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "partitions of each topic")
	cmd.Flags().Int16Var(&replication, "replication-factor", -1, "replicas of each partition (-1: the brokers' default)")
	return cmd
}

// kafkaCreateTopics creates topics and reports each one's outcome to out.
func kafkaCreateTopics(ctx context.Context, brokers []string, partitions int32, replication int16, topics []string, out io.Writer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaDeliveryTimeout)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(kafkaDeliveryTimeout.Milliseconds())
	for _, name := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, replication
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kafka create-topic: %w", err)
	}
	var errs []error
	for _, t := range resp.Topics {
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil:
			fmt.Fprintf(out, "%s: created, %d partition(s)\n", t.Topic, partitions)
		case errors.Is(err, kerr.TopicAlreadyExists):
			fmt.Fprintf(out, "%s: exists\n", t.Topic)
		default:
			errs = append(errs, fmt.Errorf("kafka create-topic: %s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

func newKafkaProduceCmd() *cobra.Command {
	var (
		brokers  []string
		keyField string
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC [--brokers HOST:PORT,...] [--key-field FIELD] < records.jsonl",
		Short: "Produce JSON lines from stdin to a topic",
		Long: "Produce reads stdin line by line and produces each non-blank line, which must be JSON,\n" +
			"as one record's value to TOPIC (created if the brokers allow it). With --key-field the\n" +
			"record's key is that field of the line's JSON object: a string as is, any other value\n" +
			"as its JSON text. It stops at the first bad line, reports how many records it produced\n" +
			"and exits once the brokers have acknowledged every one.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := kafkaProduce(cmd.Context(), brokers, args[0], keyField, cmd.InOrStdin())
			fmt.Fprintf(cmd.OutOrStdout(), "produced %d records to %s\n", n, args[0])
			return err
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{defaultKafkaBrokers}, "the Kafka brokers to connect to")
	cmd.Flags().StringVar(&keyField, "key-field", "", "take each record's key from this field of its JSON object (default: no key)")
	return cmd
}

// kafkaProduce produces the JSON lines of in to topic and returns how many
// records the brokers acknowledged.
func kafkaProduce(ctx context.Context, brokers []string, topic, keyField string, in io.Reader) (int, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(kafkaDeliveryTimeout),
	)
	if err != nil {
		return 0, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()

	// The brokers acknowledge records asynchronously; the callbacks run on
	// the client's goroutines.
	var mu struct {
		sync.Mutex
		acked int
		err   error // the first failure
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return mu.err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxKafkaLine)
	var readErr error
	for line := 1; sc.Scan(); line++ {
		value := bytes.TrimSpace(sc.Bytes())
		if len(value) == 0 {
			continue
		}
		if failed() != nil {
			break
		}
		rec, err := kafkaRecord(topic, keyField, value)
		if err != nil {
			readErr = fmt.Errorf("kafka produce: stdin line %d: %w", line, err)
			break
		}
		// Produce blocks while the client buffers its maximum of records:
		// a large input is backpressured, not held in memory.
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if mu.err == nil {
					mu.err = err
				}
				return
			}
			mu.acked++
		})
	}
	if err := sc.Err(); err != nil && readErr == nil {
		readErr = fmt.Errorf("kafka produce: stdin: %w", err)
	}
	// Wait for the acknowledgements of what was produced, also after a
	// bad line: the records before it are sent.
	flushErr := cl.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case mu.err != nil:
		return mu.acked, fmt.Errorf("kafka produce: %s: %w", topic, mu.err)
	case readErr != nil:
		return mu.acked, readErr
	case flushErr != nil:
		return mu.acked, fmt.Errorf("kafka produce: %s: %w", topic, flushErr)
	}
	return mu.acked, nil
}

// kafkaRecord makes the record of one input line.
func kafkaRecord(topic, keyField string, value []byte) (*kgo.Record, error) {
	if !json.Valid(value) {
		return nil, errors.New("not JSON")
	}
	// The scanner reuses its buffer: the record needs its own bytes.
	rec := &kgo.Record{Topic: topic, Value: bytes.Clone(value)}
	if keyField == "" {
		return rec, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(value, &obj); err != nil {
		return nil, fmt.Errorf("--key-field %q: the line is not a JSON object", keyField)
	}
	raw, ok := obj[keyField]
	if !ok {
		return nil, fmt.Errorf("--key-field %q: the object has no such field", keyField)
	}
	var key string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &key) == nil {
		rec.Key = []byte(key)
	} else {
		rec.Key = bytes.Clone(raw)
	}
	return rec, nil
}

// kafkaConsumeFlags are consume's flags.
type kafkaConsumeFlags struct {
	brokers       []string
	readCommitted bool
	fromStart     bool
	max           int
	timeout       time.Duration
}

func newKafkaConsumeCmd() *cobra.Command {
	var f kafkaConsumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC [--brokers HOST:PORT,...] [--read-committed] [--from-start] [--max N] [--timeout D]",
		Short: "Print a topic's record values, one per line",
		Long: "Consume prints the values of TOPIC's records, one per line, as they arrive: from now on,\n" +
			"or with --from-start from the beginning of every partition (records of different\n" +
			"partitions interleave). It runs until interrupted, until --max records were printed,\n" +
			"or until --timeout has passed; when --timeout passes before --max records came, it\n" +
			"fails. --read-committed reads with isolation.level=read_committed: only records of\n" +
			"committed transactions, as a consumer of an exactly-once sink must read. It joins no\n" +
			"consumer group and commits no offsets.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.max < 0 {
				return fmt.Errorf("kafka consume: --max %d: must be 0 (no limit) or more", f.max)
			}
			if f.timeout < 0 {
				return fmt.Errorf("kafka consume: --timeout %s: must be 0 (none) or more", f.timeout)
			}
			return kafkaConsume(cmd.Context(), f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringSliceVar(&f.brokers, "brokers", []string{defaultKafkaBrokers}, "the Kafka brokers to connect to")
	cmd.Flags().BoolVar(&f.readCommitted, "read-committed", false, "read only committed transactions' records (isolation.level=read_committed)")
	cmd.Flags().BoolVar(&f.fromStart, "from-start", false, "start at the beginning of the topic instead of its end")
	cmd.Flags().IntVar(&f.max, "max", 0, "stop after this many records (0: no limit)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "stop after this long (0: run until interrupted); an error if --max records have not come by then")
	return cmd
}

// kafkaConsume prints topic's record values to out until ctx ends, f.max
// records were printed or f.timeout passed.
func kafkaConsume(ctx context.Context, f kafkaConsumeFlags, topic string, out, errOut io.Writer) error {
	start := kgo.NewOffset().AtEnd()
	if f.fromStart {
		start = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(f.brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
	}
	if f.readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()

	pollCtx := ctx
	if f.timeout > 0 {
		var cancel context.CancelFunc
		pollCtx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	w := bufio.NewWriter(out)
	n := 0
	for f.max == 0 || n < f.max {
		fetches := cl.PollRecords(pollCtx, f.max-n) // ≤ 0: whatever is buffered
		var fatal error
		fetches.EachError(func(t string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			case errors.As(err, &loss):
				// Informational: the partition was truncated; consuming goes on
				// from where it now starts.
				fmt.Fprintf(errOut, "sabot: kafka consume: %v\n", err)
			case fatal == nil:
				fatal = fmt.Errorf("kafka consume: %s partition %d: %w", t, p, err)
			}
		})
		var werr error
		fetches.EachRecord(func(r *kgo.Record) {
			if werr == nil && (f.max == 0 || n < f.max) {
				// Not append(r.Value, …): the value may share the fetch's
				// buffer with the next record.
				if _, werr = w.Write(r.Value); werr == nil {
					werr = w.WriteByte('\n')
				}
				n++
			}
		})
		if werr == nil {
			werr = w.Flush()
		}
		switch {
		case werr != nil:
			return fmt.Errorf("kafka consume: %w", werr)
		case fatal != nil:
			return fatal
		case ctx.Err() != nil:
			return nil // interrupted: what came is printed
		case pollCtx.Err() != nil:
			if f.max > 0 && n < f.max {
				return fmt.Errorf("kafka consume: %d of %d records from %s within --timeout %s", n, f.max, topic, f.timeout)
			}
			return nil
		}
	}
	return nil
}

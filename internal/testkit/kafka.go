package testkit

import (
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is an in-process kfake cluster started by StartKafka.
type Kafka struct {
	// Cluster is the running kfake cluster: use it for failure injection
	// (ControlKey, Fault), partition moves and topic inspection. Restart
	// replaces it.
	Cluster *kfake.Cluster
	// Addrs are the brokers' "127.0.0.1:port" addresses, for kgo.SeedBrokers.
	// They stay the same across Restart.
	Addrs []string

	opts []kfake.Opt // as given to the first NewCluster, without Ports
}

// KafkaOption configures StartKafka.
type KafkaOption func(*kafkaConfig)

type kafkaConfig struct {
	brokers int
	opts    []kfake.Opt
	dataDir string
}

// WithBrokers sets the number of brokers (default 3): several brokers mean
// partition leaders and transaction coordinators live on different
// connections, as in a real cluster.
func WithBrokers(n int) KafkaOption {
	return func(c *kafkaConfig) { c.brokers = n }
}

// WithTopics creates topics with the given number of partitions at start
// (default none; kgo clients do not auto-create topics unless asked).
func WithTopics(partitions int, names ...string) KafkaOption {
	return func(c *kafkaConfig) {
		c.opts = append(c.opts, kfake.SeedTopics(int32(partitions), names...))
	}
}

// WithDataDir makes the cluster persist its state (topics, records,
// committed offsets, producer and transaction state) under dir and reload
// it on start, so Kafka.Restart keeps the data. Without it the cluster lives
// in memory. kfake saves a consistent state on Close; on a reload after a
// process crash (a kfake run in a child process killed with SIGKILL) it
// aborts the transactions that were open at the crash, like a broker whose
// transaction coordinator times them out.
func WithDataDir(dir string) KafkaOption {
	return func(c *kafkaConfig) { c.dataDir = dir }
}

// WithKfakeOpts passes further kfake options (BrokerConfigs,
// AllowAutoTopicCreation, ...).
func WithKfakeOpts(opts ...kfake.Opt) KafkaOption {
	return func(c *kafkaConfig) { c.opts = append(c.opts, opts...) }
}

// StartKafka starts a kfake cluster on free loopback ports, closed by
// t.Cleanup after every client made with Kafka.Client.
func StartKafka(t testing.TB, opts ...KafkaOption) *Kafka {
	t.Helper()
	cfg := kafkaConfig{brokers: 3}
	for _, o := range opts {
		o(&cfg)
	}
	kopts := append([]kfake.Opt{
		kfake.NumBrokers(cfg.brokers),
		kfake.WithLogger(kfake.BasicLogger(Output(t), kfake.LogLevelWarn)),
	}, cfg.opts...)
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatalf("testkit: start kafka: %v", err)
	}
	k := &Kafka{Cluster: c, Addrs: c.ListenAddrs(), opts: kopts}
	t.Cleanup(func() { k.Cluster.Close() })
	return k
}

// Client returns a kgo client seeded with the cluster's brokers, closed by
// t.Cleanup. The client logs warnings to t's output; opts are applied after
// those defaults, so they may override them.
func (k *Kafka) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.SeedBrokers(k.Addrs...),
		kgo.WithLogger(kgo.BasicLogger(Output(t), kgo.LogLevelWarn, nil)),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("testkit: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Restart closes the cluster and starts it again on the same ports, so
// existing clients reconnect. With WithDataDir the new cluster reloads what
// the old one persisted; without it, it starts empty. Do not use Cluster
// concurrently with Restart. Another process could in principle take a
// port in the instant between close and re-listen; Restart then fails t.
func (k *Kafka) Restart(t testing.TB) {
	t.Helper()
	ports := make([]int, len(k.Addrs))
	for i, a := range k.Addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("testkit: kafka address %q: %v", a, err)
		}
		if ports[i], err = strconv.Atoi(p); err != nil {
			t.Fatalf("testkit: kafka address %q: %v", a, err)
		}
	}
	k.Cluster.Close()
	c, err := kfake.NewCluster(slices.Concat(k.opts, []kfake.Opt{kfake.Ports(ports...)})...)
	if err != nil {
		t.Fatalf("testkit: restart kafka: %v", err)
	}
	k.Cluster = c
}

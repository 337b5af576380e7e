package topic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxRecordBytes is the largest record docshift writes: a 16 MiB MongoDB
// document plus its envelope and Kafka's batch overhead.
const MaxRecordBytes = 20 << 20

// Policies for a document or event whose record would be larger than
// MaxRecordBytes allows (the snapshot's and the producer's --oversize).
const (
	OversizeFail = "fail" // stop with an error that names it
	OversizeDLQ  = "dlq"  // send its key, size and the reason to the dead-letter topic instead
)

// Oversized reports whether a record of this key and value is too large to
// produce: it must leave room in MaxRecordBytes for its batch's overhead and
// headers.
func Oversized(key, value []byte) bool { return len(key)+len(value) > MaxRecordBytes-4096 }

// NewClient connects to Kafka and checks that the cluster answers, so a wrong
// address fails here with an error that names it rather than later in a
// retry loop.
func NewClient(ctx context.Context, cfg Config, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(ClientOpts(cfg, log, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", cfg.Seeds, err)
	}
	if err := Ping(ctx, cfg, cl); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// ClientOpts returns the options every docshift Kafka client uses (seeds,
// timeouts, record size limits, logging) followed by opts, for callers that
// build a client kind NewClient does not, such as a GroupTransactSession.
func ClientOpts(cfg Config, log *slog.Logger, opts ...kgo.Opt) []kgo.Opt {
	codec, _ := cfg.codec() // Validate has named a bad one; none then
	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.SeedList()...),
		kgo.ProducerBatchCompression(codec),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.ProducerBatchMaxBytes(MaxRecordBytes),
		kgo.RecordPartitioner(Partitioner()),
		kgo.FetchMaxPartitionBytes(MaxRecordBytes + 1<<20),
		kgo.FetchMaxBytes(2 * (MaxRecordBytes + 1<<20)),
		kgo.BrokerMaxReadBytes(4 * (MaxRecordBytes + 1<<20)),
	}
	if log != nil {
		base = append(base, kgo.WithLogger(kafkaLogger{log}))
	}
	return append(base, opts...)
}

// Ping checks that the cluster answers within the dial timeout; its error
// names the seeds.
func Ping(ctx context.Context, cfg Config, cl *kgo.Client) error {
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return fmt.Errorf("connecting to Kafka at %s: %w", cfg.Seeds, err)
	}
	return nil
}

// Partitioner places a keyed record as Kafka's Java client does
// (murmur2 of the key, made positive, modulo the partition count), so every
// client agrees on the partition of a document's key.
func Partitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// Records returns the records topic of a collection: <prefix>.<db>.<collection>.
func (c *Config) Records(database, collection string) string {
	return legal(c.Prefix + "." + database + "." + collection)
}

// Schemas returns the schema topic's name. docshift's own topics join the
// prefix with "-", records topics with ".", so that RecordsPattern matches
// records topics only.
func (c *Config) Schemas() string { return c.Prefix + "-schemas" }

// SnapshotTasks returns the snapshot's task topic: one record per chunk to
// read, taken by the snapshot workers' consumer group.
func (c *Config) SnapshotTasks() string { return c.Prefix + "-snapshot-tasks" }

// SnapshotGroup returns the consumer group of the snapshot workers.
func (c *Config) SnapshotGroup() string { return c.Prefix + "-snapshot" }

// State returns the state topic: docshift's checkpoints (snapshot runs,
// chunk plans, finished chunks), compacted, one partition.
func (c *Config) State() string { return c.Prefix + "-state" }

// Streams returns the change-stream checkpoint topic: per stream, the
// resume token of the last change published, written in the transaction
// that published it. Compacted, one partition.
func (c *Config) Streams() string { return c.Prefix + "-streams" }

// EnsureStreams creates the checkpoint topic if it does not exist.
func EnsureStreams(ctx context.Context, cl *kgo.Client, cfg Config) error {
	configs := map[string]*string{"cleanup.policy": ptr("compact")}
	return ensure(ctx, cl, 1, int16(cfg.ReplicationFactor), configs, cfg.Streams())
}

// DLQ returns the dead-letter topic's name: records the consumer could never
// apply, with the reason in their headers.
func (c *Config) DLQ() string { return c.Prefix + "-dlq" }

// RecordsPattern is a regular expression matching every records topic.
func (c *Config) RecordsPattern() string { return "^" + regexp.QuoteMeta(c.Prefix) + `\.` }

// legal replaces characters Kafka does not allow in topic names.
func legal(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, name)
}

// EnsureRecords creates records topics that do not exist yet: compacted, with
// the configured partitions and minimum compaction lag.
func EnsureRecords(ctx context.Context, cl *kgo.Client, cfg Config, names ...string) error {
	configs := map[string]*string{
		"cleanup.policy":        ptr("compact"),
		"min.compaction.lag.ms": ptr(strconv.FormatInt(cfg.MinCompactionLag.Milliseconds(), 10)),
		"max.message.bytes":     ptr(strconv.Itoa(MaxRecordBytes)),
	}
	return ensure(ctx, cl, int32(cfg.Partitions), int16(cfg.ReplicationFactor), configs, names...)
}

// EnsureSchemas creates the schema topic if it does not exist: one partition,
// compacted, so every reader sees every schema in one ordered log.
func EnsureSchemas(ctx context.Context, cl *kgo.Client, cfg Config) error {
	configs := map[string]*string{"cleanup.policy": ptr("compact")}
	return ensure(ctx, cl, 1, int16(cfg.ReplicationFactor), configs, cfg.Schemas())
}

// EnsureSnapshotTasks creates the snapshot's task topic if it does not exist,
// with the given partitions: at most that many workers read chunks at once.
// Tasks are consumed once and need no compaction; they are kept for a week.
func EnsureSnapshotTasks(ctx context.Context, cl *kgo.Client, cfg Config, partitions int) error {
	configs := map[string]*string{"retention.ms": ptr(strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10))}
	return ensure(ctx, cl, int32(partitions), int16(cfg.ReplicationFactor), configs, cfg.SnapshotTasks())
}

// EnsureState creates the state topic if it does not exist: one partition,
// so every reader sees every checkpoint in one ordered log, and compacted,
// so it keeps the latest value of each checkpoint key.
func EnsureState(ctx context.Context, cl *kgo.Client, cfg Config) error {
	configs := map[string]*string{
		"cleanup.policy":    ptr("compact"),
		"max.message.bytes": ptr(strconv.Itoa(MaxRecordBytes)),
	}
	return ensure(ctx, cl, 1, int16(cfg.ReplicationFactor), configs, cfg.State())
}

// EnsureDLQ creates the dead-letter topic if it does not exist: not
// compacted (two bad records of one key are both kept) and never expired, so
// a dead letter stays until someone deals with it.
func EnsureDLQ(ctx context.Context, cl *kgo.Client, cfg Config) error {
	configs := map[string]*string{
		"cleanup.policy":    ptr("delete"),
		"retention.ms":      ptr("-1"),
		"max.message.bytes": ptr(strconv.Itoa(MaxRecordBytes)),
	}
	return ensure(ctx, cl, 1, int16(cfg.ReplicationFactor), configs, cfg.DLQ())
}

// Ensurer creates one of docshift's topics if it does not exist.
type Ensurer func(context.Context, *kgo.Client, Config) error

// EnsureAll runs every ensurer, one after another (the controller creates
// topics one at a time anyway), and returns their errors joined: one topic
// refused does not keep the others from being made.
func EnsureAll(ctx context.Context, cl *kgo.Client, cfg Config, ensurers ...Ensurer) error {
	var errs []error
	for _, e := range ensurers {
		errs = append(errs, e(ctx, cl, cfg))
	}
	return errors.Join(errs...)
}

func ensure(ctx context.Context, cl *kgo.Client, partitions int32, rf int16, configs map[string]*string, names ...string) error {
	adm := kadm.NewClient(cl)
	resps, err := adm.CreateTopics(ctx, partitions, rf, configs, names...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", names, err)
	}
	var created []string
	for _, r := range resps.Sorted() {
		switch {
		case r.Err == nil:
			created = append(created, r.Topic)
		case !errors.Is(r.Err, kerr.TopicAlreadyExists):
			return fmt.Errorf("creating topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage)
		}
	}
	return waitForLeaders(ctx, cl, created)
}

// waitForLeaders waits until every partition of the topics has a leader in
// the metadata the broker answers with. The controller acknowledges a new
// topic before the brokers know it, and a client that lists its offsets or
// writes to it in that moment is told it does not exist. The metadata is
// asked for directly each time: the client's cached metadata would repeat
// the first "not yet" for seconds.
func waitForLeaders(ctx context.Context, cl *kgo.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	for {
		resp, err := req.RequestWith(wctx, cl)
		if err == nil && leadersKnown(resp, len(topics)) {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("topics %v were created but have no leader yet: %w", topics, context.Cause(wctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// leadersKnown reports whether resp names want topics, each with partitions
// that all have a leader.
func leadersKnown(resp *kmsg.MetadataResponse, want int) bool {
	if len(resp.Topics) != want {
		return false
	}
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// TakeTransactionalID makes the transactional client cl register its
// transactional id now rather than at its first transaction: that aborts a
// transaction a killed predecessor with the same id left open. Until then,
// readers of what it wrote see nothing past it (read committed), and a
// consumer group cannot fetch the offsets it was committing
// (UNSTABLE_OFFSET_COMMIT): a restarted process would wait out the
// transaction timeout before it reads anything.
func TakeTransactionalID(ctx context.Context, cl *kgo.Client) error {
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("registering transactional id: %w", err)
	}
	return nil
}

package topic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxRecordBytes is the largest record docshift writes: a 16 MiB MongoDB
// document plus its envelope and Kafka's batch overhead.
const MaxRecordBytes = 20 << 20

// NewClient connects to Kafka and checks that the cluster answers, so a wrong
// address fails here with an error that names it rather than later in a
// retry loop.
func NewClient(ctx context.Context, cfg Config, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.SeedList()...),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.ProducerBatchMaxBytes(MaxRecordBytes),
		kgo.FetchMaxPartitionBytes(MaxRecordBytes + 1<<20),
		kgo.FetchMaxBytes(2 * (MaxRecordBytes + 1<<20)),
		kgo.BrokerMaxReadBytes(4 * (MaxRecordBytes + 1<<20)),
	}
	if log != nil {
		base = append(base, kgo.WithLogger(kafkaLogger{log}))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", cfg.Seeds, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("connecting to Kafka at %s: %w", cfg.Seeds, err)
	}
	return cl, nil
}

// Records returns the records topic of a collection: <prefix>.<db>.<collection>.
func (c *Config) Records(database, collection string) string {
	return legal(c.Prefix + "." + database + "." + collection)
}

// Schemas returns the schema topic's name. docshift's own topics join the
// prefix with "-", records topics with ".", so that RecordsPattern matches
// records topics only.
func (c *Config) Schemas() string { return c.Prefix + "-schemas" }

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

func ensure(ctx context.Context, cl *kgo.Client, partitions int32, rf int16, configs map[string]*string, names ...string) error {
	adm := kadm.NewClient(cl)
	resps, err := adm.CreateTopics(ctx, partitions, rf, configs, names...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", names, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

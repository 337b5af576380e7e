package consumer

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Config holds the consumer's own settings.
//
// Memory is bounded by configuration, not by topic size: the Kafka client
// buffers at most FetchMaxBytes per broker fetch (MaxConcurrentFetches of
// them), and each partition worker holds one batch being applied (at most
// MaxBatch records and MaxBatchBytes bytes) plus PartitionBuffer polled slices
// waiting behind it.
type Config struct {
	Group         string // Kafka consumer group
	Topics        string // comma-separated topics; empty: every records topic of the prefix
	MaxBatch      int    // largest number of records applied in one transaction
	MaxBatchBytes int    // largest sum of record key+value bytes applied in one transaction
	// BatchWait is how long a worker that is free lingers for more records
	// before it applies a batch that is not full. 0 (the default) applies
	// what is there at once: while a batch is being applied the next one
	// fills, so under load batches grow by themselves, and a linger would
	// only leave the worker idle while fetching waits for other partitions.
	BatchWait     time.Duration
	StopAtEnd     bool          // exit once the group has applied everything that was in the topics at start
	ShutdownGrace time.Duration // time an in-flight batch gets to commit on shutdown
	// SessionTimeout is how long the group waits for a member that stopped
	// answering (killed, partitioned away) before its partitions move.
	SessionTimeout time.Duration

	FetchMaxBytes        int // bytes one fetch response may carry
	MaxConcurrentFetches int // fetch responses buffered at once (0: one per broker)
	PartitionBuffer      int // polled slices queued per partition behind the batch being applied

	RetryBackoff    time.Duration // first wait after a transient database error; doubles up to RetryBackoffMax
	RetryBackoffMax time.Duration

	// DLQ sends records that can never apply to the dead-letter topic
	// (<prefix>-dlq); off, such a record stops the consumer.
	DLQ bool

	// TombstoneRetention is how long a delete's tombstone row is kept, by the
	// cluster time in its version; 0 keeps tombstones forever. See purge.go.
	TombstoneRetention time.Duration
	PurgeInterval      time.Duration // how often tombstones older than the retention are purged
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Group:                "docshift-sink",
		MaxBatch:             5000,
		MaxBatchBytes:        16 << 20,
		BatchWait:            0,
		ShutdownGrace:        30 * time.Second,
		SessionTimeout:       45 * time.Second,
		FetchMaxBytes:        50 << 20,
		MaxConcurrentFetches: 4,
		PartitionBuffer:      2,
		RetryBackoff:         100 * time.Millisecond,
		RetryBackoffMax:      10 * time.Second,
		DLQ:                  true,
		TombstoneRetention:   7 * 24 * time.Hour,
		PurgeInterval:        10 * time.Minute,
	}
}

// RegisterFlags registers the consumer flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Group, "group", c.Group, "Kafka consumer group of the sink")
	fs.StringVar(&c.Topics, "topics", c.Topics, "topics to consume, comma-separated (default: every records topic of --topic-prefix)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "largest number of records of one partition applied in one database transaction")
	fs.IntVar(&c.MaxBatchBytes, "max-batch-bytes", c.MaxBatchBytes, "largest sum of record bytes of one partition applied in one database transaction")
	fs.DurationVar(&c.BatchWait, "batch-wait", c.BatchWait, "how long a free worker lingers for more records before applying a batch that is not full (0: apply what is there at once)")
	fs.BoolVar(&c.StopAtEnd, "stop-at-end", c.StopAtEnd, "exit once everything in the topics at start is applied")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time an in-flight batch gets to commit on shutdown")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", c.SessionTimeout, "how long the group waits for a silent member before its partitions move (the broker allows 6s to 30m by default)")
	fs.IntVar(&c.FetchMaxBytes, "fetch-max-bytes", c.FetchMaxBytes, "bytes one Kafka fetch response may carry (bounds memory)")
	fs.IntVar(&c.MaxConcurrentFetches, "max-concurrent-fetches", c.MaxConcurrentFetches, "Kafka fetch responses buffered at once (0: one per broker; bounds memory)")
	fs.IntVar(&c.PartitionBuffer, "partition-buffer", c.PartitionBuffer, "polled slices queued per partition while its batch is applied (bounds memory)")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", c.RetryBackoff, "first wait after a transient database error (doubles each retry)")
	fs.DurationVar(&c.RetryBackoffMax, "retry-backoff-max", c.RetryBackoffMax, "longest wait between retries of a transient database error")
	fs.BoolVar(&c.DLQ, "dlq", c.DLQ, "send records that can never apply to the dead-letter topic <topic-prefix>-dlq (off: such a record stops the consumer)")
	fs.DurationVar(&c.TombstoneRetention, "tombstone-retention", c.TombstoneRetention, "keep a delete's tombstone row this long after its cluster time (0: forever); must exceed the longest snapshot run plus consumer lag")
	fs.DurationVar(&c.PurgeInterval, "tombstone-purge-interval", c.PurgeInterval, "how often tombstones older than --tombstone-retention are purged")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Group == "":
		return errors.New("group: empty")
	case c.MaxBatch < 1:
		return fmt.Errorf("max-batch: %d, want at least 1", c.MaxBatch)
	case c.MaxBatchBytes < 1:
		return fmt.Errorf("max-batch-bytes: %d, want at least 1", c.MaxBatchBytes)
	case c.BatchWait < 0:
		return fmt.Errorf("batch-wait: %s is negative", c.BatchWait)
	case c.ShutdownGrace <= 0:
		return fmt.Errorf("shutdown-grace: %s, want more than 0", c.ShutdownGrace)
	case c.SessionTimeout < time.Second:
		return fmt.Errorf("session-timeout: %s, want at least 1s", c.SessionTimeout)
	case c.FetchMaxBytes < 1<<20:
		return fmt.Errorf("fetch-max-bytes: %d, want at least 1 MiB", c.FetchMaxBytes)
	case c.MaxConcurrentFetches < 0:
		return fmt.Errorf("max-concurrent-fetches: %d is negative", c.MaxConcurrentFetches)
	case c.PartitionBuffer < 1:
		return fmt.Errorf("partition-buffer: %d, want at least 1", c.PartitionBuffer)
	case c.RetryBackoff <= 0:
		return fmt.Errorf("retry-backoff: %s, want more than 0", c.RetryBackoff)
	case c.RetryBackoffMax < c.RetryBackoff:
		return fmt.Errorf("retry-backoff-max: %s is less than retry-backoff %s", c.RetryBackoffMax, c.RetryBackoff)
	case c.TombstoneRetention < 0:
		return fmt.Errorf("tombstone-retention: %s is negative", c.TombstoneRetention)
	case c.TombstoneRetention > 0 && c.PurgeInterval <= 0:
		return fmt.Errorf("tombstone-purge-interval: %s, want more than 0", c.PurgeInterval)
	}
	return nil
}

// TopicList returns the explicit topics, if any.
func (c *Config) TopicList() []string {
	var out []string
	for _, t := range strings.Split(c.Topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

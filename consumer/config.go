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
// Memory is bounded by configuration, not by topic size nor by the number of
// partitions: the Kafka client buffers at most MaxConcurrentFetches fetch
// responses of at most FetchMaxBytes (FetchMaxPartitionBytes per partition),
// and the records polled from it but not yet applied, across all partition
// workers, weigh at most MaxInflightBytes (one polled slice may exceed it
// when nothing else is held); at most MaxConcurrentBatches batches are
// decoded (several times their record bytes) at once. Each worker also holds at most PartitionBuffer
// polled slices behind the batch it applies. MemoryLimit adds a soft limit
// for the Go runtime on top of these bounds.
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

	FetchMaxBytes          int   // bytes one fetch response may carry (as sent: compressed)
	FetchMaxPartitionBytes int   // bytes one partition may add to a fetch response (a larger record still comes, alone)
	MaxConcurrentFetches   int   // fetch responses buffered at once (0: one per broker)
	PartitionBuffer        int   // polled slices queued per partition behind the batch being applied
	MaxInflightBytes       int   // key+value bytes polled and not yet applied, across all partitions
	MaxConcurrentBatches   int   // batches decoded and applied at once, across all partitions
	MemoryLimit            int64 // soft memory limit of the process for the Go runtime (debug.SetMemoryLimit); 0: none

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
		Group:                  "docshift-sink",
		MaxBatch:               5000,
		MaxBatchBytes:          16 << 20,
		BatchWait:              0,
		ShutdownGrace:          30 * time.Second,
		SessionTimeout:         45 * time.Second,
		FetchMaxBytes:          8 << 20,
		FetchMaxPartitionBytes: 1 << 20,
		MaxConcurrentFetches:   4,
		PartitionBuffer:        2,
		MaxInflightBytes:       32 << 20,
		MaxConcurrentBatches:   4,
		RetryBackoff:           100 * time.Millisecond,
		RetryBackoffMax:        10 * time.Second,
		DLQ:                    true,
		TombstoneRetention:     7 * 24 * time.Hour,
		PurgeInterval:          10 * time.Minute,
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
	fs.IntVar(&c.FetchMaxPartitionBytes, "fetch-max-partition-bytes", c.FetchMaxPartitionBytes, "bytes one partition may add to a Kafka fetch response (a larger record still comes; bounds memory)")
	fs.IntVar(&c.MaxInflightBytes, "max-inflight-bytes", c.MaxInflightBytes, "record bytes polled but not yet applied, across all partitions (bounds memory)")
	fs.IntVar(&c.MaxConcurrentBatches, "max-concurrent-batches", c.MaxConcurrentBatches, "batches decoded and applied at once, across all partitions (bounds memory and database load)")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft memory limit in bytes for the Go runtime (GC works harder near it; 0: none); an addition to the bounds above")
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
	case c.FetchMaxPartitionBytes < 1<<10:
		return fmt.Errorf("fetch-max-partition-bytes: %d, want at least 1 KiB", c.FetchMaxPartitionBytes)
	case c.MaxInflightBytes < 1<<20:
		return fmt.Errorf("max-inflight-bytes: %d, want at least 1 MiB", c.MaxInflightBytes)
	case c.MaxConcurrentBatches < 1:
		return fmt.Errorf("max-concurrent-batches: %d, want at least 1", c.MaxConcurrentBatches)
	case c.MemoryLimit < 0:
		return fmt.Errorf("memory-limit: %d is negative", c.MemoryLimit)
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

package snapshot

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docshift/docshift/topic"
)

// Config holds the snapshot's own settings.
type Config struct {
	Workers    int    // chunk readers in this process
	WorkerID   string // names this process's transactional ids and group instance ids; unique per process, stable across its restarts
	WorkerOnly bool   // only take tasks (--worker); another process plans
	Restart    bool   // start a new run, ignoring what earlier runs finished
	// RestartBefore, when set, starts a new run unless the recorded one
	// started at or after this cluster time (a schemas.Version): the
	// producer's snapshot after a lost history resumes only a run that
	// began after the loss.
	RestartBefore   int64
	ChunkDocs       int           // target documents per chunk
	ChunkBytes      int           // target bytes per chunk
	SamplesPerChunk int           // sampled _ids per planned chunk
	BatchSize       int           // documents per MongoDB find batch
	InFlight        int           // records one worker may have produced but not yet acknowledged
	TaskPartitions  int           // partitions of a new task topic: the most workers that read at once
	TxnTimeout      time.Duration // Kafka transaction timeout: the longest one chunk may take
	Progress        time.Duration // progress report interval (a log line when stderr is no terminal)
	// GCPercent is the Go garbage collector's target (as GOGC) while the
	// snapshot runs; 0 leaves it alone, and so does a GOGC environment
	// variable. The snapshot's live heap is small and bounded (in-flight
	// records and batches), so at the runtime's default of 100 the
	// collector runs every few megabytes of records.
	GCPercent int
	// Oversize is what becomes of a document whose record would be larger
	// than a Kafka record may be: topic.OversizeFail or topic.OversizeDLQ.
	Oversize string

	// joinStagger delays the making of worker i by i times it (tests: a
	// group that forms over several rebalances).
	joinStagger time.Duration
	// revokedAtStart starts every worker as if a rebalance had just taken
	// partitions from it (tests: the first task is given back).
	revokedAtStart bool
	// revokedAfterSkips marks every worker revoked once, as it skips its
	// revokedAfterSkips-th task (tests: skipped tasks waiting to commit
	// are given back).
	revokedAfterSkips int
	// slowBatches makes a worker wait that long after each batch it reads
	// (tests: a MongoDB slower than the transaction allows).
	slowBatches time.Duration
}

// DefaultConfig returns the defaults. A chunk of 20,000 documents (at most
// 32 MiB) is read and produced in well under a second on a healthy
// deployment, far inside the one-minute transaction timeout.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "docshift"
	}
	return Config{
		Workers:         4,
		WorkerID:        host,
		ChunkDocs:       20000,
		ChunkBytes:      32 << 20,
		SamplesPerChunk: 20,
		BatchSize:       2000,
		InFlight:        10000,
		TaskPartitions:  32,
		TxnTimeout:      time.Minute,
		Progress:        time.Second,
		GCPercent:       400,
		Oversize:        topic.OversizeFail,
	}
}

// RegisterFlags registers the snapshot flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Workers, "workers", c.Workers, "chunk readers in this process (0: plan and watch only)")
	fs.StringVar(&c.WorkerID, "worker-id", c.WorkerID, "this process's name in its workers' transactional ids and group instance ids: unique per process, the same across its restarts (so a restart takes over from its killed predecessor at once)")
	fs.BoolVar(&c.WorkerOnly, "worker", c.WorkerOnly, "only read the chunks a planning docshift snapshot (without --worker) publishes; exit when the run is complete")
	fs.BoolVar(&c.Restart, "restart", c.Restart, "start a new snapshot run from scratch instead of resuming the recorded one")
	fs.IntVar(&c.ChunkDocs, "chunk-docs", c.ChunkDocs, "target documents per chunk")
	fs.IntVar(&c.ChunkBytes, "chunk-bytes", c.ChunkBytes, "target bytes per chunk (whichever limit is reached first)")
	fs.IntVar(&c.SamplesPerChunk, "samples-per-chunk", c.SamplesPerChunk, "sampled _ids per planned chunk with $sample (a scan of the _ids, for collections up to 10M documents, keeps at least 400)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "documents per MongoDB find batch")
	fs.IntVar(&c.InFlight, "in-flight", c.InFlight, "records one worker may have unacknowledged in Kafka")
	fs.IntVar(&c.TaskPartitions, "task-partitions", c.TaskPartitions, "partitions of a new task topic: the most workers reading at once")
	fs.DurationVar(&c.TxnTimeout, "txn-timeout", c.TxnTimeout, "Kafka transaction timeout: the longest one chunk may take")
	fs.DurationVar(&c.Progress, "progress", c.Progress, "progress report interval")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go GC target while the snapshot runs, as GOGC (0: the runtime's; a GOGC environment variable wins)")
	fs.StringVar(&c.Oversize, "oversize", c.Oversize, "a document too large for a Kafka record: fail (stop with an error naming it) or dlq (its key and size go to the dead-letter topic, its row is left out)")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Workers < 0:
		return fmt.Errorf("workers: %d, want 0 or more", c.Workers)
	case c.WorkerOnly && c.Workers == 0:
		return errors.New("workers: 0 with --worker: a worker process needs at least one reader")
	case c.WorkerOnly && c.Restart:
		return errors.New("restart: only the planning process starts a new run, not a --worker")
	case c.WorkerID == "" || strings.ContainsAny(c.WorkerID, " /\\"):
		return fmt.Errorf("worker-id: %q, want a non-empty name without spaces or slashes", c.WorkerID)
	case c.ChunkDocs < 1:
		return fmt.Errorf("chunk-docs: %d, want at least 1", c.ChunkDocs)
	case c.ChunkBytes < 1<<10:
		return fmt.Errorf("chunk-bytes: %d, want at least 1024", c.ChunkBytes)
	case c.SamplesPerChunk < 1:
		return fmt.Errorf("samples-per-chunk: %d, want at least 1", c.SamplesPerChunk)
	case c.BatchSize < 1:
		return fmt.Errorf("batch-size: %d, want at least 1", c.BatchSize)
	case c.InFlight < 1:
		return fmt.Errorf("in-flight: %d, want at least 1", c.InFlight)
	case c.TaskPartitions < 1:
		return fmt.Errorf("task-partitions: %d, want at least 1", c.TaskPartitions)
	case c.TxnTimeout < time.Second:
		return fmt.Errorf("txn-timeout: %s, want at least 1s", c.TxnTimeout)
	case c.GCPercent < 0:
		return fmt.Errorf("gc-percent: %d, want 0 or more", c.GCPercent)
	case c.Progress <= 0:
		return fmt.Errorf("progress: %s, want more than 0", c.Progress)
	case c.Oversize != topic.OversizeFail && c.Oversize != topic.OversizeDLQ:
		return fmt.Errorf("oversize: %q is not %s or %s", c.Oversize, topic.OversizeFail, topic.OversizeDLQ)
	}
	return nil
}

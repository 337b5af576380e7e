package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// Consumer is one member of the sink's consumer group.
//
// Its stage contract: Run consumes until its context is cancelled and then
// returns ctx.Err(); it owns its partition workers and stops them all before
// it returns; a record's offset is committed only after the transaction that
// applied it (or the dead-letter produce that kept it) succeeded, so nothing
// is left un-acked and nothing is lost.
type Consumer struct {
	cfg      Config
	topics   topic.Config
	pool     *pgxpool.Pool
	log      *slog.Logger
	applier  *applier
	registry *schemas.Registry
	decoders *decoders
	regCl    *kgo.Client // plain client: schema topic reads, dead-letter produces, admin
	dlq      *deadLetters
	metrics  *metrics

	client *kgo.Client
	budget *budget       // record bytes polled and not yet applied, across workers
	slots  chan struct{} // one per batch being decoded and applied (MaxConcurrentBatches)

	mu      sync.Mutex
	workers map[tp]*worker

	// workCtx is what workers apply under; it outlives the poll loop by the
	// shutdown grace so an in-flight batch can commit.
	workCtx    context.Context
	workCancel context.CancelFunc
	failOnce   sync.Once
	failed     chan struct{} // closed by the first fail
	fatalErr   error         // set before failed is closed

	firstFetch atomic.Int64 // unix nanoseconds of the first fetched record
	applied    atomic.Int64 // records applied (committed) by this member
}

type tp struct {
	topic     string
	partition int32
}

// New connects a group member whose metrics are registered on reg. Run starts
// consuming; Close releases the Kafka clients (the pool belongs to the
// caller). With cfg.DLQ it creates the dead-letter topic if it is missing.
func New(ctx context.Context, cfg Config, tc topic.Config, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, topics: tc, pool: pool, log: log, applier: newApplier(pool), metrics: m,
		workers: map[tp]*worker{}, failed: make(chan struct{}), budget: newBudget(int64(cfg.MaxInflightBytes)), slots: make(chan struct{}, cfg.MaxConcurrentBatches)}
	if cfg.MemoryLimit > 0 {
		// Process-wide: the GC works harder as the heap nears it. The
		// bounds above are what keep the heap small; this trims the
		// headroom the GC leaves above the live heap.
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	c.regCl, err = topic.NewClient(ctx, tc, log)
	if err != nil {
		return nil, err
	}
	if c.registry, err = schemas.OpenRegistry(c.regCl, tc.Schemas(), tc.RegistryURLs()); err != nil {
		c.regCl.Close()
		return nil, err
	}
	c.decoders = newDecoders()
	if cfg.DLQ {
		if err := topic.EnsureDLQ(ctx, c.regCl, tc); err != nil {
			c.regCl.Close()
			return nil, err
		}
		c.dlq = &deadLetters{client: c.regCl, topic: tc.DLQ()}
	}

	// Fetch limits count bytes as sent (compressed): a fetch response takes
	// several times FetchMaxBytes once decompressed and decoded into
	// records, which is why they are small. A record batch larger than
	// either limit still comes (alone), so they never stop progress.
	partBytes := min(cfg.FetchMaxBytes, cfg.FetchMaxPartitionBytes)
	opts := []kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through so that a batch ending in one
		// commits the offset past it (see worker.commit).
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(10 * time.Second),
		kgo.FetchMaxBytes(int32(cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(partBytes)),
		kgo.BrokerMaxReadBytes(int32(max(2*cfg.FetchMaxBytes, 4*(topic.MaxRecordBytes+1<<20)))),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}
	if cfg.MaxConcurrentFetches > 0 {
		opts = append(opts, kgo.MaxConcurrentFetches(cfg.MaxConcurrentFetches))
	}
	if ts := cfg.TopicList(); len(ts) > 0 {
		opts = append(opts, kgo.ConsumeTopics(ts...))
	} else {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(tc.RecordsPattern()))
	}
	c.client, err = topic.NewClient(ctx, tc, log, opts...)
	if err != nil {
		c.regCl.Close()
		return nil, err
	}
	return c, nil
}

// Close leaves the group and closes the Kafka clients.
func (c *Consumer) Close() {
	c.client.Close()
	c.regCl.Close()
}

// Ready reports whether both ends answer: Kafka and the target database.
func (c *Consumer) Ready(ctx context.Context) error {
	if err := c.client.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if err := c.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// Run consumes until ctx is cancelled (or, with StopAtEnd, until everything
// that was in the topics at start is applied). On cancel it stops fetching,
// lets in-flight batches commit within the shutdown grace, commits their
// offsets and returns ctx.Err(). A record that can never apply goes to the
// dead-letter topic; an error that is neither transient nor caused by one
// record's data stops Run before the offsets of its batch are committed.
func (c *Consumer) Run(ctx context.Context) error {
	c.workCtx, c.workCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer c.workCancel()

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	stopped := make(chan error, 1)
	if c.cfg.StopAtEnd {
		ends, err := c.endOffsets(ctx)
		if err != nil {
			return err
		}
		go func() { stopped <- c.waitApplied(pollCtx, ends, stopPolling) }()
	}
	go func() {
		select {
		case <-c.failed:
			stopPolling()
		case <-pollCtx.Done():
		}
	}()
	if c.cfg.TombstoneRetention > 0 {
		go c.purgeLoop(pollCtx)
	}

	for pollCtx.Err() == nil {
		fetches := c.client.PollRecords(pollCtx, c.cfg.MaxBatch)
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.firstFetch.CompareAndSwap(0, time.Now().UnixNano())
				c.dispatch(pollCtx, p)
			}
		})
		c.client.AllowRebalance()
	}
	c.shutdown()

	select {
	case <-c.failed:
		return c.fatalErr
	default:
	}
	if c.cfg.StopAtEnd {
		select {
		case err := <-stopped:
			if err == nil {
				return nil
			}
		default:
		}
	}
	return ctx.Err()
}

// blockedAfter is how long handing records to a busy worker may take before
// the poll loop says that fetching waits for it.
const blockedAfter = 30 * time.Second

// dispatch hands a partition's polled records to its worker. It blocks while
// the in-flight budget is spent or the worker's buffer is full (backpressure:
// fetching waits for applying).
func (c *Consumer) dispatch(ctx context.Context, p kgo.FetchTopicPartition) {
	c.mu.Lock()
	w := c.workers[tp{p.Topic, p.Partition}]
	c.mu.Unlock()
	if w == nil {
		return // revoked meanwhile; the new owner reads them again
	}
	in := polled{recs: p.Records, hwm: p.HighWatermark}
	n := recordBytes(p.Records)
	if !c.budget.take(n, ctx.Done(), w.done) {
		return
	}
	if !w.held.add(n) { // the worker stopped meanwhile
		c.budget.give(n)
		return
	}
	blocked := time.NewTimer(blockedAfter)
	defer blocked.Stop()
	for {
		select {
		case w.in <- in:
			return // the worker gives n back as it applies them, or when it stops
		case <-w.done: // stopped (revoked, lost, or failed): the records stay uncommitted
			return // it gave back everything, n too
		case <-ctx.Done():
			if w.held.remove(n) {
				c.budget.give(n)
			}
			return
		case <-blocked.C:
			c.log.Warn("fetching waits for a busy partition worker", "topic", p.Topic, "partition", p.Partition, "waited", blockedAfter)
		}
	}
}

// shutdown lets every worker finish its current batch (within the grace),
// then stops them.
func (c *Consumer) shutdown() {
	timer := time.AfterFunc(c.cfg.ShutdownGrace, c.workCancel)
	defer timer.Stop()
	c.mu.Lock()
	all := map[string][]int32{}
	for k := range c.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	c.mu.Unlock()
	c.stopWorkers(all)
}

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range assigned {
		for _, p := range ps {
			w := newWorker(c, t, p)
			c.workers[tp{t, p}] = w
			go w.run()
		}
	}
	c.log.Info("partitions assigned", "partitions", assigned)
}

// revoked waits for the workers of the revoked partitions to finish their
// in-flight batch (and commit it) before the partitions move.
func (c *Consumer) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.stopWorkers(revoked)
	c.log.Info("partitions revoked", "partitions", revoked)
}

func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stopWorkers(lost)
	c.log.Warn("partitions lost", "partitions", lost)
}

func (c *Consumer) stopWorkers(parts map[string][]int32) {
	var stopping []*worker
	c.mu.Lock()
	for t, ps := range parts {
		for _, p := range ps {
			if w := c.workers[tp{t, p}]; w != nil {
				delete(c.workers, tp{t, p})
				close(w.quit)
				stopping = append(stopping, w)
			}
		}
	}
	c.mu.Unlock()
	for _, w := range stopping {
		<-w.done
		c.metrics.forget(w.topic, w.partition)
	}
}

// fail stops the consumer with err (the first error wins); Run returns it.
func (c *Consumer) fail(err error) {
	c.failOnce.Do(func() {
		c.fatalErr = err
		close(c.failed)
	})
}

// endOffsets lists the last stable offsets (read_committed ends) of every
// topic this consumer reads.
func (c *Consumer) endOffsets(ctx context.Context) (kadm.ListedOffsets, error) {
	adm := kadm.NewClient(c.regCl)
	names := c.cfg.TopicList()
	if len(names) == 0 {
		all, err := adm.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing topics: %w", err)
		}
		re := regexp.MustCompile(c.topics.RecordsPattern())
		for _, t := range all.Names() {
			if re.MatchString(t) {
				names = append(names, t)
			}
		}
	}
	if len(names) == 0 {
		return kadm.ListedOffsets{}, nil
	}
	ends, err := adm.ListCommittedOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	return ends, nil
}

// waitApplied returns (and calls stop) once the group's committed offsets
// reach ends on every partition. Transaction markers are delivered to the
// workers (KeepControlRecords) and committed past, so a partition whose last
// entry is a marker reaches its end offset too.
func (c *Consumer) waitApplied(ctx context.Context, ends kadm.ListedOffsets, stop func()) error {
	adm := kadm.NewClient(c.regCl)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		committed, err := adm.FetchOffsets(ctx, c.cfg.Group)
		if err == nil {
			behind := false
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset == 0 {
					return
				}
				got, ok := committed.Lookup(o.Topic, o.Partition)
				if !ok || got.At < o.Offset {
					behind = true
				}
			})
			if !behind {
				n := c.applied.Load()
				elapsed := time.Duration(0)
				if first := c.firstFetch.Load(); first > 0 {
					elapsed = time.Since(time.Unix(0, first))
				}
				rate := 0.0
				if elapsed > 0 {
					rate = float64(n) / elapsed.Seconds()
				}
				c.log.Info("applied everything that was in the topics at start; stopping",
					"records", n, "since_first_fetch", elapsed.Round(time.Millisecond), "records_per_second", int64(rate))
				stop()
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

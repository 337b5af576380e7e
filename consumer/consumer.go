package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// Consumer is one member of the sink's consumer group.
type Consumer struct {
	cfg      Config
	topics   topic.Config
	pool     *pgxpool.Pool
	log      *slog.Logger
	applier  *applier
	registry *schemas.Registry
	regCl    *kgo.Client

	client *kgo.Client

	mu      sync.Mutex
	workers map[tp]*worker

	// workCtx is what workers apply under; it outlives the poll loop by the
	// shutdown grace so an in-flight batch can commit.
	workCtx    context.Context
	workCancel context.CancelFunc
	fatal      chan error
}

type tp struct {
	topic     string
	partition int32
}

// New connects a group member. Run starts consuming; Close releases the
// Kafka clients (the pool belongs to the caller).
func New(ctx context.Context, cfg Config, tc topic.Config, pool *pgxpool.Pool, log *slog.Logger) (*Consumer, error) {
	c := &Consumer{cfg: cfg, topics: tc, pool: pool, log: log, applier: newApplier(pool),
		workers: map[tp]*worker{}, fatal: make(chan error, 1)}
	var err error
	c.regCl, err = topic.NewClient(ctx, tc, log)
	if err != nil {
		return nil, err
	}
	c.registry = schemas.NewRegistry(c.regCl, tc.Schemas())

	opts := []kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(10 * time.Second),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
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

// Run consumes until ctx is cancelled (or, with StopAtEnd, until everything
// that was in the topics at start is applied). On cancel it stops fetching,
// lets in-flight batches commit within the shutdown grace, commits their
// offsets and returns ctx.Err(). A record that cannot be applied stops Run
// with an error before its offset is committed, so nothing is lost.
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
		case err := <-c.fatal:
			c.log.Error("stopping consumer", "err", err)
			stopPolling()
		case <-pollCtx.Done():
		}
	}()

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
			if len(p.Records) == 0 {
				return
			}
			c.mu.Lock()
			w := c.workers[tp{p.Topic, p.Partition}]
			c.mu.Unlock()
			if w == nil {
				return // revoked meanwhile; the new owner reads them again
			}
			select {
			case w.recs <- p.Records:
			case <-w.done: // stopped (lost, or failed): the records stay uncommitted
			case <-pollCtx.Done():
			}
		})
		c.client.AllowRebalance()
	}
	c.shutdown()

	select {
	case err := <-c.fatal:
		return err
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

func (c *Consumer) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range assigned {
		for _, p := range ps {
			w := &worker{c: c, topic: t, partition: p,
				recs: make(chan []*kgo.Record, 2), quit: make(chan struct{}), done: make(chan struct{})}
			c.workers[tp{t, p}] = w
			go w.run()
		}
	}
	c.log.Debug("partitions assigned", "partitions", assigned)
}

// revoked waits for the workers of the revoked partitions to finish their
// in-flight batch (and commit it) before the partitions move.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stopWorkers(revoked)
	c.log.Debug("partitions revoked", "partitions", revoked)
}

func (c *Consumer) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
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
	}
}

func (c *Consumer) fail(err error) {
	select {
	case c.fatal <- err:
	default:
	}
}

// worker applies one partition's records in offset order.
type worker struct {
	c         *Consumer
	topic     string
	partition int32
	recs      chan []*kgo.Record
	quit      chan struct{}
	done      chan struct{}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		case recs := <-w.recs:
			if err := w.apply(recs); err != nil {
				if !errors.Is(err, context.Canceled) {
					w.c.fail(err)
				}
				return
			}
		}
	}
}

// apply applies one batch, retrying transient database errors with backoff,
// then commits the batch's offsets.
func (w *worker) apply(recs []*kgo.Record) error {
	ctx := w.c.workCtx
	changes, err := decode(ctx, w.c.registry, recs)
	if err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = w.c.applier.apply(ctx, changes)
		if err == nil {
			break
		}
		if !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("applying %s/%d offsets %d-%d: %w",
				w.topic, w.partition, recs[0].Offset, recs[len(recs)-1].Offset, err)
		}
		w.c.log.Warn("transient database error, retrying", "topic", w.topic, "partition", w.partition,
			"attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	// The transaction committed: only now may the offsets move.
	if err := w.c.client.CommitRecords(ctx, recs[len(recs)-1]); err != nil {
		// Not fatal: the next owner re-applies these records, and the
		// version guard makes that a no-op.
		w.c.log.Warn("committing offsets", "topic", w.topic, "partition", w.partition, "err", err)
	}
	return nil
}

// endOffsets lists the end offsets of every topic this consumer reads.
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
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	return ends, nil
}

// waitApplied returns (and calls stop) once the group's committed offsets
// reach ends on every partition. (A partition whose last entry is a
// transaction marker needs the position past it; records topics written
// without transactions have none.)
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
				c.log.Info("applied everything that was in the topics at start; stopping")
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

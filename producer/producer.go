package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// Producer follows the change streams of the mapped collections.
type Producer struct {
	cfg       Config
	mapping   *schemas.Mapping
	mongo     *mongo.Client
	topics    topic.Config
	log       *slog.Logger
	kafka     *kgo.Client // plain client: topics, schemas
	registry  *schemas.Registry
	conflicts *schemas.ConflictReporter
	metrics   *metrics

	// StartAt, when set, says where a stream without a checkpoint starts
	// (for example: before the snapshot's first chunk). Unset, or when it
	// reports false, a new stream starts at the current cluster time.
	StartAt func(ctx context.Context) (bson.Timestamp, bool, error)
	// Resnapshot snapshots the given collections again, in a snapshot run
	// started at or after since (resuming such a run if there is one). With
	// --on-history-lost=resnapshot, a stream whose history was lost restarts
	// at since ("now") and calls it while it follows the changes from there.
	// Calls are not concurrent.
	Resnapshot func(ctx context.Context, collections []schemas.Namespace, since bson.Timestamp) error

	mu      sync.Mutex
	schemas map[string]*schemas.Schema // by source namespace

	resnapshotting chan struct{} // held by the one Resnapshot call running
}

// New returns a producer. kc is a plain (non-transactional) client; each
// stream opens its own transactional one.
func New(cfg Config, m *schemas.Mapping, mc *mongo.Client, kc *kgo.Client, tc topic.Config, log *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	registry, err := schemas.OpenRegistry(kc, tc.Schemas(), tc.RegistryURLs())
	if err != nil {
		return nil, err
	}
	return &Producer{
		cfg: cfg, mapping: m, mongo: mc, topics: tc, log: log, kafka: kc,
		registry:  registry,
		conflicts: schemas.NewConflictReporter(log, reg),
		metrics:   newMetrics(reg),
		schemas:   map[string]*schemas.Schema{},

		resnapshotting: make(chan struct{}, 1),
	}, nil
}

// Run follows every stream until ctx is cancelled (it then returns
// ctx.Err(), with every open transaction aborted, so nothing half-written is
// visible) or a stream fails in a way a restart cannot fix.
func (p *Producer) Run(ctx context.Context) error {
	if err := topic.EnsureAll(ctx, p.kafka, p.topics, topic.EnsureStreams, topic.EnsureSchemas, topic.EnsureDLQ); err != nil {
		return err
	}
	streams, err := p.streams(ctx)
	if err != nil {
		return err
	}
	if len(streams) == 0 {
		return errors.New("no collection to follow: the mapping and --include/--exclude select none")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.follow(ctx, st); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("stream %s: %w", st.id, err))
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// streams lists the change streams the configuration asks for.
func (p *Producer) streams(ctx context.Context) ([]*stream, error) {
	nss, err := p.followed(ctx)
	if err != nil {
		return nil, err
	}
	var out []*stream
	switch p.cfg.Scope {
	case ScopeCollection:
		for _, ns := range nss {
			out = append(out, &stream{p: p, id: "collection:" + ns.String(), db: ns.Database, coll: ns.Collection, covers: []schemas.Namespace{ns}})
		}
	case ScopeDatabase:
		byDB := map[string][]schemas.Namespace{}
		for _, ns := range nss {
			byDB[ns.Database] = append(byDB[ns.Database], ns)
		}
		for db, covers := range byDB {
			out = append(out, &stream{p: p, id: "database:" + db, db: db, covers: covers})
		}
	case ScopeDeployment:
		out = append(out, &stream{p: p, id: "deployment", covers: nss})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// followed lists the existing collections the mapping maps and the
// include/exclude globs let through.
func (p *Producer) followed(ctx context.Context) ([]schemas.Namespace, error) {
	return p.mapping.Namespaces(ctx, p.mongo, func(ns schemas.Namespace) bool { return p.cfg.follows(ns.String()) })
}

// follow runs a stream, reopening it from its checkpoint after any error a
// restart can fix, with backoff.
func (p *Producer) follow(ctx context.Context, st *stream) error {
	defer st.stopResnapshot()
	backoff := time.Second
	var lost lostHistory
	for {
		err := st.run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, ErrHistoryLost) && p.cfg.OnHistoryLost == HistoryLostResnapshot:
			if wait := lost.next(time.Now()); wait > 0 {
				p.log.Warn("change stream history lost again soon after its last restart: waiting before the next "+
					"(each restart starts the re-snapshot over; the oplog window may be shorter than the stream needs)",
					"stream", st.id, "wait", wait)
				if err := sleep(ctx, wait); err != nil {
					return err
				}
			}
			if err := p.restartAfterLostHistory(ctx, st, err); err != nil {
				return err
			}
			lost.restarted(time.Now())
			continue
		case errors.Is(err, ErrHistoryLost), errors.Is(err, ErrNoTenant), errors.Is(err, ErrOversize), errors.Is(err, ErrResnapshot):
			return err
		}
		p.metrics.reconnects.WithLabelValues(st.id).Inc()
		p.log.Warn("change stream failed; reopening from its checkpoint", "stream", st.id, "backoff", backoff, "err", err)
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lostAgainWithin is how soon after a restart a stream's next lost history
// counts as losing it again, which restarts with backoff.
const lostAgainWithin = time.Minute

// lostHistory spaces the restarts of a stream that keeps losing its history
// right after restarting (an oplog that rolls over faster than the stream
// reads it): each restart starts the collections' re-snapshot over, so
// restarting in a tight loop would only repeat that work. The first loss,
// and one long after the last restart, restarts at once; a loss within
// lostAgainWithin of the last restart waits 1 s, then twice as long each
// time, up to 30 s.
type lostHistory struct {
	last time.Time     // the last restart; zero: none yet
	wait time.Duration // the wait before the next restart if it comes soon
}

// next returns how long to wait before restarting after a loss at now.
func (l *lostHistory) next(now time.Time) time.Duration {
	if l.last.IsZero() || now.Sub(l.last) >= lostAgainWithin {
		l.wait = 0
		return 0
	}
	l.wait = min(max(2*l.wait, time.Second), 30*time.Second)
	return l.wait
}

// restarted notes a restart at now.
func (l *lostHistory) restarted(now time.Time) { l.last = now }

// restartAfterLostHistory starts the stream again at the current cluster
// time, recording that history was lost and that its collections must be
// snapshotted again. The stream's next run snapshots them while it follows
// the changes from that time on, so the target converges: the snapshot's
// rows carry versions after the new start, and every change after it is
// followed. Until the snapshot is complete the checkpoint says so, and a
// restarted producer finishes it.
func (p *Producer) restartAfterLostHistory(ctx context.Context, st *stream, cause error) error {
	if p.Resnapshot == nil {
		return fmt.Errorf("%w (and no snapshot is wired to --on-history-lost=resnapshot)", cause)
	}
	now, err := source.ClusterTime(ctx, p.mongo)
	if err != nil {
		return err
	}
	p.log.Warn("change stream history lost: restarting the stream now and snapshotting its collections again",
		"stream", st.id, "collections", st.covers, "cause", cause)
	return st.reset(ctx, now, cause.Error())
}

// schemaFor returns the schema and records topic of a collection, creating
// the topic and publishing the schema on first use.
func (p *Producer) schemaFor(ctx context.Context, c *schemas.Collection) (*schemas.Schema, string, error) {
	recTopic := p.topics.Records(c.Source.Database, c.Source.Collection)
	p.mu.Lock()
	s, ok := p.schemas[c.Source.String()]
	p.mu.Unlock()
	if ok {
		return s, recTopic, nil
	}
	if err := topic.EnsureRecords(ctx, p.kafka, p.topics, recTopic); err != nil {
		return nil, "", err
	}
	s, err := schemas.NewSchema(c.Source, c.TargetTable())
	if err != nil {
		return nil, "", err
	}
	if err := p.registry.Register(ctx, s); err != nil {
		return nil, "", err
	}
	p.mu.Lock()
	p.schemas[c.Source.String()] = s
	p.mu.Unlock()
	return s, recTopic, nil
}

// deadLetter makes a dead-letter record for an event: its source, operation,
// cluster time and the reason in headers, the document (if any) as value.
func (p *Producer) deadLetter(e *event, reason string, doc bson.Raw) *kgo.Record {
	id, _ := schemas.CanonicalID(e.id)
	return schemas.DeadLetter(p.topics.DLQ(), e.ns, id, e.op, schemas.Version(e.clusterTime), reason, doc)
}

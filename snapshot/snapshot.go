package snapshot

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// Config holds the snapshot's own settings.
type Config struct {
	BatchSize int // documents per find batch
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{BatchSize: 1000} }

// RegisterFlags registers the snapshot flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "documents per MongoDB find batch")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.BatchSize < 1 {
		return fmt.Errorf("batch-size: %d, want at least 1", c.BatchSize)
	}
	return nil
}

// Snapshot reads mapped collections and publishes their documents.
type Snapshot struct {
	cfg      Config
	mapping  *schemas.Mapping
	mongo    *mongo.Client
	kafka    *kgo.Client
	topics   topic.Config
	registry *schemas.Registry
	log      *slog.Logger
}

// New returns a snapshot. The Kafka client must be a plain (non-group)
// producer client; it is also used for the schema registry.
func New(cfg Config, m *schemas.Mapping, mc *mongo.Client, kc *kgo.Client, tc topic.Config, log *slog.Logger) *Snapshot {
	return &Snapshot{
		cfg: cfg, mapping: m, mongo: mc, kafka: kc, topics: tc, log: log,
		registry: schemas.NewRegistry(kc, tc.Schemas()),
	}
}

// CollectionStats counts what a snapshot of one collection did.
type CollectionStats struct {
	Source    schemas.Namespace
	Topic     string
	Documents int64
	Conflicts int64 // values kept in _extra because they did not fit their column
	Elapsed   time.Duration
}

// Run snapshots every mapped collection in turn. It returns ctx.Err() if ctx is
// cancelled, and returns only once every record produced is acknowledged.
func (s *Snapshot) Run(ctx context.Context) ([]CollectionStats, error) {
	if err := topic.EnsureSchemas(ctx, s.kafka, s.topics); err != nil {
		return nil, err
	}
	var stats []CollectionStats
	for i := range s.mapping.Collections {
		st, err := s.collection(ctx, &s.mapping.Collections[i])
		if err != nil {
			return stats, err
		}
		stats = append(stats, st)
	}
	return stats, nil
}

// produceErr keeps the first error of asynchronous produce callbacks.
type produceErr struct {
	once sync.Once
	err  atomic.Pointer[error]
}

func (p *produceErr) set(err error) { p.once.Do(func() { p.err.Store(&err) }) }

func (p *produceErr) get() error {
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *Snapshot) collection(ctx context.Context, c *schemas.Collection) (CollectionStats, error) {
	start := time.Now()
	st := CollectionStats{Source: c.Source, Topic: s.topics.Records(c.Source.Database, c.Source.Collection)}
	if err := topic.EnsureRecords(ctx, s.kafka, s.topics, st.Topic); err != nil {
		return st, err
	}
	schema, err := schemas.NewSchema(c.Source, c.TargetTable())
	if err != nil {
		return st, err
	}
	if err := s.registry.Register(ctx, schema); err != nil {
		return st, err
	}

	// The version of every row read below: taken before the read starts, so a
	// change made while the read runs carries a later version and wins.
	ts, err := source.ClusterTime(ctx, s.mongo)
	if err != nil {
		return st, fmt.Errorf("snapshot of %s: %w", c.Source, err)
	}
	version := schemas.Version(ts)

	coll := s.mongo.Database(c.Source.Database).Collection(c.Source.Collection)
	cur, err := coll.Find(ctx, bson.D{}, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetBatchSize(int32(s.cfg.BatchSize)))
	if err != nil {
		return st, fmt.Errorf("snapshot of %s: reading: %w", c.Source, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))

	var perr produceErr
	var buf []byte
	for cur.Next(ctx) {
		if err := perr.get(); err != nil {
			break
		}
		doc, err := c.Normalize(c.Source.Database, cur.Current)
		if err != nil {
			return st, fmt.Errorf("snapshot of %s: %w", c.Source, err)
		}
		if len(doc.Conflicts) > 0 {
			st.Conflicts += int64(len(doc.Conflicts))
		}
		env := &schemas.Envelope{
			Op: schemas.OpRead, Version: version, Tenant: doc.Tenant, ID: doc.ID, Row: doc.Row,
			Source: schemas.Source{Database: c.Source.Database, Collection: c.Source.Collection,
				ClusterTime: version, Snapshot: true},
		}
		buf, err = schema.Encode(buf[:0], env)
		if err != nil {
			return st, err
		}
		rec := &kgo.Record{Topic: st.Topic, Key: schemas.Key(doc.Tenant, doc.ID), Value: append([]byte(nil), buf...)}
		// Produce blocks while the client's buffer is full: that bounds the
		// documents in flight.
		s.kafka.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				perr.set(fmt.Errorf("producing %s to %s: %w", r.Key, r.Topic, err))
			}
		})
		st.Documents++
	}
	if err := cur.Err(); err != nil {
		return st, fmt.Errorf("snapshot of %s: reading: %w", c.Source, err)
	}
	if err := s.kafka.Flush(ctx); err != nil {
		return st, fmt.Errorf("snapshot of %s: flushing: %w", c.Source, err)
	}
	if err := perr.get(); err != nil {
		return st, fmt.Errorf("snapshot of %s: %w", c.Source, err)
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	if st.Conflicts > 0 {
		s.log.Warn("values did not fit their columns and were kept in _extra",
			"collection", c.Source.String(), "count", st.Conflicts)
	}
	return st, nil
}

package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/consumer"
	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// sink is one test's records topic, its table and its consumer settings,
// against the real Kafka and PostgreSQL.
type sink struct {
	t      *testing.T
	tcfg   topic.Config
	kc     *kgo.Client
	pool   *pgxpool.Pool
	schema *schemas.Schema
	coll   *schemas.Collection
	topic  string
	table  string
	group  string
	ns     schemas.Namespace
}

// newSink creates a records topic of the given partitions and registers the
// schema of a small table (name text, qty bigint) in the test's own prefix.
func newSink(t *testing.T, partitions int) *sink {
	t.Helper()
	tcfg, kc := services.Kafka(t)
	_, pool := services.Postgres(t)
	return newSinkOn(t, tcfg, kc, pool, partitions)
}

func newSinkOn(t *testing.T, tcfg topic.Config, kc *kgo.Client, pool *pgxpool.Pool, partitions int) *sink {
	t.Helper()
	return newSinkWith(t, tcfg, kc, pool, partitions, func(table string) *schemas.Collection {
		return &schemas.Collection{Table: table, Columns: []schemas.Column{
			{Name: "name", Type: schemas.Text}, {Name: "qty", Type: schemas.BigInt}}}
	})
}

// newSinkWith is newSinkOn for the collection mapping returns for the
// test's own table name.
func newSinkWith(t *testing.T, tcfg topic.Config, kc *kgo.Client, pool *pgxpool.Pool, partitions int,
	mapping func(table string) *schemas.Collection) *sink {
	t.Helper()
	ctx := services.Context(t, time.Minute)
	name := services.Unique(t)
	tcfg.Partitions = partitions
	s := &sink{t: t, tcfg: tcfg, kc: kc, pool: pool, table: name + "_items", group: name + "-sink",
		ns: schemas.Namespace{Database: name, Collection: "items"}}
	s.coll = mapping(s.table)
	var err error
	if s.schema, err = schemas.NewSchema(s.ns, s.coll.TargetTable()); err != nil {
		t.Fatal(err)
	}
	s.topic = tcfg.Records(s.ns.Database, s.ns.Collection)
	if err := topic.EnsureSchemas(ctx, kc, tcfg); err != nil {
		t.Fatal(err)
	}
	if err := topic.EnsureRecords(ctx, kc, tcfg, s.topic); err != nil {
		t.Fatal(err)
	}
	if err := schemas.NewRegistry(kc, tcfg.Schemas()).Register(ctx, s.schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tt := range s.schema.Table.All() {
			_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+schemas.QuoteIdent(tt.Name))
		}
	})
	return s
}

// change is one record the test writes: qty < 0 means a delete.
type change struct {
	id      string
	version int64
	name    string
	qty     int64
	del     bool
}

func (s *sink) envelope(c change) *schemas.Envelope {
	e := &schemas.Envelope{Op: schemas.OpUpdate, Version: c.version, Tenant: "acme", ID: c.id,
		Source: schemas.Source{Database: s.ns.Database, Collection: s.ns.Collection, ClusterTime: c.version}}
	if c.del {
		e.Op = schemas.OpDelete
	} else {
		e.Row = map[string]any{"name": c.name, "qty": c.qty}
	}
	return e
}

// record encodes a change as the Kafka record docshift writes.
func (s *sink) record(c change) *kgo.Record {
	s.t.Helper()
	v, err := s.schema.Encode(nil, s.envelope(c))
	if err != nil {
		s.t.Fatal(err)
	}
	return &kgo.Record{Topic: s.topic, Key: schemas.Key("acme", c.id), Value: v}
}

// produce writes records in order and returns them with their offsets.
func (s *sink) produce(ctx context.Context, recs ...*kgo.Record) []*kgo.Record {
	s.t.Helper()
	res := s.kc.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	out := make([]*kgo.Record, len(res))
	for i, r := range res {
		out[i] = r.Record
	}
	return out
}

// config is a consumer config for this sink's topic and group.
func (s *sink) config() consumer.Config {
	cfg := consumer.DefaultConfig()
	cfg.Group = s.group
	cfg.Topics = s.topic
	cfg.RetryBackoff = 20 * time.Millisecond
	cfg.RetryBackoffMax = 500 * time.Millisecond
	return cfg
}

// run runs one consumer until it stops (StopAtEnd) and returns Run's error.
func (s *sink) run(ctx context.Context, cfg consumer.Config, pool *pgxpool.Pool, reg prometheus.Registerer) error {
	s.t.Helper()
	c, err := consumer.New(ctx, cfg, s.tcfg, pool, quietLog(), reg)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	return c.Run(ctx)
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// row is a target row as the tests compare it.
type row struct {
	version int64
	deleted bool
	name    *string
	qty     *int64
}

func (r row) String() string {
	if r.deleted {
		return fmt.Sprintf("v%d deleted", r.version)
	}
	return fmt.Sprintf("v%d %s/%d", r.version, deref(r.name), deref(r.qty))
}

func deref[T any](p *T) any {
	if p == nil {
		return "NULL"
	}
	return *p
}

// want is the row a change leaves.
func want(c change) row {
	if c.del {
		return row{version: c.version, deleted: true}
	}
	return row{version: c.version, name: &c.name, qty: &c.qty}
}

// rows reads the target table by id.
func (s *sink) rows(ctx context.Context, pool *pgxpool.Pool) map[string]row {
	s.t.Helper()
	rs, err := pool.Query(ctx, fmt.Sprintf("SELECT _id, _version, _deleted, name, qty FROM %s", schemas.QuoteIdent(s.table)))
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]row{}
	var id string
	var r row
	if _, err := pgx.ForEachRow(rs, []any{&id, &r.version, &r.deleted, &r.name, &r.qty}, func() error {
		out[id] = r
		return nil
	}); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// assertRows checks the table holds exactly the expected rows.
func (s *sink) assertRows(ctx context.Context, pool *pgxpool.Pool, expected map[string]row) {
	s.t.Helper()
	got := s.rows(ctx, pool)
	bad := 0
	for id, w := range expected {
		if g, ok := got[id]; !ok || g.String() != w.String() {
			if bad++; bad <= 10 {
				s.t.Errorf("row %s: got %v (present %v), want %v", id, g, ok, w)
			}
		}
	}
	if len(got) != len(expected) {
		s.t.Errorf("table has %d rows, want %d", len(got), len(expected))
	}
	if bad > 0 {
		s.t.Fatalf("%d of %d rows differ", bad, len(expected))
	}
}

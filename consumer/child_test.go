package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// childMapping maps orders with an items array, each item with a parts array.
const childMapping = `collections:
  - source: shop.orders
    tenant: {constant: acme}
    table: {table}
    columns:
      - {path: name, type: text}
    children:
      - path: items
        columns:
          - {path: sku, type: text}
          - {path: qty, type: integer}
        children:
          - path: parts
            columns:
              - {path: n, type: bigint}
`

// newMappedSink is a sink whose table comes from a mapping file's text, with
// its first collection's table name written {table}.
func newMappedSink(t *testing.T, partitions int, yamlText string) *sink {
	t.Helper()
	tcfg, kc := services.Kafka(t)
	_, pool := services.Postgres(t)
	return newSinkWith(t, tcfg, kc, pool, partitions, func(table string) *schemas.Collection {
		m, err := schemas.ParseMapping("mapping.yaml", []byte(strings.ReplaceAll(yamlText, "{table}", table)))
		if err != nil {
			t.Fatal(err)
		}
		return &m.Collections[0]
	})
}

// docRecord normalizes a document as the snapshot does and encodes it as the
// record of the given version.
func (s *sink) docRecord(version int64, doc bson.D) *kgo.Record {
	s.t.Helper()
	raw, err := bson.Marshal(doc)
	if err != nil {
		s.t.Fatal(err)
	}
	d, err := s.coll.Normalize(s.ns.Database, raw)
	if err != nil {
		s.t.Fatal(err)
	}
	e := &schemas.Envelope{Op: schemas.OpUpdate, Version: version, Tenant: d.Tenant, ID: d.ID, Row: d.Row,
		Source: schemas.Source{Database: s.ns.Database, Collection: s.ns.Collection, ClusterTime: version}}
	v, err := s.schema.Encode(nil, e)
	if err != nil {
		s.t.Fatal(err)
	}
	return &kgo.Record{Topic: s.topic, Key: schemas.Key(d.Tenant, d.ID), Value: v}
}

// order is a source document of childMapping: items of parts.
type order struct {
	id    string
	items []item
}

type item struct {
	sku   string
	qty   int32
	parts []int64
}

func (o order) doc() bson.D {
	items := bson.A{}
	for _, it := range o.items {
		parts := bson.A{}
		for _, n := range it.parts {
			parts = append(parts, bson.D{{Key: "n", Value: n}})
		}
		items = append(items, bson.D{{Key: "sku", Value: it.sku}, {Key: "qty", Value: it.qty}, {Key: "parts", Value: parts}})
	}
	return bson.D{{Key: "_id", Value: o.id}, {Key: "name", Value: "order " + o.id}, {Key: "items", Value: items}}
}

// childRows renders the child rows the orders should leave, one line per row
// in each child table, sorted.
func childRows(orders ...order) (items, parts []string) {
	for _, o := range orders {
		id := fmt.Sprintf("%q", o.id) // canonical Extended JSON of a string _id
		for i, it := range o.items {
			items = append(items, fmt.Sprintf("%s {%d} %s %d", id, i, it.sku, it.qty))
			for j, n := range it.parts {
				parts = append(parts, fmt.Sprintf("%s {%d,%d} %d", id, i, j, n))
			}
		}
	}
	slices.Sort(items)
	slices.Sort(parts)
	return items, parts
}

// assertChildren checks the child tables hold exactly the rows of orders.
func (s *sink) assertChildren(ctx context.Context, orders ...order) {
	s.t.Helper()
	wantItems, wantParts := childRows(orders...)
	read := func(table, cols string) []string {
		rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT concat_ws(' ', _id, _idx::text, %s) FROM %s WHERE _tenant = 'acme'",
			cols, schemas.QuoteIdent(table)))
		if err != nil {
			s.t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			s.t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	items, parts := s.schema.Table.Children[0], s.schema.Table.Children[0].Children[0]
	if got := read(items.Name, "sku, qty"); !slices.Equal(got, wantItems) {
		s.t.Errorf("items:\n got %q\nwant %q", got, wantItems)
	}
	if got := read(parts.Name, "n"); !slices.Equal(got, wantParts) {
		s.t.Errorf("parts:\n got %q\nwant %q", got, wantParts)
	}
}

// TestChildRowsFollowTheirParent applies orders whose item arrays (and the
// parts arrays inside them) shrink, grow and change, whose parents are
// deleted and re-inserted, with older versions arriving after newer ones:
// after each step the child tables hold exactly the arrays of each parent's
// newest version, and a deleted parent has none.
func TestChildRowsFollowTheirParent(t *testing.T) {
	s := newMappedSink(t, 2, childMapping)
	ctx := services.Context(t, 2*time.Minute)
	run := func(maxBatch int, recs ...*kgo.Record) {
		t.Helper()
		s.produce(ctx, recs...)
		cfg := s.config()
		cfg.StopAtEnd = true
		cfg.MaxBatch = maxBatch
		if err := s.run(ctx, cfg, s.pool, nil); err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	a := order{id: "a", items: []item{{"a1", 1, []int64{10, 11}}, {"a2", 2, nil}, {"a3", 3, []int64{30}}}}
	b := order{id: "b", items: []item{{"b1", 1, nil}, {"b2", 2, []int64{20}}}}
	c := order{id: "c"}
	run(100, s.docRecord(10, a.doc()), s.docRecord(10, b.doc()), s.docRecord(10, c.doc()))
	s.assertChildren(ctx, a, b, c)

	// Shrink a (and change its remaining item's parts), grow b with nested
	// changes, give c items. An older b arrives after the newer one, in a
	// batch of its own.
	a2 := order{id: "a", items: []item{{"a1", 5, []int64{12}}}}
	b2 := order{id: "b", items: []item{{"b1", 1, []int64{1, 2, 3}}, {"b2", 2, nil}, {"b3", 3, []int64{4}}, {"b4", 4, nil}}}
	c2 := order{id: "c", items: []item{{"c1", 7, []int64{70}}, {"c2", 8, nil}}}
	staleB := order{id: "b", items: []item{{"stale", 9, []int64{99}}}}
	run(1, s.docRecord(20, a2.doc()), s.docRecord(20, b2.doc()), s.docRecord(15, staleB.doc()), s.docRecord(20, c2.doc()))
	s.assertChildren(ctx, a2, b2, c2)

	// Delete a; stale versions of b and c, in one batch with the newer c.
	c3 := order{id: "c", items: []item{{"c9", 9, []int64{1}}}}
	del := s.record(change{id: `"a"`, version: 30, del: true})
	run(100, del, s.docRecord(12, staleB.doc()), s.docRecord(25, c3.doc()), s.docRecord(21, c2.doc()))
	s.assertChildren(ctx, b2, c3)

	// An older a after its delete stays deleted; a newer one brings a back
	// with its items.
	a4 := order{id: "a", items: []item{{"a4", 4, []int64{40, 41}}}}
	run(100, s.docRecord(29, a.doc()))
	s.assertChildren(ctx, b2, c3)
	run(100, s.docRecord(40, a4.doc()))
	s.assertChildren(ctx, a4, b2, c3)
	rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT concat_ws(' ', _id, _version, _deleted) FROM %s ORDER BY _id", schemas.QuoteIdent(s.table)))
	if err != nil {
		t.Fatal(err)
	}
	parents, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if want := []string{`"a" 40 f`, `"b" 20 f`, `"c" 25 f`}; err != nil || !slices.Equal(parents, want) {
		t.Errorf("parent rows %q (%v), want %q", parents, err, want)
	}
}

package schemas

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const ordersMapping = `collections:
  - source: shop.orders
    tenant: {field: tenant_id}
    columns:
      - {path: customer.name, type: text}
      - {path: customer.email, type: text}
      - {path: status, type: text}
      - {path: total, type: "numeric(12,2)"}
      - {path: qty, type: integer}
      - {path: paid, type: boolean}
      - {path: created_at, type: timestamptz}
      - {path: tags, type: jsonb}
    children:
      - path: items
        columns:
          - {path: sku, type: text}
          - {path: n, type: integer}
          - {path: price, type: double precision}
`

// ordersDocs makes n orders-like documents with 3 nested items each.
func ordersDocs(n int) []bson.Raw {
	out := make([]bson.Raw, n)
	for i := range n {
		b, _ := bson.Marshal(bson.D{
			{Key: "_id", Value: bson.NewObjectIDFromTimestamp(time.Unix(int64(1700000000+i), 0))},
			{Key: "tenant_id", Value: fmt.Sprintf("tenant-%02d", i%16)},
			{Key: "customer", Value: bson.D{{Key: "name", Value: "Ann Example"}, {Key: "email", Value: "ann@example.com"}}},
			{Key: "status", Value: "paid"},
			{Key: "total", Value: float64(i%100000) / 100},
			{Key: "qty", Value: int32(i % 9)},
			{Key: "paid", Value: i%2 == 0},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(time.Unix(1700000000+int64(i), 0))},
			{Key: "tags", Value: bson.A{"a", "b"}},
			{Key: "note", Value: "an unmapped field"},
			{Key: "items", Value: bson.A{
				bson.D{{Key: "sku", Value: "sku-1"}, {Key: "n", Value: int32(1)}, {Key: "price", Value: 9.5}},
				bson.D{{Key: "sku", Value: "sku-2"}, {Key: "n", Value: int32(2)}, {Key: "price", Value: 19.5}},
				bson.D{{Key: "sku", Value: "sku-3"}, {Key: "n", Value: int32(3)}, {Key: "price", Value: 29.5}},
			}},
		})
		out[i] = b
	}
	return out
}

// BenchmarkNormalize measures normalize + Avro encode per orders-like
// document, beside decoding the same documents' BSON alone (bson.Unmarshal
// into bson.D), on one core, in the same run. It prints
//
//	bench normalize: ours=<docs/s> raw=<docs/s> ratio=<ours/raw>
func BenchmarkNormalize(b *testing.B) {
	c, s := benchCollection(b, ordersMapping)
	docs := ordersDocs(20000)
	rounds := max(1, b.N)
	b.ResetTimer()
	start := time.Now()
	var buf []byte
	for range rounds {
		for _, d := range docs {
			doc, err := c.Normalize("shop", d)
			if err != nil {
				b.Fatal(err)
			}
			if buf, err = s.Encode(buf[:0], &Envelope{Op: OpRead, Version: 1, Tenant: doc.Tenant, ID: doc.ID, Row: doc.Row}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ours := float64(rounds*len(docs)) / time.Since(start).Seconds()
	b.StopTimer()
	start = time.Now()
	for range rounds {
		for _, d := range docs {
			var out bson.D
			if err := bson.Unmarshal(d, &out); err != nil {
				b.Fatal(err)
			}
		}
	}
	raw := float64(rounds*len(docs)) / time.Since(start).Seconds()
	fmt.Printf("bench normalize: ours=%.0f raw=%.0f ratio=%.2f\n", ours, raw, ours/raw)
}

// BenchmarkNormalizeInto measures the snapshot worker's per-document work in
// this package, NormalizeInto and Encode into reused space, on documents of
// the snapshot benchmark's shape (four mapped scalars, the tenant and one
// unmapped field), and reports the time, bytes and allocations per
// document. It normalizes 100,000 documents per b.N, so that `make bench`'s
// one iteration measures something.
func BenchmarkNormalizeInto(b *testing.B) {
	c, s := benchCollection(b, `collections:
  - source: db.bench
    tenant: {field: tenant_id}
    columns:
      - {path: n, type: bigint}
      - {path: status, type: text}
      - {path: total, type: double}
      - {path: created_at, type: timestamptz}
`)
	docs := make([]bson.Raw, 1000)
	for i := range docs {
		docs[i], _ = bson.Marshal(bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%02d", i%20)},
			{Key: "n", Value: int64(i)}, {Key: "status", Value: "paid"}, {Key: "total", Value: float64(i) / 7},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(time.Unix(int64(1_700_000_000+i), 0))},
			{Key: "note", Value: "a note that goes to _extra"}})
	}
	const perN = 100_000
	var d Document
	var buf []byte
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		for i := range perN {
			if err := c.NormalizeInto("db", docs[i%len(docs)], &d); err != nil {
				b.Fatal(err)
			}
			env := Envelope{Op: OpRead, Version: 1, Tenant: d.Tenant, ID: d.ID, Row: d.Row}
			if buf, err = s.Encode(buf[:0], &env); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N * perN)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/doc")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/doc")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/doc")
}

// benchCollection is the first collection of a mapping and its schema.
func benchCollection(b *testing.B, mapping string) (*Collection, *Schema) {
	b.Helper()
	m, err := ParseMapping("bench.yaml", []byte(mapping))
	if err != nil {
		b.Fatal(err)
	}
	c := &m.Collections[0]
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		b.Fatal(err)
	}
	return c, s
}

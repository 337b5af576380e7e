package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

const benchMapping = `collections:
  - source: shop.orders
    tenant: {field: tenant_id}
    columns:
      - {path: customer, type: text}
      - {path: status, type: text}
      - {path: total, type: double precision}
      - {path: qty, type: integer}
      - {path: paid, type: boolean}
      - {path: created_at, type: timestamptz}
      - {path: note, type: text}
    children:
      - path: items
        columns:
          - {path: sku, type: text}
          - {path: n, type: integer}
`

// recordedEvents makes n change events as a change stream returns them:
// inserts, updates (with the looked-up document) and deletes (with the
// pre-image) of orders-like documents of 16 tenants.
func recordedEvents(n int) []bson.Raw {
	out := make([]bson.Raw, 0, n)
	for i := range n {
		id := int32(i / 3)
		doc := bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%02d", id%16)},
			{Key: "customer", Value: "customer-" + strconv.Itoa(i%1000)}, {Key: "status", Value: "paid"},
			{Key: "total", Value: float64(i) / 7}, {Key: "qty", Value: int32(i % 9)}, {Key: "paid", Value: i%2 == 0},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(time.Unix(1700000000+int64(i), 0))},
			{Key: "note", Value: "a note of some length for the benchmark"},
			{Key: "items", Value: bson.A{
				bson.D{{Key: "sku", Value: "a"}, {Key: "n", Value: int32(1)}},
				bson.D{{Key: "sku", Value: "b"}, {Key: "n", Value: int32(2)}},
				bson.D{{Key: "sku", Value: "c"}, {Key: "n", Value: int32(3)}},
			}}}
		op := []string{"insert", "update", "delete"}[i%3]
		ev := bson.D{
			{Key: "_id", Value: bson.D{{Key: "_data", Value: fmt.Sprintf("%016x", i)}}},
			{Key: "operationType", Value: op},
			{Key: "clusterTime", Value: bson.Timestamp{T: 1700000000, I: uint32(i + 1)}},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "orders"}}},
			{Key: "documentKey", Value: bson.D{{Key: "_id", Value: id}}},
		}
		if op == "delete" {
			ev = append(ev, bson.E{Key: "fullDocumentBeforeChange", Value: doc})
		} else {
			ev = append(ev, bson.E{Key: "fullDocument", Value: doc})
		}
		b, err := bson.Marshal(ev)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// BenchmarkProduce measures events/s through the producer's own path (parse,
// normalize, Avro, transactional produce with a checkpoint per batch of
// 1000) from a recorded stream, beside a raw idempotent produce of the same
// record bytes to the same broker, in the same run. It prints
//
//	bench produce: ours=<events/s> raw=<events/s> ratio=<ours/raw> rss_mb=<peak>
func BenchmarkProduce(b *testing.B) {
	n := 200000
	if s := os.Getenv("DOCSHIFT_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	tcfg, kc := services.Kafka(b)
	ctx := services.Context(b, 30*time.Minute)
	m, err := schemas.ParseMapping("bench", []byte(benchMapping))
	if err != nil {
		b.Fatal(err)
	}
	events := recordedEvents(n)
	cfg := DefaultConfig()
	p, err := New(cfg, m, nil, kc, tcfg, discardLog(), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, ensure := range []func(context.Context, *kgo.Client, topic.Config) error{topic.EnsureStreams, topic.EnsureSchemas, topic.EnsureDLQ} {
		if err := ensure(ctx, kc, tcfg); err != nil {
			b.Fatal(err)
		}
	}
	st := &stream{p: p, id: "collection:shop.orders", db: "shop", coll: "orders", warned: map[string]bool{}}
	if err := st.open(ctx); err != nil {
		b.Fatal(err)
	}
	defer st.kc.Close()
	st.ctx = ctx
	st.cp = &Checkpoint{Stream: st.id}

	// The records of the first batches, for the raw run below.
	var recs []*kgo.Record
	for _, raw := range events[:min(n, 3*cfg.MaxBatch)] {
		e, err := parseEvent(raw)
		if err != nil {
			b.Fatal(err)
		}
		more, err := st.records(e)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, more...)
	}

	b.ResetTimer()
	start := time.Now()
	if err := st.loop(ctx, &recorded{events: events}); !errors.Is(err, errRecordedEnd) {
		b.Fatal(err)
	}
	if st.cp.Events != int64(n) {
		b.Fatalf("committed %d events of %d", st.cp.Events, n)
	}
	ours := float64(n) / time.Since(start).Seconds()
	b.StopTimer()

	// The raw limit: the same record bytes (the first batches' records,
	// repeated to the same count), produced idempotently and flushed.
	raw, err := topic.NewClient(ctx, tcfg, nil, kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	rawTopic := tcfg.Prefix + ".raw.bench"
	if err := topic.EnsureRecords(ctx, kc, tcfg, rawTopic); err != nil {
		b.Fatal(err)
	}
	perEvent := float64(len(recs)) / float64(min(n, 3*cfg.MaxBatch))
	total := int(perEvent * float64(n))
	start = time.Now()
	for i := range total {
		r := recs[i%len(recs)]
		raw.Produce(ctx, &kgo.Record{Topic: rawTopic, Key: r.Key, Value: r.Value}, nil)
	}
	if err := raw.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	rawRate := float64(n) / time.Since(start).Seconds()
	fmt.Printf("bench produce: ours=%.0f raw=%.0f ratio=%.2f rss_mb=%.0f\n", ours, rawRate, ours/rawRate, services.PeakRSSMB())
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// recorded replays recorded change events as a change stream would return
// them, then ends with errRecordedEnd.
type recorded struct {
	events []bson.Raw
	next   int
}

var errRecordedEnd = errors.New("end of the recorded stream")

func (r *recorded) TryNext(context.Context) bool {
	if r.next >= len(r.events) {
		return false
	}
	r.next++
	return true
}

func (r *recorded) Event() bson.Raw { return r.events[r.next-1] }

func (r *recorded) Err() error {
	if r.next >= len(r.events) {
		return errRecordedEnd
	}
	return nil
}

func (r *recorded) ResumeToken() bson.Raw { return nil }

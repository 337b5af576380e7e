package snapshot

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// TestOversizeDocument: a document whose record would be larger than a Kafka
// record may be (15 MB of BSON, an array of 900,000 int64s, is over 20 MiB
// as the canonical Extended JSON of its _extra column) stops the snapshot
// with an error naming it and --oversize, and nothing of its chunk is
// published. Run again with --oversize=dlq, the run resumes and completes:
// the document's key and size go to the dead-letter topic, every other
// document has its snapshot record, and the large one has none.
func TestOversizeDocument(t *testing.T) {
	const n, bigID, bigText = 200, int64(1_000_000), `{"$numberLong":"1000000"}` // its _id, as docshift names it
	r := newOrdersRig(t, n)
	big := make(bson.A, 900_000)
	for i := range big {
		big[i] = int64(i)
	}
	if _, err := r.mongo.Database(r.db).Collection("orders").InsertOne(r.ctx,
		bson.D{{Key: "_id", Value: bigID}, {Key: "tenant_id", Value: "tenant-1"}, {Key: "n", Value: int64(1)}, {Key: "big", Value: big}}); err != nil {
		t.Fatal(err)
	}

	cfg := r.config(2)
	_, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx)
	if !errors.Is(err, ErrOversize) || !strings.Contains(err.Error(), "document "+bigText+" of "+r.db+".orders") ||
		!strings.Contains(err.Error(), "--oversize=dlq") {
		t.Fatalf("snapshot with a document too large for a record: %v, want ErrOversize naming document %s and --oversize=dlq", err, bigText)
	}
	records := r.topics.Records(r.db, "orders")
	bigKey := string(schemas.AppendKey(nil, "tenant-1", bigText))
	for _, rec := range services.ReadCommitted(r.ctx, t, r.topics, records) {
		if string(rec.Key) == bigKey {
			t.Fatal("a record of the large document was published by the failed run")
		}
	}

	cfg.Oversize = topic.OversizeDLQ
	reg := prometheus.NewRegistry()
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), reg, nil).Run(r.ctx); err != nil {
		t.Fatalf("snapshot with --oversize=dlq: %v", err)
	}
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Run != 1 || st.Complete.IsZero() || documentsDone(st) != n+1 {
		t.Fatalf("after --oversize=dlq: run %d complete %v with %d documents done, want run 1 resumed and complete with %d", st.Run, !st.Complete.IsZero(), documentsDone(st), n+1)
	}
	if got := counter(t, reg, "docshift_snapshot_dead_letters_total"); got != 1 {
		t.Fatalf("docshift_snapshot_dead_letters_total = %v, want 1", got)
	}

	keys := map[string]int{}
	for _, rec := range services.ReadCommitted(r.ctx, t, r.topics, records) {
		if _, fence, _ := schemas.ParseFence(rec); !fence {
			keys[string(rec.Key)]++
		}
	}
	if keys[bigKey] != 0 || len(keys) != n {
		t.Fatalf("records of %d keys, %d of the large document: want the %d others and none of it", len(keys), keys[bigKey], n)
	}
	var dead int
	for _, rec := range services.ReadCommitted(r.ctx, t, r.topics, r.topics.DLQ()) {
		if string(rec.Key) != r.db+".orders/"+bigText {
			continue
		}
		dead++
		headers := map[string]string{}
		for _, h := range rec.Headers {
			headers[h.Key] = string(h.Value)
		}
		if !strings.Contains(headers["error"], "exceeds the record limit") || headers["source"] != r.db+".orders" || headers["op"] != "r" || len(rec.Value) != 0 {
			t.Fatalf("dead letter of the large document: headers %v, %d value bytes; want the reason, the source, op r and no value", headers, len(rec.Value))
		}
	}
	if dead != 1 {
		t.Fatalf("%d dead letters of the large document, want 1", dead)
	}
}

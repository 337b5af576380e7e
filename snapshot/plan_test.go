package snapshot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// TestPlanCoversEveryDocumentOnce plans a collection whose _ids mix BSON
// types on the real MongoDB wire server and checks that the chunks' filters
// select every document exactly once, sorted by _id within each chunk.
func TestPlanCoversEveryDocumentOnce(t *testing.T) {
	_, mc := services.Mongo(t)
	ctx := services.Context(t, 2*time.Minute)
	coll := mc.Database(services.Unique(t)).Collection("mixed")
	t.Cleanup(func() { _ = coll.Database().Drop(ctx) })

	const n = 3000
	docs := make([]any, 0, n+3)
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: services.MixedID(i)}, {Key: "n", Value: i}})
	}
	// One _id each of rare types the sample will likely miss.
	docs = append(docs, bson.D{{Key: "_id", Value: true}}, bson.D{{Key: "_id", Value: bson.DateTime(7)}},
		bson.D{{Key: "_id", Value: bson.Null{}}})
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		chunkDocs  int
		wantChunks func(int) bool
	}{
		{"small collection is one chunk", n * 2, func(c int) bool { return c == 1 }},
		{"split per bracket", 100, func(c int) bool { return c >= 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ChunkDocs = tc.chunkDocs
			count, _, chunks, err := plan(ctx, coll, "db.mixed", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if count != n+3 || !tc.wantChunks(len(chunks)) {
				t.Fatalf("count %d, %d chunks", count, len(chunks))
			}
			seen := map[string]string{}
			for _, c := range chunks {
				f, err := c.Filter()
				if err != nil {
					t.Fatal(err)
				}
				cur, err := coll.Find(ctx, f, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
				if err != nil {
					t.Fatalf("chunk %s: %v", c.ID(), err)
				}
				for cur.Next(ctx) {
					id, _ := schemas.CanonicalID(cur.Current.Lookup("_id"))
					if prev, ok := seen[id]; ok {
						t.Fatalf("_id %s is in chunks %s and %s", id, prev, c.ID())
					}
					seen[id] = c.ID()
				}
				if err := cur.Err(); err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != n+3 {
				t.Fatalf("chunks cover %d documents, want %d", len(seen), n+3)
			}
		})
	}
}

// TestPlanChunksAreEven: a collection small enough to have its _ids scanned
// is split into chunks of nearly the target size (the scan keeps 400 _ids
// per chunk, so sizes vary by about 5%), so no worker is left reading a long
// chunk alone at the end.
func TestPlanChunksAreEven(t *testing.T) {
	_, mc := services.Mongo(t)
	ctx := services.Context(t, 2*time.Minute)
	coll := mc.Database(services.Unique(t)).Collection("even")
	t.Cleanup(func() { _ = coll.Database().Drop(ctx) })
	const n, per = 40_000, 4_000
	docs := make([]any, 0, n)
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "n", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ChunkDocs = per
	_, _, chunks, err := plan(ctx, coll, "db.even", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < n/per-1 || len(chunks) > n/per+1 {
		t.Fatalf("%d chunks, want about %d", len(chunks), n/per)
	}
	var total int64
	for _, c := range chunks {
		f, err := c.Filter()
		if err != nil {
			t.Fatal(err)
		}
		k, err := coll.CountDocuments(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		total += k
		// 400 samples a chunk: a chunk's size has a standard deviation of
		// about 5%; 30% off is six of them.
		if want := int64(n / len(chunks)); k < want*7/10 || k > want*13/10 {
			t.Errorf("chunk %s holds %d documents, want about %d", c.ID(), k, want)
		}
	}
	if total != n {
		t.Fatalf("chunks hold %d documents, want %d", total, n)
	}
}

// TestManySmallCollections snapshots 100 collections of one document each
// on the real services: every one is planned and read, and their one-chunk
// tasks are spread over the task partitions, so every worker reads some
// (placed by chunk index alone, they all went to the first partition and
// one worker read them all).
func TestManySmallCollections(t *testing.T) {
	const colls = 100
	r := newOrdersRig(t, 10)
	var m strings.Builder
	m.WriteString("collections:\n")
	for i := range colls {
		coll := r.mongo.Database(r.db).Collection(fmt.Sprintf("c%03d", i))
		if _, err := coll.InsertOne(r.ctx, bson.D{{Key: "_id", Value: int64(i)}, {Key: "tenant_id", Value: "t"}, {Key: "n", Value: int64(i)}}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&m, "  - source: %s.c%03d\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n", r.db, i)
	}
	mapping, err := schemas.ParseMapping("m.yaml", []byte(m.String()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.config(4)
	start := time.Now()
	stats, err := New(cfg, mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d collections of one document snapshotted in %s", colls, time.Since(start).Round(time.Millisecond))
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != colls || len(st.Plans) != colls || len(st.Done) != colls || documentsDone(st) != colls {
		t.Fatalf("%d collections reported, %d planned, %d chunks done with %d documents; want %d of each", len(stats), len(st.Plans), len(st.Done), documentsDone(st), colls)
	}
	byWorker := map[string]int{}
	for _, d := range st.Done {
		byWorker[d.Worker]++
	}
	if len(byWorker) != cfg.Workers {
		t.Errorf("chunks read per worker: %v; want all %d workers to read some", byWorker, cfg.Workers)
	}
}

package snapshot

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// TestCollectionJoinsAFinishedRun: a collection added to the mapping after a
// run completed is snapshotted by running again without --restart: the
// finished run is reopened, only the new collection is planned and read
// (every one of its documents once), and the run completes again. A run
// asked to start at or after a cluster time later than the recorded run's
// start (a producer's re-snapshot after a lost history) starts a new run
// that reads every collection.
func TestCollectionJoinsAFinishedRun(t *testing.T) {
	const items = 3_000
	r := newOrdersRig(t, 2_000)
	cfg := r.config(2)
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.checkComplete(t, 1)
	first, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}

	docs := make([]any, items)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("item-%05d", i)}, {Key: "tenant_id", Value: "tenant-1"}, {Key: "n", Value: int64(i)}}
	}
	if _, err := r.mongo.Database(r.db).Collection("items").InsertMany(r.ctx, docs); err != nil {
		t.Fatal(err)
	}
	both, err := schemas.ParseMapping("m.yaml", fmt.Appendf(nil, "collections:\n"+
		"  - source: %[1]s.orders\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n"+
		"  - source: %[1]s.items\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n", r.db))
	if err != nil {
		t.Fatal(err)
	}
	// Read slowly, so that the run is seen reopened while the new
	// collection is read: status, and a producer starting meanwhile, must
	// not take it for complete.
	slow := cfg
	slow.BatchSize, slow.slowBatches = 100, 50*time.Millisecond
	reg := prometheus.NewRegistry()
	ran := make(chan error, 1)
	go func() {
		_, err := New(slow, both, r.mongo, r.topics, quietTestLog(), reg, nil).Run(r.ctx)
		ran <- err
	}()
	for {
		st, err := ReadState(r.ctx, r.topics, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Plans[r.db+".items"] != nil {
			if !st.Complete.IsZero() || documentsDone(st) == int64(r.n+items) {
				t.Fatalf("the new collection is planned, %d documents done, and the run is complete: %v, want it reopened until every chunk is done",
					documentsDone(st), !st.Complete.IsZero())
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Run != 1 || st.Complete.IsZero() || documentsDone(st) != int64(r.n+items) {
		t.Fatalf("state: run %d complete %v with %d documents done, want run 1 complete again with %d", st.Run, !st.Complete.IsZero(), documentsDone(st), r.n+items)
	}
	if p := st.Plans[r.db+".orders"]; p == nil || p.PlannedAt != first.Plans[r.db+".orders"].PlannedAt {
		t.Fatalf("the finished collection was planned again: %+v", p)
	}
	if read := counter(t, reg, "docshift_snapshot_documents_read_total"); read != items {
		t.Fatalf("the second run read %v documents, want only the %d of the new collection", read, items)
	}
	keys := map[string]int{}
	for _, rec := range services.ReadCommitted(r.ctx, t, r.topics, r.topics.Records(r.db, "items")) {
		_, fence, err := schemas.ParseFence(rec)
		if err != nil {
			t.Fatal(err)
		}
		if fence {
			continue // the run's fence, one per partition
		}
		keys[string(rec.Key)]++
	}
	for k, n := range keys {
		if n != 1 {
			t.Fatalf("key %s has %d snapshot records, want 1", k, n)
		}
	}
	if len(keys) != items {
		t.Fatalf("%d keys of the new collection in its topic, want %d", len(keys), items)
	}

	// A run that must start after the recorded one started is a new run.
	cfg.RestartBefore = st.StartVersion + 1
	reg = prometheus.NewRegistry()
	if _, err := New(cfg, both, r.mongo, r.topics, quietTestLog(), reg, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = ReadState(r.ctx, r.topics, nil); err != nil {
		t.Fatal(err)
	}
	if st.Run != 2 || st.Complete.IsZero() || st.StartVersion < cfg.RestartBefore {
		t.Fatalf("state: run %d (start %d, complete %v), want a new run 2 started at or after %d, complete", st.Run, st.StartVersion, !st.Complete.IsZero(), cfg.RestartBefore)
	}
	if read := counter(t, reg, "docshift_snapshot_documents_read_total"); read != float64(r.n+items) {
		t.Fatalf("the new run read %v documents, want every one of both collections (%d)", read, r.n+items)
	}
}

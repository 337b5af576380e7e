package snapshot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// TestGroupSettler forms a group on the real broker over several
// rebalances (members joining 200ms apart) and checks that the settler
// releases its waiters only once the group is stable with every member in
// it and every partition assigned, and that it gives up after its longest
// wait when a member never joins.
func TestGroupSettler(t *testing.T) {
	tcfg, admin := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	const partitions = 8
	if err := topic.EnsureSnapshotTasks(ctx, admin, tcfg, partitions); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var members []*kgo.Client
	ids := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, cl := range members {
			id, _ := cl.GroupMetadata()
			out = append(out, id)
		}
		return out
	}
	for i := range 3 {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		cl, err := topic.NewClient(ctx, tcfg, nil, kgo.ConsumerGroup(tcfg.SnapshotGroup()),
			kgo.ConsumeTopics(tcfg.SnapshotTasks()), kgo.Balancers(kgo.CooperativeStickyBalancer()),
			kgo.HeartbeatInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		mu.Lock()
		members = append(members, cl)
		mu.Unlock()
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newGroupSettler(admin, tcfg.SnapshotGroup(), tcfg.SnapshotTasks(), ids, quiet)
	go s.run(ctx)
	if err := s.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.settled {
		t.Fatalf("the group of 3 members did not settle within %s", s.max)
	}
	dg, err := kadm.NewClient(admin).DescribeGroups(ctx, tcfg.SnapshotGroup())
	if err != nil {
		t.Fatal(err)
	}
	d := dg[tcfg.SnapshotGroup()]
	var assigned []string
	for _, m := range d.Members {
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range c.Topics {
				assigned = append(assigned, fmt.Sprintf("%s:%d", m.MemberID, len(tp.Partitions)))
			}
		}
	}
	if d.State != "Stable" || len(d.Members) != 3 || len(d.AssignedPartitions()[tcfg.SnapshotTasks()]) != partitions {
		t.Fatalf("released while the group was %s with %d members, assigned %v; want Stable, 3 members, all %d partitions",
			d.State, len(d.Members), assigned, partitions)
	}

	// A member that never joins: the settler gives up after its longest wait.
	s = newGroupSettler(admin, tcfg.SnapshotGroup(), tcfg.SnapshotTasks(),
		func() []string { return append(ids(), "no-such-member") }, quiet)
	s.max = 300 * time.Millisecond
	start := time.Now()
	go s.run(ctx)
	if err := s.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s.settled {
		t.Fatal("settled without one of its members")
	}
	if waited := time.Since(start); waited < s.max || waited > 10*s.max {
		t.Fatalf("gave up after %s, want about %s", waited, s.max)
	}
}

// TestFormingGroupReadsEachChunkOnce runs three snapshot runs on the real
// services, each with a new group of four workers that join 100ms apart (so
// the group forms over several rebalances, with tasks already published),
// and checks from this process's counters that no chunk was read twice: a
// chunk read while the group still formed used to be aborted by the
// rebalance that completed it and read again.
func TestFormingGroupReadsEachChunkOnce(t *testing.T) {
	_, mc := services.Mongo(t)
	tcfg, _ := services.Kafka(t)
	ctx := services.Context(t, 3*time.Minute)
	db := services.Unique(t)
	coll := mc.Database(db).Collection("orders")
	t.Cleanup(func() { _ = coll.Database().Drop(context.Background()) })
	const n = 20_000
	docs := make([]any, 0, n)
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: int64(i)}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%d", i%5)},
			{Key: "n", Value: int64(i)}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	m, err := schemas.ParseMapping("m.yaml", fmt.Appendf(nil,
		"collections:\n  - source: %s.orders\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n", db))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.WorkerID = db
	cfg.Workers = 4
	cfg.ChunkDocs = n / 10
	cfg.joinStagger = 100 * time.Millisecond
	for r := range 3 {
		cfg.Restart = r > 0
		reg := prometheus.NewRegistry()
		if _, err := New(cfg, m, mc, tcfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, nil).Run(ctx); err != nil {
			t.Fatal(err)
		}
		read, aborted := counter(t, reg, "docshift_snapshot_documents_read_total"), counter(t, reg, "docshift_snapshot_chunks_aborted_total")
		if read != n || aborted != 0 {
			t.Errorf("run %d: read %v documents of %d, aborted %v chunk transactions; want every chunk read once", r+1, read, n, aborted)
		}
	}
}

// counter sums the values of a counter family in reg (0 when it has none).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

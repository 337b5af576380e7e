package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// TestFenceAcrossConsumers: a snapshot fence on every partition, read by two
// consumers of one group at once, marks deleted exactly the rows older than
// the run's start (documents the snapshot no longer saw), keeps the rows the
// snapshot wrote, and is applied once; a change older than the fence that
// arrives after it cannot bring a marked row back.
func TestFenceAcrossConsumers(t *testing.T) {
	const partitions, fence = 4, int64(100)
	s := newSink(t, partitions)
	ctx := services.Context(t, 2*time.Minute)

	expected := map[string]row{}
	var recs []*kgo.Record
	for i := range 40 {
		stale := change{id: fmt.Sprintf(`"stale-%d"`, i), version: 10, name: "gone", qty: 1}
		fresh := change{id: fmt.Sprintf(`"fresh-%d"`, i), version: fence + 5, name: "snapshot", qty: 2}
		recs = append(recs, s.record(stale), s.record(fresh))
		expected[stale.id] = row{version: fence, deleted: true}
		expected[fresh.id] = want(fresh)
	}
	s.produce(ctx, recs...)

	fc, err := topic.NewClient(ctx, s.tcfg, nil, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	fences, err := schemas.FenceRecords(s.topic, partitions, schemas.Fence{Source: s.ns.String(), Table: s.table, Version: fence, Run: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.ProduceSync(ctx, fences...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// After the fence: an older change of a marked row (a lagging producer).
	late := change{id: `"stale-0"`, version: 20, name: "late", qty: 3}
	s.produce(ctx, s.record(late))

	cfg := s.config()
	cfg.StopAtEnd = true
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.run(ctx, cfg, s.pool, nil) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	s.assertRows(ctx, s.pool, expected)

	var passed, applied int
	if err := s.pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE part >= 0), count(*) FILTER (WHERE part = -1) FROM docshift_fences WHERE tbl = $1 AND version = $2`,
		s.table, fence).Scan(&passed, &applied); err != nil {
		t.Fatal(err)
	}
	if passed != partitions || applied != 1 {
		t.Fatalf("fence passed on %d partitions, applied %d times; want %d and 1", passed, applied, partitions)
	}
}

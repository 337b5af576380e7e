package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/consumer"
	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/target"
)

// history returns, per key, a sequence of changes with increasing versions:
// inserts, updates, deletes and re-inserts; the expected final row is the
// change with the highest version.
func history(keys, perKey int, seed uint64) (all []change, final map[string]row) {
	rng := rand.New(rand.NewPCG(seed, 1))
	final = map[string]row{}
	for k := range keys {
		id := fmt.Sprintf(`"k%04d"`, k)
		var last change
		for v := 1; v <= perKey; v++ {
			c := change{id: id, version: int64(1000*v + k), name: fmt.Sprintf("n%d-%d", k, v), qty: int64(v)}
			c.del = rng.IntN(4) == 0 // about one change in four is a delete; the next one re-inserts
			all = append(all, c)
			last = c
		}
		final[id] = want(last)
	}
	return all, final
}

// TestOutOfOrderConvergence produces the changes of each key in shuffled
// version order (updates, deletes, re-inserts) and in small batches: the
// table ends in the state of each key's highest version, and a replay by a
// second group into the same table changes nothing.
func TestOutOfOrderConvergence(t *testing.T) {
	s := newSink(t, 4)
	ctx := services.Context(t, 2*time.Minute)
	all, final := history(60, 9, 1)

	// A delete followed by an older snapshot row: the row stays deleted.
	del := change{id: `"resurrect"`, version: 9000, del: true}
	old := change{id: `"resurrect"`, version: 10, name: "snapshot row", qty: 1}
	all = append(all, del, old)
	final[del.id] = want(del)

	rand.New(rand.NewPCG(2, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	recs := make([]*kgo.Record, len(all))
	for i, c := range all {
		recs[i] = s.record(c)
	}
	// The delete is produced before the older snapshot row.
	recs = append(recs, s.record(del), s.record(old))
	s.produce(ctx, recs...)

	cfg := s.config()
	cfg.StopAtEnd = true
	cfg.MaxBatch = 7 // many batches, each collapsing a few keys
	if err := s.run(ctx, cfg, s.pool, nil); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	s.assertRows(ctx, s.pool, final)

	cfg.Group += "-replay"
	cfg.MaxBatch = 5000
	if err := s.run(ctx, cfg, s.pool, nil); err != nil {
		t.Fatalf("replaying consumer: %v", err)
	}
	s.assertRows(ctx, s.pool, final)
}

// TestPoisonRecordsGoToDeadLetterTopic mixes records that can never apply
// (a value PostgreSQL rejects, an unknown schema fingerprint, bytes that are
// not a docshift record) into one partition of good records: the bad ones
// land in the dead-letter topic with their reason, topic, partition and
// offset in headers and their original key and value; every good record is
// applied, and the group's offset reaches the end of the partition.
func TestPoisonRecordsGoToDeadLetterTopic(t *testing.T) {
	s := newSink(t, 1)
	ctx := services.Context(t, 2*time.Minute)

	var recs []*kgo.Record
	final := map[string]row{}
	for i := range 50 {
		c := change{id: fmt.Sprintf(`"good%02d"`, i), version: 100, name: "ok", qty: int64(i)}
		recs = append(recs, s.record(c))
		final[c.id] = want(c)
		switch i {
		case 10: // PostgreSQL rejects a NUL byte in text (SQLSTATE 22021)
			recs = append(recs, s.record(change{id: `"nul"`, version: 100, name: "bad\x00name", qty: 1}))
		case 20: // single-object encoding with a fingerprint no schema has
			recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(`["acme","unknown"]`),
				Value: []byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0}})
		case 30: // not Avro at all
			recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(`["acme","junk"]`), Value: []byte("{not avro}")})
		}
	}
	produced := s.produce(ctx, recs...)
	poison := map[int64]*kgo.Record{}
	for _, r := range produced {
		if !strings.HasPrefix(string(r.Key), `["acme","good`) {
			poison[r.Offset] = r
		}
	}

	reg := prometheus.NewRegistry()
	cfg := s.config()
	cfg.StopAtEnd = true
	if err := s.run(ctx, cfg, s.pool, reg); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	s.assertRows(ctx, s.pool, final)

	dead := services.ReadCommitted(ctx, t, s.tcfg, s.tcfg.DLQ())
	if len(dead) != len(poison) {
		t.Fatalf("dead-letter topic has %d records, want %d", len(dead), len(poison))
	}
	reasons := map[string]string{`["acme","nul"]`: "22021", `["acme","unknown"]`: "unknown schema", `["acme","junk"]`: "not a docshift record"}
	for _, d := range dead {
		h := headers(d)
		off, _ := strconv.ParseInt(h[consumer.HeaderOffset], 10, 64)
		orig, ok := poison[off]
		if !ok || h[consumer.HeaderTopic] != s.topic || h[consumer.HeaderPartition] != "0" {
			t.Fatalf("dead letter %s has headers %v, not those of a poison record", d.Key, h)
		}
		if string(d.Key) != string(orig.Key) || string(d.Value) != string(orig.Value) {
			t.Errorf("dead letter at offset %d does not carry the original key and value", off)
		}
		if want := reasons[string(d.Key)]; !strings.Contains(h[consumer.HeaderError], want) {
			t.Errorf("dead letter %s: error header %q does not say %q", d.Key, h[consumer.HeaderError], want)
		}
	}
	if got := metricSum(t, reg, "docshift_consumer_dead_letters_total"); got != 3 {
		t.Errorf("dead letters counted: %v, want 3", got)
	}
}

// TestPoisonRecordStopsConsumerWithoutDLQ: with the dead-letter topic off, a
// record that can never apply stops the consumer with an error and its
// offset is not committed.
func TestPoisonRecordStopsConsumerWithoutDLQ(t *testing.T) {
	s := newSink(t, 1)
	ctx := services.Context(t, time.Minute)
	s.produce(ctx, s.record(change{id: `"a"`, version: 1, name: "ok"}),
		&kgo.Record{Topic: s.topic, Key: []byte(`["acme","junk"]`), Value: []byte("junk")})
	cfg := s.config()
	cfg.StopAtEnd = true
	cfg.DLQ = false
	err := s.run(ctx, cfg, s.pool, nil)
	if !errors.Is(err, consumer.ErrPoison) {
		t.Fatalf("consumer returned %v, want an error wrapping ErrPoison", err)
	}
	offs, err := kadm.NewClient(s.kc).FetchOffsets(ctx, s.group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(s.topic, 0); ok && o.At > 0 {
		t.Fatalf("committed offset %d past the batch that failed", o.At)
	}
}

// TestStopAtEndPastTransactionMarkers: records written in Kafka transactions
// (as the snapshot writes them) end each partition with a commit marker; the
// consumer commits past it, so --stop-at-end returns.
func TestStopAtEndPastTransactionMarkers(t *testing.T) {
	s := newSink(t, 2)
	ctx := services.Context(t, time.Minute)
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.tcfg.SeedList()...), kgo.TransactionalID(s.group+"-txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	final := map[string]row{}
	for round := range 3 {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			c := change{id: fmt.Sprintf(`"x%d"`, i), version: int64(10 + round), name: "r", qty: int64(round)}
			final[c.id] = want(c)
			if err := txn.ProduceSync(ctx, s.record(c)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.config()
	cfg.StopAtEnd = true
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.run(rctx, cfg, s.pool, nil); err != nil {
		t.Fatalf("consumer did not stop at the end of transactional partitions: %v", err)
	}
	s.assertRows(ctx, s.pool, final)
}

// TestGracefulShutdownCommitsOnlyApplied cancels a consumer mid-load: Run
// returns context.Canceled, every record below a committed offset is in the
// table, and a restarted consumer completes the table.
func TestGracefulShutdownCommitsOnlyApplied(t *testing.T) {
	s := newSink(t, 4)
	ctx := services.Context(t, 2*time.Minute)
	all, final := history(500, 8, 3)
	recs := make([]*kgo.Record, len(all))
	for i, c := range all {
		recs[i] = s.record(c)
	}
	changeOf := map[*kgo.Record]change{}
	for i, r := range recs {
		changeOf[r] = all[i]
	}
	produced := s.produce(ctx, recs...) // same records, offsets set, in no particular order

	cfg := s.config()
	cfg.MaxBatch = 50
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.run(rctx, cfg, s.pool, nil) }()
	waitRows(ctx, t, s, 200)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
	}

	offs, err := kadm.NewClient(s.kc).FetchOffsets(ctx, s.group)
	if err != nil {
		t.Fatal(err)
	}
	got := s.rows(ctx, s.pool)
	committed := 0
	for _, r := range produced {
		o, ok := offs.Lookup(r.Topic, r.Partition)
		if !ok || r.Offset >= o.At {
			continue
		}
		committed++
		c := changeOf[r]
		if g, ok := got[c.id]; !ok || g.version < c.version {
			t.Fatalf("offset %d/%d is committed but its version %d is not applied (row %v)", r.Partition, r.Offset, c.version, g)
		}
	}
	if committed == 0 || committed == len(produced) {
		t.Fatalf("%d of %d records committed at shutdown: the test did not stop mid-load", committed, len(produced))
	}

	cfg.StopAtEnd = true
	if err := s.run(ctx, cfg, s.pool, nil); err != nil {
		t.Fatalf("restarted consumer: %v", err)
	}
	s.assertRows(ctx, s.pool, final)
}

// TestPostgresRestartMidLoad restarts a PostgreSQL server of its own (not the
// one other tests share) while the consumer applies: the consumer retries the
// failed batches without committing them and the table ends correct.
func TestPostgresRestartMidLoad(t *testing.T) {
	url, ctl := os.Getenv("PG_RESTART_URL"), os.Getenv("PG_RESTART_CTL")
	if url == "" || ctl == "" {
		t.Skip("PG_RESTART_URL/PG_RESTART_CTL are not set: this test needs its own PostgreSQL; run `make test`, which starts it")
	}
	tcfg, kc := services.Kafka(t)
	pcfg := target.DefaultConfig()
	pcfg.URL = url
	pool, err := target.Connect(context.Background(), pcfg)
	if err != nil {
		t.Fatalf("PG_RESTART_URL is set but PostgreSQL does not answer: %v", err)
	}
	defer pool.Close()
	s := newSinkOn(t, tcfg, kc, pool, 4)
	ctx := services.Context(t, 3*time.Minute)
	all, final := history(2000, 5, 4)
	recs := make([]*kgo.Record, len(all))
	for i, c := range all {
		recs[i] = s.record(c)
	}
	s.produce(ctx, recs...)

	reg := prometheus.NewRegistry()
	cfg := s.config()
	cfg.StopAtEnd = true
	cfg.MaxBatch = 20
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, cfg, pool, reg) }()
	waitRows(ctx, t, s, 100)
	out, err := exec.CommandContext(ctx, "bash", "-c", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting PostgreSQL (%s): %v\n%s", ctl, err, out)
	}
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	s.assertRows(ctx, pool, final)
	if got := metricSum(t, reg, "docshift_consumer_retries_total"); got == 0 {
		t.Error("no retries counted: the restart did not hit the consumer mid-load")
	}
}

// waitRows waits until the table holds at least n rows.
func waitRows(ctx context.Context, t *testing.T, s *sink, n int) {
	t.Helper()
	for {
		var got int
		err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.table).Scan(&got)
		if err == nil && got >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("table never reached %d rows (last count %d, err %v)", n, got, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	out := map[string]string{}
	for _, h := range r.Headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

// metricSum sums a counter over its labels in reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/producer"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/topic"
)

// liveRig is a collection under change: a mapping, a writer that keeps
// inserting, updating, replacing and deleting documents of several tenants,
// and the comparison of the collection with its target table.
type liveRig struct {
	t       *testing.T
	mc      *mongo.Client
	coll    *mongo.Collection
	pool    *pgxpool.Pool
	tcfg    topic.Config
	pgURL   string
	mcURI   string
	table   string
	mapping string // file

	producerExit chan string // the stderr of an in-process producer that stopped

	mu      sync.Mutex
	markers int
	nextID  int
	live    []int // ids that exist
	changes int   // writes that changed a document
}

const liveMapping = `collections:
  - source: %s.orders
    tenant: {field: tenant_id}
    table: %s
    columns:
      - {path: status, type: text}
      - {path: qty, type: integer}
      - {path: total, type: double precision}
      - {path: tags, type: jsonb}
`

func newLiveRig(t *testing.T) *liveRig {
	mcfg, mc := services.Mongo(t)
	tcfg, _ := services.Kafka(t)
	pcfg, pool := services.Postgres(t)
	name := services.Unique(t)
	r := &liveRig{t: t, producerExit: make(chan string, 1), mc: mc, coll: mc.Database(name).Collection("orders"), pool: pool, tcfg: tcfg,
		pgURL: pcfg.URL, mcURI: mcfg.URI, table: name + "_orders", mapping: filepath.Join(t.TempDir(), "mapping.yaml")}
	if err := os.WriteFile(r.mapping, fmt.Appendf(nil, liveMapping, name, r.table), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// sibling is a rig of another collection of r's database, mapped to a table
// of its own in r's mapping file, which both rigs then use: the producer
// follows the two collections with a stream each.
func (r *liveRig) sibling(coll string) *liveRig {
	db := r.coll.Database().Name()
	b := &liveRig{t: r.t, producerExit: r.producerExit, mc: r.mc, coll: r.mc.Database(db).Collection(coll), pool: r.pool, tcfg: r.tcfg,
		pgURL: r.pgURL, mcURI: r.mcURI, table: db + "_" + coll, mapping: r.mapping}
	m := fmt.Sprintf(liveMapping, db, r.table) + strings.TrimPrefix(fmt.Sprintf(strings.Replace(liveMapping, ".orders", "."+coll, 1), db, b.table), "collections:\n")
	if err := os.WriteFile(r.mapping, []byte(m), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *liveRig) kafkaFlags() []string {
	return []string{"--kafka-seeds", r.tcfg.Seeds, "--topic-prefix", r.tcfg.Prefix, "--topic-partitions", "4"}
}

func tenantOfID(id int) string { return fmt.Sprintf("tenant-%d", id%3) }

func (r *liveRig) doc(id int, rng *rand.Rand) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantOfID(id)},
		{Key: "status", Value: []string{"new", "paid", "shipped"}[rng.IntN(3)]},
		{Key: "qty", Value: int32(rng.IntN(100))}, {Key: "total", Value: float64(rng.IntN(10000)) / 100},
		{Key: "tags", Value: bson.A{"t" + strconv.Itoa(rng.IntN(5))}}}
}

// seed inserts n documents.
func (r *liveRig) seed(ctx context.Context, n int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var docs []any
	for range n {
		docs = append(docs, r.doc(r.nextID, rng))
		r.live = append(r.live, r.nextID)
		r.nextID++
	}
	if _, err := r.coll.InsertMany(ctx, docs); err != nil {
		r.t.Fatal(err)
	}
}

// write makes n changes: inserts, $set, $unset, $inc, $push, replaces and
// deletes, on random documents.
func (r *liveRig) write(ctx context.Context, n int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	for range n {
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		op := rng.IntN(10)
		if len(r.live) == 0 {
			op = 0
		}
		var id, pos int
		if len(r.live) > 0 {
			pos = rng.IntN(len(r.live))
			id = r.live[pos]
		}
		var err error
		var changed bool
		switch op {
		case 0, 1: // insert
			id = r.nextID
			r.nextID++
			_, err = r.coll.InsertOne(ctx, r.doc(id, rng))
			if err == nil {
				r.live = append(r.live, id)
				changed = true
			}
		case 2:
			var res *mongo.UpdateResult
			res, err = r.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "s" + strconv.Itoa(rng.IntN(1000))}}}})
			changed = err == nil && res.ModifiedCount > 0
		case 3:
			var res *mongo.UpdateResult
			res, err = r.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "total", Value: ""}}}})
			changed = err == nil && res.ModifiedCount > 0
		case 4, 5:
			var res *mongo.UpdateResult
			res, err = r.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "qty", Value: 1}}}})
			changed = err == nil && res.ModifiedCount > 0
		case 6:
			var res *mongo.UpdateResult
			res, err = r.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$push", Value: bson.D{{Key: "tags", Value: "p"}}}})
			changed = err == nil && res.ModifiedCount > 0
		case 7:
			var res *mongo.UpdateResult
			res, err = r.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, r.doc(id, rng)[1:])
			changed = err == nil && res.ModifiedCount > 0
		default: // delete
			var res *mongo.DeleteResult
			res, err = r.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			if err == nil && res.DeletedCount > 0 {
				r.live = append(r.live[:pos], r.live[pos+1:]...)
				changed = true
			}
		}
		if changed {
			r.changes++
		}
		r.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("write %d: %w", op, err)
		}
	}
	return nil
}

// row is a document or a target row, rendered for comparison.
func renderRow(tenant string, status *string, qty *int32, total *float64, tags *string) string {
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	q := "NULL"
	if qty != nil {
		q = strconv.Itoa(int(*qty))
	}
	tt := "NULL"
	if total != nil {
		tt = strconv.FormatFloat(*total, 'g', -1, 64)
	}
	return strings.Join([]string{tenant, s(status), q, tt, s(tags)}, "|")
}

func (r *liveRig) source(ctx context.Context) map[string]string {
	cur, err := r.coll.Find(ctx, bson.D{})
	if err != nil {
		r.t.Fatal(err)
	}
	defer cur.Close(ctx)
	out := map[string]string{}
	for cur.Next(ctx) {
		d := cur.Current
		id, _ := schemas.CanonicalID(d.Lookup("_id"))
		var status, tags *string
		var qty *int32
		var total *float64
		if v, ok := d.Lookup("status").StringValueOK(); ok {
			status = &v
		}
		if v, ok := d.Lookup("qty").Int32OK(); ok {
			qty = &v
		}
		if v, ok := d.Lookup("total").DoubleOK(); ok {
			total = &v
		}
		if v, err := d.LookupErr("tags"); err == nil {
			s, _ := schemas.ExtJSON(v, false)
			s = strings.ReplaceAll(s, ",", ", ") // jsonb's spacing
			tags = &s
		}
		out[id] = renderRow(d.Lookup("tenant_id").StringValue(), status, qty, total, tags)
	}
	return out
}

func (r *liveRig) target(ctx context.Context) map[string]string {
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT _id, _tenant, status, qty, total, tags::text FROM %s WHERE NOT _deleted`, schemas.QuoteIdent(r.table)))
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	out := map[string]string{}
	var id, tenant string
	var status, tags *string
	var qty *int32
	var total *float64
	_, err = pgx.ForEachRow(rows, []any{&id, &tenant, &status, &qty, &total, &tags}, func() error {
		out[id] = renderRow(tenant, status, qty, total, tags)
		return nil
	})
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return out
}

// diff describes how the target differs from the source ("" if equal).
func diff(src, dst map[string]string) string {
	var lines []string
	for id, s := range src {
		if d, ok := dst[id]; !ok {
			lines = append(lines, "missing "+id+": "+s)
		} else if d != s {
			lines = append(lines, "differs "+id+": source "+s+" target "+d)
		}
	}
	for id, d := range dst {
		if _, ok := src[id]; !ok {
			lines = append(lines, "extra "+id+": "+d)
		}
	}
	sort.Strings(lines)
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("... %d differences in all", len(lines)))
	}
	return strings.Join(lines, "\n")
}

// converge consumes until the target equals the source (or the deadline).
func (r *liveRig) converge(ctx context.Context, group string) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		code, _, stderr := docshift(ctx, r.t, append([]string{"consume", "--pg-url", r.pgURL, "--group", group, "--stop-at-end", "--monitor-addr", ""}, r.kafkaFlags()...)...)
		if code != 0 {
			r.t.Fatalf("consume exited %d: %s", code, stderr)
		}
		if last = diff(r.source(ctx), r.target(ctx)); last == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.dumpFirst(ctx, last)
	r.t.Fatalf("target did not converge to the source:\n%s", last)
}

// dumpFirst logs every record of the first differing document, to show how
// it diverged.
func (r *liveRig) dumpFirst(ctx context.Context, diffs string) {
	first, _, _ := strings.Cut(diffs, "\n")
	_, rest, _ := strings.Cut(first, " ")
	id, _, _ := strings.Cut(rest, ": ")
	_, kc := services.Kafka(r.t)
	reg := schemas.NewRegistry(kc, r.tcfg.Schemas())
	for _, rec := range readTopic(ctx, r.t, r.tcfg, r.tcfg.Records(r.coll.Database().Name(), "orders")) {
		if !strings.Contains(string(rec.Key), id) || rec.Value == nil {
			continue
		}
		env, _, err := reg.Decode(ctx, rec.Value)
		if err != nil {
			r.t.Logf("%s p%d@%d undecodable: %v", rec.Key, rec.Partition, rec.Offset, err)
			continue
		}
		r.t.Logf("%s p%d@%d op=%s version=%v snapshot=%v row=%v", rec.Key, rec.Partition, rec.Offset, env.Op,
			schemas.TimestampOf(env.Version), env.Source.Snapshot, env.Row)
	}
}

// producerRecords reads the committed change records (not snapshot rows) of
// the records topic and fails on any (key, version) seen twice.
func (r *liveRig) producerRecords(ctx context.Context) int {
	r.t.Helper()
	recs := readTopic(ctx, r.t, r.tcfg, r.tcfg.Records(r.coll.Database().Name(), "orders"))
	_, kc := services.Kafka(r.t)
	reg := schemas.NewRegistry(kc, r.tcfg.Schemas())
	seen := map[string]int64{}
	n := 0
	for _, rec := range recs {
		if rec.Value == nil {
			continue // tombstone after a delete
		}
		env, _, err := reg.Decode(ctx, rec.Value)
		if err != nil {
			r.t.Fatal(err)
		}
		if env.Source.Snapshot {
			continue
		}
		k := fmt.Sprintf("%s@%d", rec.Key, env.Version)
		if off, dup := seen[k]; dup {
			r.t.Fatalf("change %s published twice (offsets %d and %d)", k, off, rec.Offset)
		}
		seen[k] = rec.Offset
		n++
	}
	return n
}

// startProducer runs `docshift produce` in-process until the returned stop
// is called; if it stops by itself, waitCaughtUp reports its stderr.
func (r *liveRig) startProducer(ctx context.Context, extra ...string) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, stderr := r.produce(pctx, extra...)
		if pctx.Err() == nil {
			select {
			case r.producerExit <- fmt.Sprintf("exited %d: %s", code, stderr):
			default:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// TestProduceDuringSnapshot: the producer follows the collection from before
// a snapshot that runs while a writer makes thousands of changes; the target
// ends equal to the source, and every change is published exactly once.
func TestProduceDuringSnapshot(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	changes := 20000
	if s := os.Getenv("DOCSHIFT_TEST_CHANGES"); s != "" {
		changes, _ = strconv.Atoi(s)
	}
	r.seed(ctx, 3000)
	time.Sleep(1100 * time.Millisecond) // the stream starts at a later second than the seed

	pctx, stopProducer := context.WithCancel(ctx)
	produced := make(chan error, 1)
	go func() {
		code, stderr := r.produce(pctx)
		if code != 0 && code != 130 {
			produced <- fmt.Errorf("produce exited %d: %s", code, stderr)
			return
		}
		produced <- nil
	}()
	r.waitStreamStarted(ctx)
	w := r.watch(ctx)

	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() { defer wg.Done(); werr = r.write(ctx, changes, 3) }()
	if code, _, stderr := docshift(ctx, t, append([]string{"snapshot", "--mapping", r.mapping, "--mongo-uri", r.mcURI, "--chunk-docs", "500"}, r.kafkaFlags()...)...); code != 0 {
		t.Fatalf("snapshot exited %d: %s", code, stderr)
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	r.waitCaughtUp(ctx, w)
	stopProducer()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	r.converge(ctx, r.tcfg.Prefix+"-sink")
	w.mu.Lock()
	events := w.events
	w.mu.Unlock()
	skippable := w.mayBeSkipped()
	if n := r.producerRecords(ctx); n > events || n < events-skippable {
		t.Fatalf("%d change records published; the collection's change stream had %d events, %d of them updates of documents deleted since",
			n, events, skippable)
	}
	code, stdout, stderr := docshift(ctx, t, append([]string{"status"}, r.kafkaFlags()...)...)
	if code != 0 || !strings.Contains(stdout, "snapshot complete") || !strings.Contains(stdout, "collection:"+r.coll.Database().Name()+".orders") {
		t.Fatalf("status exited %d:\n%s%s", code, stdout, stderr)
	}
	t.Logf("%d changes during and after a snapshot of 3000 documents: target equals source", r.changes)
}

// waitStreamStarted waits for the stream's first checkpoint.
func (r *liveRig) waitStreamStarted(ctx context.Context) {
	r.t.Helper()
	for ctx.Err() == nil {
		cps, err := producer.ReadCheckpoints(ctx, r.tcfg)
		if err == nil && len(cps) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatal("the change stream never recorded its start")
}

// witness is the test's own change stream on the collection: the ground
// truth of which changes happened and when.
type witness struct {
	mu     sync.Mutex
	events int
	seen   map[string]bson.Timestamp // by _id, the last event's cluster time
	ops    map[string][]string       // by _id, the operations in order
	err    error
}

// mayBeSkipped counts the update and replace events of documents deleted by
// the end: the producer publishes no row for one whose updateLookup found
// the document already gone.
func (w *witness) mayBeSkipped() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ops := range w.ops {
		if ops[len(ops)-1] != "delete" {
			continue
		}
		for _, op := range ops {
			if op == "update" || op == "replace" {
				n++
			}
		}
	}
	return n
}

func (r *liveRig) watch(ctx context.Context) *witness {
	cs, err := r.coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		r.t.Fatal(err)
	}
	w := &witness{seen: map[string]bson.Timestamp{}, ops: map[string][]string{}}
	go func() {
		defer cs.Close(context.WithoutCancel(ctx))
		for cs.Next(ctx) {
			id, _ := schemas.CanonicalID(cs.Current.Lookup("documentKey", "_id"))
			t, i, _ := cs.Current.Lookup("clusterTime").TimestampOK()
			w.mu.Lock()
			w.events++
			w.seen[id] = bson.Timestamp{T: t, I: i}
			w.ops[id] = append(w.ops[id], cs.Current.Lookup("operationType").StringValue())
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.err = cs.Err()
		w.mu.Unlock()
	}()
	return w
}

// waitCaughtUp inserts a marker document, waits for the witness to see it,
// then for the checkpoint of the stream that follows the collection (the
// only one, or the one named after the collection) to pass it, with no
// stream's snapshot after a lost history pending: every change before the
// marker is then published.
func (r *liveRig) waitCaughtUp(ctx context.Context, w *witness) {
	r.t.Helper()
	r.mu.Lock()
	r.markers++
	marker := "marker-" + strconv.Itoa(r.markers)
	r.changes++
	r.mu.Unlock()
	if _, err := r.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: marker}, {Key: "tenant_id", Value: "tenant-0"}}); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var markerTS bson.Timestamp
	for markerTS.T == 0 && time.Now().Before(deadline) {
		w.mu.Lock()
		markerTS = w.seen[`"`+marker+`"`]
		werr := w.err
		w.mu.Unlock()
		if werr != nil {
			r.t.Fatal(werr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var at, resnapshot int64
	for time.Now().Before(deadline) {
		cps, err := producer.ReadCheckpoints(ctx, r.tcfg)
		if err == nil && len(cps) > 0 {
			at, resnapshot = math.MaxInt64, 0
			own := cps["collection:"+r.coll.Database().Name()+"."+r.coll.Name()]
			for _, cp := range cps {
				if own == nil || cp == own {
					at = min(at, cp.ClusterTime)
				}
				resnapshot = max(resnapshot, cp.ResnapshotSince)
			}
			if markerTS.T != 0 && at >= schemas.Version(markerTS) && resnapshot == 0 {
				return
			}
		}
		select {
		case stderr := <-r.producerExit:
			r.t.Fatalf("the producer stopped: %s", stderr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.t.Fatalf("the producer's checkpoint is at %v (a snapshot after lost history pending since %v), the marker at %v",
		schemas.TimestampOf(at), schemas.TimestampOf(resnapshot), markerTS)
}

// TestProduceThroughSchemaRegistry: with --schema-registry, the producer
// registers its schema there and writes the Confluent wire format, and the
// consumer decodes it through the registry.
func TestProduceThroughSchemaRegistry(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 3*time.Minute)
	fake := srfake.New()
	defer fake.Close()
	reg := []string{"--schema-registry", fake.URL()}

	pctx, stop := context.WithCancel(ctx)
	produced := make(chan string, 1)
	go func() {
		code, stderr := r.produce(pctx, reg...)
		if code != 130 {
			t.Logf("produce exited %d: %s", code, stderr)
		}
		produced <- stderr
	}()
	r.waitStreamStarted(ctx)
	w := r.watch(ctx)
	if err := r.write(ctx, 300, 5); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUp(ctx, w)
	stop()
	<-produced

	recs := readTopic(ctx, t, r.tcfg, r.tcfg.Records(r.coll.Database().Name(), "orders"))
	if len(recs) == 0 || recs[0].Value[0] != 0 {
		t.Fatalf("records are not in the Confluent wire format (%d records)", len(recs))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, stderr := docshift(ctx, t, append(append([]string{"consume", "--pg-url", r.pgURL, "--group", r.tcfg.Prefix + "-sink", "--stop-at-end", "--monitor-addr", ""}, r.kafkaFlags()...), reg...)...)
		if code != 0 {
			t.Fatalf("consume exited %d: %s", code, stderr)
		}
		d := diff(r.source(ctx), r.target(ctx))
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target differs:\n%s", d)
		}
	}
}

// TestProduceStartsAfterSnapshot: the producer is started only after a
// snapshot finished, while a writer changes documents all along; it starts
// its stream where the snapshot started, so nothing in between is lost.
func TestProduceStartsAfterSnapshot(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	r.seed(ctx, 2000)
	time.Sleep(1100 * time.Millisecond)

	var wg sync.WaitGroup
	var werr error
	wctx, stopWriter := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); werr = r.write(wctx, 1<<30, 13) }()
	code, _, stderr := docshift(ctx, t, append([]string{"snapshot", "--mapping", r.mapping, "--mongo-uri", r.mcURI, "--chunk-docs", "300"}, r.kafkaFlags()...)...)
	if code != 0 {
		t.Fatalf("snapshot exited %d: %s", code, stderr)
	}
	time.Sleep(500 * time.Millisecond) // changes after the snapshot, before the producer
	stopProducer := r.startProducer(ctx)
	r.waitStreamStarted(ctx)
	w := r.watch(ctx) // from here on the witness sees the changes
	time.Sleep(500 * time.Millisecond)
	stopWriter()
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	r.waitCaughtUp(ctx, w)
	stopProducer()
	r.converge(ctx, r.tcfg.Prefix+"-sink")
	t.Logf("%d changes before, during and after a snapshot, the producer started after it: target equals source", r.changes)
}

// TestProduceHistoryLost: the producer's checkpoint falls out of the oplog
// while it is down. It then stops with an error naming the remedy; with
// --on-history-lost=resnapshot it restarts the stream and snapshots the
// collection again, and the target converges.
func TestProduceHistoryLost(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	r.loseHistory(ctx)
	code, stderr := r.produce(ctx)
	if code != 1 || !strings.Contains(stderr, "history lost") || !strings.Contains(stderr, "--on-history-lost=resnapshot") {
		t.Fatalf("producer with a lost history exited %d: %s", code, stderr)
	}

	stop := r.startProducer(ctx, "--on-history-lost=resnapshot")
	catchUp(ctx, 300, 23, r)
	stop()
	r.converge(ctx, r.tcfg.Prefix+"-sink")
}

// TestProduceResnapshotStopped: a producer stopped while it snapshots the
// collection again after a lost history has its checkpoint still ask for
// that snapshot. Started again without --on-history-lost=resnapshot it
// refuses to go on as if nothing was lost; with it, it resumes the same
// snapshot run, and the target converges.
func TestProduceResnapshotStopped(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	r.loseHistory(ctx)
	before, err := snapshot.ReadState(ctx, r.tcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	// Small chunks and one reader: the snapshot takes a while, and the
	// producer is stopped once it has finished a few chunks.
	stop := r.startProducer(ctx, "--on-history-lost=resnapshot", "--resnapshot-workers", "1", "--resnapshot-chunk-docs", "5")
	var st *snapshot.State
	for st == nil || st.Run == before.Run || len(st.Done) < 3 {
		if ctx.Err() != nil {
			t.Fatal("the snapshot after the lost history never started")
		}
		time.Sleep(20 * time.Millisecond)
		if st, err = snapshot.ReadState(ctx, r.tcfg, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	st, err = snapshot.ReadState(ctx, r.tcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Complete.IsZero() {
		t.Fatalf("run %d completed before the producer stopped (%d chunks done): nothing was interrupted", st.Run, len(st.Done))
	}
	cps, err := producer.ReadCheckpoints(ctx, r.tcfg)
	if err != nil {
		t.Fatal(err)
	}
	for id, cp := range cps {
		if cp.ResnapshotSince == 0 || cp.HistoryLost == "" {
			t.Fatalf("stream %s's checkpoint no longer asks for the unfinished snapshot: %+v", id, cp)
		}
	}
	_, out, _ := docshift(ctx, t, append([]string{"status"}, r.kafkaFlags()...)...)
	if !strings.Contains(out, "re-snapshot unfinished") {
		t.Errorf("status does not show the unfinished snapshot:\n%s", out)
	}

	code, stderr := r.produce(ctx)
	if code != 1 || !strings.Contains(stderr, "is unfinished") || !strings.Contains(stderr, "--on-history-lost=resnapshot") {
		t.Fatalf("producer without --on-history-lost=resnapshot exited %d: %s", code, stderr)
	}

	stop = r.startProducer(ctx, "--on-history-lost=resnapshot")
	catchUp(ctx, 300, 23, r)
	stop()
	after, err := snapshot.ReadState(ctx, r.tcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if after.Run != st.Run || after.Complete.IsZero() {
		t.Fatalf("snapshot run %d (complete: %v) after the restart, want run %d resumed and complete", after.Run, !after.Complete.IsZero(), st.Run)
	}
	r.converge(ctx, r.tcfg.Prefix+"-sink")
}

// TestProduceHistoryLostAgain: a stream that loses its history again right
// after each restart (here the oplog is emptied after every write, as an
// oplog far too small for the write load would be) restarts with backoff,
// not in a tight loop: each restart starts the re-snapshot over. The gaps
// between its restarts, read from the checkpoint topic, grow from 1 s; once
// the oplog holds its history again the producer finishes the snapshot, and
// the target equals the source, with the changes made meanwhile.
func TestProduceHistoryLostAgain(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	r.loseHistory(ctx)
	stop := r.startProducer(ctx, "--on-history-lost=resnapshot")
	for {
		cps, err := producer.ReadCheckpoints(ctx, r.tcfg)
		if err != nil {
			t.Fatal(err)
		}
		if pendingResnapshot(cps) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the producer never restarted after the lost history")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every 50 ms a change, and then an empty oplog: a stream that has not
	// read that change by then has lost its history again.
	rolled := time.Now()
	for seed := uint64(100); time.Since(rolled) < 5*time.Second; seed++ {
		if err := r.write(ctx, 1, seed); err != nil {
			t.Fatal(err)
		}
		r.truncateOplog(ctx)
		time.Sleep(50 * time.Millisecond)
	}
	catchUp(ctx, 100, 24, r)
	stop()

	// A restart commits a checkpoint with a new resnapshot_since.
	var restarts []time.Time
	seen := map[int64]bool{}
	for _, rec := range services.ReadCommitted(ctx, t, r.tcfg, r.tcfg.Streams()) {
		var cp producer.Checkpoint
		if err := json.Unmarshal(rec.Value, &cp); err != nil {
			t.Fatal(err)
		}
		if cp.ResnapshotSince != 0 && !seen[cp.ResnapshotSince] {
			seen[cp.ResnapshotSince] = true
			restarts = append(restarts, rec.Timestamp)
		}
	}
	t.Logf("restarts after lost history at %v", restarts)
	if len(restarts) < 3 {
		t.Fatalf("%d restarts after lost history, want at least 3: the emptied oplog did not make the stream lose its history again", len(restarts))
	}
	// The first restart is at once; each later one came soon after the one
	// before, and waits 1 s, 2 s, 4 s, ... (10% off for the clock).
	want := time.Second
	for i := 1; i < len(restarts); i++ {
		if gap := restarts[i].Sub(restarts[i-1]); gap < want*9/10 {
			t.Fatalf("restart %d came %s after the one before, want at least %s (restarts at %v)", i+1, gap, want, restarts)
		}
		want *= 2
	}
	r.converge(ctx, r.tcfg.Prefix+"-sink")
}

// TestProduceTwoStreamsLoseHistory: two collections, a stream each, lose
// their history together while the producer is down. Started with
// --on-history-lost=resnapshot, the producer restarts both streams and
// snapshots each collection again (the two snapshots take turns, the second
// joining the first's run or starting one of its own); both targets
// converge, with the changes made while the history was lost.
func TestProduceTwoStreamsLoseHistory(t *testing.T) {
	a := newLiveRig(t)
	b := a.sibling("items")
	ctx := services.Context(t, 5*time.Minute)
	a.loseHistory(ctx, b)
	cps, err := producer.ReadCheckpoints(ctx, a.tcfg)
	if err != nil || len(cps) != 2 {
		t.Fatalf("checkpoints %v (%v), want one per collection", cps, err)
	}

	stop := a.startProducer(ctx, "--on-history-lost=resnapshot")
	catchUp(ctx, 100, 43, a, b)
	stop()
	if cps, err = producer.ReadCheckpoints(ctx, a.tcfg); err != nil {
		t.Fatal(err)
	}
	for id, cp := range cps {
		if cp.HistoryLost == "" {
			t.Fatalf("stream %s did not restart after its lost history: %+v", id, cp)
		}
	}
	a.converge(ctx, a.tcfg.Prefix+"-sink")
	b.converge(ctx, a.tcfg.Prefix+"-sink")
}

// pendingResnapshot reports whether some stream's checkpoint asks for a
// snapshot after a lost history.
func pendingResnapshot(cps map[string]*producer.Checkpoint) bool {
	for _, cp := range cps {
		if cp.ResnapshotSince != 0 {
			return true
		}
	}
	return false
}

// loseHistory seeds and snapshots the collection (and those of the
// siblings, which share its mapping), follows their changes for a while,
// then, with the producer down, changes them more and truncates the oplog:
// the producer's checkpoints are no longer in it.
func (r *liveRig) loseHistory(ctx context.Context, siblings ...*liveRig) {
	r.t.Helper()
	rigs := append([]*liveRig{r}, siblings...)
	for _, x := range rigs {
		x.seed(ctx, 500)
	}
	time.Sleep(1100 * time.Millisecond)
	code, _, stderr := docshift(ctx, r.t, append([]string{"snapshot", "--mapping", r.mapping, "--mongo-uri", r.mcURI}, r.kafkaFlags()...)...)
	if code != 0 {
		r.t.Fatalf("snapshot exited %d: %s", code, stderr)
	}
	stop := r.startProducer(ctx)
	r.waitStreamStarted(ctx)
	catchUp(ctx, 300, 21, rigs...)
	stop()

	for _, x := range rigs {
		if err := x.write(ctx, 300, 22); err != nil {
			r.t.Fatal(err)
		}
	}
	r.truncateOplog(ctx)
}

// catchUp makes n changes to each rig's collection (with the random seed
// seed) and waits until the producer has published them all.
func catchUp(ctx context.Context, n int, seed uint64, rigs ...*liveRig) {
	ws := make([]*witness, len(rigs))
	for i, r := range rigs {
		ws[i] = r.watch(ctx)
	}
	for _, r := range rigs {
		if err := r.write(ctx, n, seed); err != nil {
			r.t.Fatal(err)
		}
	}
	for i, r := range rigs {
		r.waitCaughtUp(ctx, ws[i])
	}
}

// truncateOplog empties the test server's oplog (a rolled-over oplog).
func (r *liveRig) truncateOplog(ctx context.Context) {
	r.t.Helper()
	if err := r.mc.Database("admin").RunCommand(ctx, bson.D{{Key: "docshiftTruncateOplog", Value: 1}}).Err(); err != nil {
		r.t.Fatalf("truncating the test server's oplog: %v", err)
	}
}

// produce runs the producer in this process until it exits or ctx is done.
func (r *liveRig) produce(ctx context.Context, extra ...string) (int, string) {
	code, _, stderr := docshift(ctx, r.t, append(append([]string{"produce", "--mapping", r.mapping, "--mongo-uri", r.mcURI, "--monitor-addr", ""}, r.kafkaFlags()...), extra...)...)
	return code, stderr
}

// TestProduceOversizeEvent: an event too large for a Kafka record (a 15 MiB
// binary field is 20 MiB as Extended JSON in _extra) stops the producer with
// an error that names the policy; with --oversize=dlq the event goes to the
// dead-letter topic with its size and the stream goes on.
func TestProduceOversizeEvent(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 3*time.Minute)
	r.seed(ctx, 10)
	time.Sleep(1100 * time.Millisecond)
	stop := r.startProducer(ctx)
	r.waitStreamStarted(ctx)
	stop()

	big := make([]byte, 15<<20)
	if _, err := r.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "big"}, {Key: "tenant_id", Value: "tenant-0"},
		{Key: "blob", Value: bson.Binary{Subtype: 0, Data: big}}}); err != nil {
		t.Fatal(err)
	}
	code, stderr := r.produce(ctx)
	if code != 1 || !strings.Contains(stderr, "too large for a Kafka record") || !strings.Contains(stderr, "--oversize=dlq") {
		t.Fatalf("producer with an oversize event exited %d: %s", code, stderr)
	}

	stop = r.startProducer(ctx, "--oversize=dlq")
	w := r.watch(ctx)
	if _, err := r.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "after"}, {Key: "tenant_id", Value: "tenant-1"}}); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUp(ctx, w)
	stop()
	dead := readTopic(ctx, t, r.tcfg, r.tcfg.DLQ())
	if len(dead) != 1 || !strings.Contains(string(dead[0].Key), `"big"`) {
		t.Fatalf("dead letters: %d, want the big document's", len(dead))
	}
	for _, h := range dead[0].Headers {
		if h.Key == "error" && !strings.Contains(string(h.Value), "exceeds the record limit") {
			t.Fatalf("dead letter reason %q", h.Value)
		}
	}
	recs := readTopic(ctx, t, r.tcfg, r.tcfg.Records(r.coll.Database().Name(), "orders"))
	found := false
	for _, rec := range recs {
		if strings.Contains(string(rec.Key), `"after"`) {
			found = true
		}
	}
	if !found {
		t.Fatal("the event after the oversize one was not published")
	}
}

// TestProduceCollectionDropped: a followed collection is dropped and
// re-created while the producer runs; documents of the re-created
// collection flow on (where the server invalidates the stream, the producer
// checkpoints the invalidate and reopens the stream after it).
func TestProduceCollectionDropped(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 3*time.Minute)
	r.seed(ctx, 10)
	time.Sleep(1100 * time.Millisecond)
	stop := r.startProducer(ctx)
	defer stop()
	r.waitStreamStarted(ctx)
	if err := r.coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := r.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "reborn"}, {Key: "tenant_id", Value: "tenant-1"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, rec := range readTopic(ctx, t, r.tcfg, r.tcfg.Records(r.coll.Database().Name(), "orders")) {
			if strings.Contains(string(rec.Key), `"reborn"`) {
				return
			}
		}
		select {
		case stderr := <-r.producerExit:
			t.Fatalf("the producer stopped: %s", stderr)
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Fatal("a document of the re-created collection was never published")
}

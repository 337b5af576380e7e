package snapshot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// BenchmarkSnapshot measures the snapshot (MongoDB -> Kafka, in one process
// with the default worker count) beside a raw parallel read of the same
// collection with the same driver and the same number of workers, in the
// same run, and the process's peak RSS during the snapshot. The raw read does
// the source's side of the snapshot and nothing else: it splits the
// collection as the snapshot does (plan: a parallel read has to split it
// somehow, and this is the split the snapshot pays for) and reads the chunks
// with the workers' query, discarding the documents. The ratio is then what
// docshift's own work costs (normalizing, encoding, Kafka, the recorded
// state); each round's log line also gives the rate of the chunk reads
// alone, without the split. Sizes come from
// DOCSHIFT_BENCH_DOCS (comma-separated, default 200000,1000000: a small
// collection, where the run's fixed costs show, and one where the read
// dominates; add 4000000 for the largest). Each size runs once whatever b.N
// is: the figures are the printed line
//
//	bench snapshot: ours=<docs/s> raw=<docs/s> ratio=<ours/raw> rss_mb=<peak>
//
// Each size runs DOCSHIFT_BENCH_ROUNDS rounds (default 5 up to 500,000
// documents, 1 above) of a snapshot run and a raw read, and prints the
// median of each: single runs on a shared 2-core machine vary by 20%. Each
// round's log line gives how far into the snapshot run its plan was
// published (no chunk is read before), and the CPU seconds this process,
// the Kafka broker and the MongoDB server used in each read, where they run on this machine: on
// 2 cores, the broker's and the snapshot's CPU is taken from the server's,
// and a garbage-collection cycle of the test server (about 1 CPU-s for
// 200k documents) falls into either read at random.
//
// DOCSHIFT_BENCH_CHUNK_DOCS sets the chunk size (default the snapshot's
// default). mongo-java-server answers every _id-range query by scanning the
// whole collection, so a 4M-document run is only practical there with
// larger chunks; peak RSS does not depend on the chunk size (a chunk is
// streamed). The test server also needs a larger heap for 4M documents:
// DOCSHIFT_MONGO_HEAP=12g scripts/services.sh restart-mongo.
//
// DOCSHIFT_BENCH_LOG=1 writes the snapshot's debug log to stderr: when the
// plan was published and each chunk's read and commit times.
func BenchmarkSnapshot(b *testing.B) {
	sizes := os.Getenv("DOCSHIFT_BENCH_DOCS")
	if sizes == "" {
		sizes = "200000,1000000"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("DOCSHIFT_BENCH_DOCS=%q: want comma-separated document counts", sizes)
		}
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) { benchSnapshot(b, n) })
	}
}

func benchSnapshot(b *testing.B, n int) {
	mcfg, mc := services.Mongo(b)
	tcfg, _ := services.Kafka(b)
	meter := newCPUMeter(b, tcfg, mcfg)
	ctx := services.Context(b, 60*time.Minute)
	db := services.Unique(b)
	coll := mc.Database(db).Collection("bench")
	b.Cleanup(func() {
		_ = coll.Database().Drop(context.Background())
		// The test server keeps every write in its in-memory oplog: let go
		// of this large load (a real MongoDB has no such command and says so).
		_ = mc.Database("admin").RunCommand(context.Background(), bson.D{{Key: "docshiftTruncateOplog", Value: 1}}).Err()
	})
	seed(ctx, b, coll, n)
	m, err := schemas.ParseMapping("bench.yaml", fmt.Appendf(nil,
		"collections:\n  - source: %s.bench\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n      - {path: status, type: text}\n      - {path: total, type: double}\n      - {path: created_at, type: timestamptz}\n", db))
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.WorkerID = db
	if v := os.Getenv("DOCSHIFT_BENCH_CHUNK_DOCS"); v != "" {
		if cfg.ChunkDocs, err = strconv.Atoi(v); err != nil || cfg.ChunkDocs < 1 {
			b.Fatalf("DOCSHIFT_BENCH_CHUNK_DOCS=%q: want a document count", v)
		}
	}
	// One unmeasured raw read first, of chunks planned as the snapshot
	// plans them: the test server compiles its query path on first use,
	// and whichever read came first would pay for it.
	_, _, warm, err := plan(ctx, coll, db+".bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	if got := rawRead(ctx, b, mc, warm, cfg); got != int64(n) {
		b.Fatalf("warm-up read %d documents, want %d", got, n)
	}
	rounds := 5
	if n > 500_000 {
		rounds = 1
	}
	if v := os.Getenv("DOCSHIFT_BENCH_ROUNDS"); v != "" {
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			b.Fatalf("DOCSHIFT_BENCH_ROUNDS=%q: want a count", v)
		}
	}
	b.ResetTimer()

	// Each round is a snapshot run (a new one after the first: --restart)
	// and then a raw read (a plan of its own and its chunks); the line gives
	// the median rate of each and the peak RSS of all rounds.
	var ours, raw, reads []float64
	services.ResetPeakRSS()
	for r := range rounds {
		cfg.Restart = r > 0
		before := meter.read()
		st, started, elapsed, err := New(cfg, m, mc, tcfg, nil, nil, nil).runForBench(ctx)
		if err != nil {
			b.Fatal(err)
		}
		oursCPU := meter.since(before)
		ours = append(ours, float64(n)/elapsed.Seconds())
		var chunks []Chunk
		var planned time.Time // when the last plan was published: no chunk is read before its plan
		for _, p := range st.Plans {
			chunks = append(chunks, p.Chunks...)
			if p.PlannedAt.After(planned) {
				planned = p.PlannedAt
			}
		}
		if read := documentsDone(st); read != int64(n) || len(st.Done) != len(chunks) {
			b.Fatalf("round %d: the run recorded %d documents in %d of %d chunks, want %d documents", r+1, documentsDone(st), len(st.Done), len(chunks), n)
		}
		start, before := time.Now(), meter.read()
		_, _, split, err := plan(ctx, coll, db+".bench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		split0 := time.Now()
		got := rawRead(ctx, b, mc, split, cfg)
		end := time.Now()
		raw = append(raw, float64(got)/end.Sub(start).Seconds())
		reads = append(reads, float64(got)/end.Sub(split0).Seconds())
		if got != int64(n) {
			b.Fatalf("raw read %d documents, want %d", got, n)
		}
		b.Logf("round %d: ours=%.0f raw=%.0f (chunk reads alone %.0f); planned in %.2f s of ours' %.2f, %.2f of raw's %.2f; CPU-s in ours: %s; in raw: %s",
			r+1, ours[r], raw[r], reads[r], planned.Sub(started).Seconds(), elapsed.Seconds(),
			split0.Sub(start).Seconds(), end.Sub(start).Seconds(), oursCPU, meter.since(before))
	}
	rss := services.PeakRSSMB()
	b.StopTimer()
	o, w := median(ours), median(raw)
	fmt.Printf("bench snapshot: ours=%.0f raw=%.0f ratio=%.2f rss_mb=%.0f\n", o, w, o/w, rss)
	b.Logf("medians of %d rounds: ours=%.0f raw=%.0f ratio=%.2f; beside the chunk reads alone (no split) %.0f: ratio=%.2f",
		rounds, o, w, o/w, median(reads), o/median(reads))
	b.ReportMetric(o, "docs/s")
	b.ReportMetric(o/w, "ours/raw")
	b.ReportMetric(rss, "rss_mb")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runForBench runs the snapshot with a quiet logger and returns when it
// started and how long it took, and then the state it recorded (read after
// the clock stopped: it checks the run, it is not part of it).
func (s *Snapshot) runForBench(ctx context.Context) (*State, time.Time, time.Duration, error) {
	s.log = quietLog()
	start := time.Now()
	if _, err := s.Run(ctx); err != nil {
		return nil, start, 0, err
	}
	elapsed := time.Since(start)
	st, err := ReadState(ctx, s.topics, nil)
	return st, start, elapsed, err
}

// cpuMeter reads the CPU time used by this process and by the Kafka broker
// and the MongoDB server where they run on this machine (as `make bench`
// starts them): on a shared machine a read is as fast as the CPU the others
// leave it, and the figures show where a round's CPU went. A service on
// another host is left out.
type cpuMeter struct {
	names []string
	pids  []int
}

func newCPUMeter(b *testing.B, tc topic.Config, mc source.Config) *cpuMeter {
	m := &cpuMeter{names: []string{"docshift"}, pids: []int{os.Getpid()}}
	addrs := map[string]string{"kafka": tc.SeedList()[0]}
	if u, err := url.Parse(mc.URI); err == nil {
		addrs["mongo"] = strings.Split(u.Host, ",")[0]
	}
	for _, name := range []string{"kafka", "mongo"} {
		pid, err := services.ListenerPID(addrs[name])
		if err != nil {
			b.Logf("CPU of %s not measured: %v", name, err)
			continue
		}
		m.names, m.pids = append(m.names, name), append(m.pids, pid)
	}
	return m
}

func (m *cpuMeter) read() []float64 {
	out := make([]float64, len(m.pids))
	for i, pid := range m.pids {
		out[i], _ = services.ProcessCPU(pid)
	}
	return out
}

// since formats the CPU seconds each process used since before, e.g.
// "docshift=0.70 kafka=0.47 mongo=2.65".
func (m *cpuMeter) since(before []float64) string {
	now := m.read()
	parts := make([]string, len(m.pids))
	for i, name := range m.names {
		parts[i] = fmt.Sprintf("%s=%.2f", name, now[i]-before[i])
	}
	return strings.Join(parts, " ")
}

// rawRead reads the chunks with cfg.Workers goroutines, the way the workers
// do (sorted by _id, same batch size, raw BSON), doing nothing with them.
func rawRead(ctx context.Context, b *testing.B, mc *mongo.Client, chunks []Chunk, cfg Config) int64 {
	work := make(chan Chunk)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				ns, _ := schemas.ParseNamespace(c.Namespace)
				f, err := c.Filter()
				if err != nil {
					b.Error(err)
					return
				}
				cur, err := mc.Database(ns.Database).Collection(ns.Collection).Find(ctx, f,
					options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(int32(cfg.BatchSize)))
				if err != nil {
					b.Error(err)
					return
				}
				var k int64
				for cur.Next(ctx) {
					if len(cur.Current) > 0 {
						k++
					}
				}
				_ = cur.Close(ctx)
				total.Add(k)
			}
		}()
	}
	for _, c := range chunks {
		work <- c
	}
	close(work)
	wg.Wait()
	return total.Load()
}

func seed(ctx context.Context, b *testing.B, coll *mongo.Collection, n int) {
	start := time.Now()
	batch := make([]any, 0, 20000)
	for i := range n {
		batch = append(batch, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%02d", i%20)},
			{Key: "n", Value: int64(i)}, {Key: "status", Value: "paid"}, {Key: "total", Value: float64(i) / 7},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(time.Unix(int64(1_700_000_000+i), 0))},
			{Key: "note", Value: "a note that goes to _extra"}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("seeded %d documents in %s", n, time.Since(start).Round(time.Millisecond))
}

// quietLog discards the log, unless DOCSHIFT_BENCH_LOG is set: then the
// debug log (each chunk's timings) goes to stderr.
func quietLog() *slog.Logger {
	if os.Getenv("DOCSHIFT_BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

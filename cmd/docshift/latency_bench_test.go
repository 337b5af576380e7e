package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// BenchmarkLatency measures end-to-end latency, MongoDB write to row visible
// in PostgreSQL, through `docshift produce` and `docshift consume` processes,
// at a steady write rate (DOCSHIFT_BENCH_WRITES_PER_S, default 1000) for
// DOCSHIFT_BENCH_SECONDS (default 10). It prints
//
//	bench latency: p50_ms=<n> p99_ms=<n> writes_per_s=<n>
func BenchmarkLatency(b *testing.B) {
	rate, secs := 1000, 10
	if s := os.Getenv("DOCSHIFT_BENCH_WRITES_PER_S"); s != "" {
		rate, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("DOCSHIFT_BENCH_SECONDS"); s != "" {
		secs, _ = strconv.Atoi(s)
	}
	mcfg, mc := services.Mongo(b)
	tcfg, _ := services.Kafka(b)
	pcfg, pool := services.Postgres(b)
	ctx := services.Context(b, 10*time.Minute)
	name := services.Unique(b)
	table := name + "_orders"
	mapping := filepath.Join(b.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mapping, fmt.Appendf(nil, liveMapping, name, table), 0o644); err != nil {
		b.Fatal(err)
	}
	coll := mc.Database(name).Collection("orders")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: -1}, {Key: "tenant_id", Value: "tenant-0"}}); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "docshift")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	kafka := []string{"--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix, "--topic-partitions", "4", "--monitor-addr", ""}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, append(args, kafka...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		return cmd
	}
	run("produce", "--mapping", mapping, "--mongo-uri", mcfg.URI, "--batch-wait", "5ms")
	// The consumer needs the records topic to exist; the first write makes it.
	time.Sleep(2 * time.Second)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: -2}, {Key: "tenant_id", Value: "tenant-0"}}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	run("consume", "--pg-url", pcfg.URL, "--group", name+"-sink", "--batch-wait", "0")

	var mu sync.Mutex
	written := make(map[string]time.Time, rate*secs)
	visible := map[string]time.Time{}
	finished := false
	done := make(chan struct{})
	go func() { // poll the target: when did each row first show?
		defer close(done)
		deadline := time.Now().Add(time.Duration(secs)*time.Second + 60*time.Second)
		for time.Now().Before(deadline) {
			rows, err := pool.Query(ctx, fmt.Sprintf("SELECT _id FROM %s", schemas.QuoteIdent(table)))
			now := time.Now()
			mu.Lock()
			if err == nil {
				for rows.Next() {
					var id string
					if rows.Scan(&id) == nil {
						if _, ok := visible[id]; !ok {
							visible[id] = now
						}
					}
				}
				rows.Close()
			}
			all := finished
			for id := range written {
				if _, ok := visible[id]; !ok {
					all = false
					break
				}
			}
			mu.Unlock()
			if all {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range rate * secs {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		id := int32(i)
		at := time.Now()
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantOfID(i)}, {Key: "status", Value: "new"}}); err != nil {
			b.Fatal(err)
		}
		cid, _ := schemas.CanonicalID(bsonValue(id))
		mu.Lock()
		written[cid] = at
		mu.Unlock()
	}
	achieved := float64(rate*secs) / time.Since(start).Seconds()
	mu.Lock()
	finished = true
	mu.Unlock()
	<-done
	b.StopTimer()
	var lat []float64
	for id, at := range written {
		if seen, ok := visible[id]; ok {
			lat = append(lat, float64(seen.Sub(at).Microseconds())/1000)
		}
	}
	if len(lat) < len(written) {
		b.Fatalf("%d of %d writes never became visible", len(written)-len(lat), len(written))
	}
	sort.Float64s(lat)
	fmt.Printf("bench latency: p50_ms=%.0f p99_ms=%.0f writes_per_s=%.0f\n", lat[len(lat)/2], lat[len(lat)*99/100], achieved)
}

func bsonValue(v any) bson.RawValue {
	b, _ := bson.Marshal(bson.D{{Key: "v", Value: v}})
	return bson.Raw(b).Lookup("v")
}

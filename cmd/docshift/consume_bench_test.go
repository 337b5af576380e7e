package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// BenchmarkSink measures the consumer on orders-like records (10 typed
// columns and _extra, and 3 items in a child table) from a pre-filled
// 12-partition topic: `docshift consume --stop-at-end` runs as its own
// process, and in the same run the same parent and child rows are COPYed
// straight into the same tables, the raw limit. Rates count parent rows (one
// per record). One line per topic size:
//
//	bench sink: ours=<rows/s> raw=<rows/s> ratio=<ours/raw> rss_mb=<peak>
//
// Sizes come from DOCSHIFT_BENCH_RECORDS (comma-separated, default
// 100000,400000) and DOCSHIFT_BENCH_ARGS adds consumer flags (such as
// --cpuprofile FILE, or --memprofile FILE for a heap profile at the peak of
// the live heap); rss_mb is the consumer process's peak resident set
// (getrusage maxrss), which should not grow with the topic.
func BenchmarkSink(b *testing.B) {
	sizes := []int{100_000, 400_000}
	if env := os.Getenv("DOCSHIFT_BENCH_RECORDS"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("DOCSHIFT_BENCH_RECORDS: %q is not a record count", f)
			}
			sizes = append(sizes, n)
		}
	}
	tcfg, kc := services.Kafka(b)
	pcfg, pool := services.Postgres(b)
	ctx := services.Context(b, time.Hour)
	bin := filepath.Join(b.TempDir(), "docshift")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	tcfg.Partitions = 12
	if err := topic.EnsureSchemas(ctx, kc, tcfg); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		for _, n := range sizes {
			name := services.Unique(b)
			coll := schemas.Collection{Table: name + "_orders", Columns: []schemas.Column{
				{Name: "customer", Type: schemas.Text}, {Name: "status", Type: schemas.Text},
				{Name: "total", Type: schemas.Double}, {Name: "items", Type: schemas.Integer},
				{Name: "paid", Type: schemas.Boolean}, {Name: "created_at", Type: schemas.TimestampTZ},
				{Name: "note", Type: schemas.Text}, {Name: "sku", Type: schemas.Text},
				{Name: "qty", Type: schemas.BigInt}, {Name: "discount", Type: schemas.Double}},
				Children: []schemas.Child{{Path: schemas.Path{"lines"}, Table: name + "_orders__lines", Columns: []schemas.Column{
					{Name: "sku", Type: schemas.Text}, {Name: "qty", Type: schemas.Integer}, {Name: "price", Type: schemas.Double}}}}}
			ns := schemas.Namespace{Database: name, Collection: "orders"}
			s, err := schemas.NewSchema(ns, coll.TargetTable())
			if err != nil {
				b.Fatal(err)
			}
			recTopic := tcfg.Records(ns.Database, ns.Collection)
			if err := topic.EnsureRecords(ctx, kc, tcfg, recTopic); err != nil {
				b.Fatal(err)
			}
			if err := schemas.NewRegistry(kc, tcfg.Schemas()).Register(ctx, s); err != nil {
				b.Fatal(err)
			}
			fill(ctx, b, kc, s, recTopic, n)
			ours, rssMB := runSink(ctx, b, bin, tcfg, pcfg.URL, recTopic, name+"-sink")
			tbl, items := schemas.QuoteIdent(coll.Table), schemas.QuoteIdent(s.Table.Children[0].Name)
			var got, gotItems int
			if err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+tbl+"), (SELECT count(*) FROM "+items+")").Scan(&got, &gotItems); err != nil ||
				got != n || gotItems != 3*n {
				b.Fatalf("consumer left %d rows and %d items (err %v), want %d and %d", got, gotItems, err, n, 3*n)
			}
			if _, err := pool.Exec(ctx, "TRUNCATE "+tbl+", "+items); err != nil {
				b.Fatal(err)
			}
			raw := rawCopy(ctx, b, pool, s.Table, n)
			fmt.Printf("bench sink: records=%d ours=%.0f raw=%.0f ratio=%.2f rss_mb=%.0f\n", n, ours, raw, ours/raw, rssMB)
			b.ReportMetric(ours, "rows/s")
			b.ReportMetric(ours/raw, "ratio")
			if _, err := pool.Exec(ctx, "DROP TABLE "+tbl+", "+items); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// order is the i-th orders-like document.
func order(i int) (string, map[string]any) {
	statuses := []string{"new", "paid", "shipped", "delivered", "returned"}
	return fmt.Sprintf(`{"$oid":"%024x"}`, i), map[string]any{
		"customer": fmt.Sprintf("customer-%06d", i%50000), "status": statuses[i%len(statuses)],
		"total": float64(i%100000) / 100, "items": int32(i%7 + 1), "paid": i%3 != 0,
		"created_at": time.Unix(1_700_000_000+int64(i), 0).UTC(), "note": "deliver to the back door, ring twice",
		"sku": fmt.Sprintf("SKU-%08d", i%99991), "qty": int64(i % 13), "discount": float64(i%20) / 100,
		"lines": []any{
			map[string]any{"sku": fmt.Sprintf("SKU-%08d", i%99991), "qty": int32(1), "price": 9.99},
			map[string]any{"sku": fmt.Sprintf("SKU-%08d", (i+7)%99991), "qty": int32(i%5 + 1), "price": 24.5},
			map[string]any{"sku": fmt.Sprintf("SKU-%08d", (i+13)%99991), "qty": int32(2), "price": float64(i%1000) / 10},
		},
	}
}

func tenantOf(i int) string { return fmt.Sprintf("tenant-%02d", i%16) }

// fill produces n orders to the topic.
func fill(ctx context.Context, b *testing.B, kc *kgo.Client, s *schemas.Schema, recTopic string, n int) {
	b.Helper()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for i := range n {
		id, row := order(i)
		e := &schemas.Envelope{Op: schemas.OpRead, Version: int64(1) << 32, Tenant: tenantOf(i), ID: id, Row: row}
		v, err := s.Encode(nil, e)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		kc.Produce(ctx, &kgo.Record{Topic: recTopic, Key: schemas.Key(e.Tenant, id), Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

var rateRE = regexp.MustCompile(`records_per_second=(\d+)`)

// runSink runs one consumer process until it has applied the topic and
// returns its records/s (from its first fetch to the end, as it logs them)
// and its peak RSS in MiB.
func runSink(ctx context.Context, b *testing.B, bin string, tcfg topic.Config, pgURL, recTopic, group string) (float64, float64) {
	b.Helper()
	args := append([]string{"consume", "--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix, "--topics", recTopic,
		"--group", group, "--pg-url", pgURL, "--stop-at-end", "--monitor-addr", ""}, strings.Fields(os.Getenv("DOCSHIFT_BENCH_ARGS"))...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "DOCSHIFT_LOG_LEVEL=info")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("consume: %v\n%s", err, out)
	}
	m := rateRE.FindSubmatch(out)
	if m == nil {
		b.Fatalf("consume did not log its rate:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(string(m[1]), 64)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return rate, float64(ru.Maxrss) / 1024 // Linux: KiB
}

// rawCopy COPYs the same n orders, parent rows then child rows, into the
// tables and returns parent rows/s.
func rawCopy(ctx context.Context, b *testing.B, pool *pgxpool.Pool, t schemas.Table, n int) float64 {
	b.Helper()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	items := t.Children[0]
	cur, id, row := -1, "", map[string]any(nil)
	at := func(i int) { // the i-th order, made once for all its columns
		if i != cur {
			cur = i
			id, row = order(i)
		}
	}
	start := time.Now()
	copyTable(ctx, b, conn, t, n, func(i int, c schemas.TableColumn) any {
		at(i)
		switch c.Name {
		case schemas.ColTenant:
			return tenantOf(i)
		case schemas.ColID:
			return id
		case schemas.ColVersion:
			return int64(1) << 32
		case schemas.ColDeleted:
			return false
		}
		return row[c.Field]
	})
	copyTable(ctx, b, conn, items, 3*n, func(j int, c schemas.TableColumn) any {
		at(j / 3)
		switch c.Name {
		case schemas.ColTenant:
			return tenantOf(j / 3)
		case schemas.ColID:
			return id
		case schemas.ColIdx:
			return []int32{int32(j % 3)}
		}
		return row[items.Field].([]any)[j%3].(map[string]any)[c.Field]
	})
	return float64(n) / time.Since(start).Seconds()
}

// copyTable COPYs rows 0..n-1 of table t, column values from value.
func copyTable(ctx context.Context, b *testing.B, conn *pgxpool.Conn, t schemas.Table, n int, value func(row int, c schemas.TableColumn) any) {
	b.Helper()
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
	i := 0
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{t.Name}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		vals := make([]any, len(t.Columns))
		for j, c := range t.Columns {
			vals[j] = value(i, c)
		}
		i++
		return vals, nil
	}))
	if err != nil || copied != int64(n) {
		b.Fatalf("raw COPY into %s: %d rows, %v", t.Name, copied, err)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/demo"
	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// docshift runs the command in-process and returns its exit code and output.
func docshift(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestSnapshotToPostgres is the first end-to-end path: documents of several
// tenants in MongoDB go through `docshift snapshot` to Kafka and through
// `docshift consume` into PostgreSQL, and arrive field by field.
func TestSnapshotToPostgres(t *testing.T) {
	mcfg, mc := services.Mongo(t)
	tcfg, kc := services.Kafka(t)
	pcfg, pool := services.Postgres(t)
	ctx := services.Context(t, 3*time.Minute)

	name := services.Unique(t)
	dcfg := demo.Config{Database: name, Collection: "orders", Table: name + "_orders", Tenants: 3, Documents: 40, Seed: 7}
	if _, err := demo.Seed(ctx, mc, dcfg); err != nil {
		t.Fatal(err)
	}
	mappingFile := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mappingFile, []byte(demo.Mapping(dcfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	kafkaFlags := []string{"--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix, "--topic-partitions", "4"}

	code, stdout, stderr := docshift(ctx, t, append([]string{"snapshot", "--mapping", mappingFile, "--mongo-uri", mcfg.URI}, kafkaFlags...)...)
	if code != 0 {
		t.Fatalf("snapshot exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "123 documents") {
		t.Errorf("snapshot output %q does not report the 123 documents", stdout)
	}
	code, _, stderr = docshift(ctx, t, append([]string{"consume", "--pg-url", pcfg.URL, "--group", name + "-sink", "--stop-at-end"}, kafkaFlags...)...)
	if code != 0 {
		t.Fatalf("consume exited %d: %s", code, stderr)
	}

	// Every document arrived, field by field.
	source := readSource(ctx, t, mc.Database(dcfg.Database).Collection(dcfg.Collection))
	rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT _tenant, _id, _version, _deleted, customer, status, total, items, paid, created_at, _extra::text FROM %s`,
		schemas.QuoteIdent(dcfg.Table)))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	var r struct {
		tenant, id, customer, status, extra string
		version                             int64
		deleted, paid                       bool
		total                               float64
		items                               int32
		createdAt                           time.Time
	}
	_, err = pgx.ForEachRow(rows, []any{&r.tenant, &r.id, &r.version, &r.deleted, &r.customer, &r.status, &r.total, &r.items, &r.paid, &r.createdAt, &r.extra}, func() error {
		seen++
		doc, ok := source[r.id]
		if !ok {
			return fmt.Errorf("row %s has no source document", r.id)
		}
		want := fmt.Sprintf("%s|%s|%s|%.2f|%d|%v|%s|%s", doc.Lookup("tenant_id").StringValue(), doc.Lookup("customer").StringValue(),
			doc.Lookup("status").StringValue(), doc.Lookup("total").Double(), doc.Lookup("items").Int32(), doc.Lookup("paid").Boolean(),
			doc.Lookup("created_at").Time().UTC().Format(time.RFC3339Nano), `{"note": "`+doc.Lookup("note").StringValue()+`"}`)
		got := fmt.Sprintf("%s|%s|%s|%.2f|%d|%v|%s|%s", r.tenant, r.customer, r.status, r.total, r.items, r.paid,
			r.createdAt.UTC().Format(time.RFC3339Nano), r.extra)
		if got != want {
			return fmt.Errorf("row %s:\n got  %s\n want %s", r.id, got, want)
		}
		if r.deleted || r.version <= 0 {
			return fmt.Errorf("row %s: deleted=%v version=%d", r.id, r.deleted, r.version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(source) {
		t.Fatalf("target has %d rows, source %d documents", seen, len(source))
	}

	// Every Kafka record is keyed [tenant, id] and decodes with the schema
	// published to the schema topic.
	recTopic := tcfg.Records(dcfg.Database, dcfg.Collection)
	recs := readTopic(ctx, t, tcfg, recTopic)
	if len(recs) != len(source) {
		t.Fatalf("topic %s has %d records, want %d", recTopic, len(recs), len(source))
	}
	reg := schemas.NewRegistry(kc, tcfg.Schemas())
	keys := map[string]bool{}
	for _, rec := range recs {
		env, s, err := reg.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatalf("record at offset %d does not decode with the topic's schema: %v", rec.Offset, err)
		}
		if s.Table.Name != dcfg.Table || env.Op != schemas.OpRead || !env.Source.Snapshot {
			t.Fatalf("record %s: table %s op %s snapshot %v", rec.Key, s.Table.Name, env.Op, env.Source.Snapshot)
		}
		doc, ok := source[env.ID]
		if !ok {
			t.Fatalf("record id %s is not a source document", env.ID)
		}
		if env.Tenant != doc.Lookup("tenant_id").StringValue() {
			t.Fatalf("record %s tenant %q, document's %q", env.ID, env.Tenant, doc.Lookup("tenant_id").StringValue())
		}
		if want := schemas.Key(env.Tenant, env.ID); !bytes.Equal(rec.Key, want) {
			t.Fatalf("record key %s, want %s", rec.Key, want)
		}
		if math.IsNaN(env.Row["total"].(float64)) {
			t.Fatal("total decoded as NaN")
		}
		keys[string(rec.Key)] = true
	}
	if len(keys) != len(source) {
		t.Fatalf("%d distinct keys for %d documents", len(keys), len(source))
	}

	code, stdout, stderr = docshift(ctx, t, "verify", "--mapping", mappingFile, "--mongo-uri", mcfg.URI, "--pg-url", pcfg.URL)
	if code != 0 {
		t.Fatalf("verify exited %d: %s%s", code, stdout, stderr)
	}
	for _, tenant := range []string{"tenant-01", "tenant-02", "tenant-03"} {
		if !strings.Contains(stdout, tenant) {
			t.Errorf("verify output lacks %s:\n%s", tenant, stdout)
		}
	}
}

// readSource returns the collection's documents by canonical _id.
func readSource(ctx context.Context, t *testing.T, coll *mongo.Collection) map[string]bson.Raw {
	t.Helper()
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	out := map[string]bson.Raw{}
	for cur.Next(ctx) {
		id, err := schemas.CanonicalID(cur.Current.Lookup("_id"))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = append(bson.Raw(nil), cur.Current...)
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readTopic reads the committed records of a topic from its start to its
// current end (services.ReadCommitted), without snapshot fences.
func readTopic(ctx context.Context, t *testing.T, tcfg topic.Config, name string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for _, r := range services.ReadCommitted(ctx, t, tcfg, name) {
		if _, fence, _ := schemas.ParseFence(r); !fence {
			out = append(out, r)
		}
	}
	return out
}

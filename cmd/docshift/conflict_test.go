package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// TestConflictPolicies: a value that does not fit its column is kept in
// _extra by default; with on_conflict: dlq the document goes to the
// dead-letter topic with the reason, and the row goes on without the value.
func TestConflictPolicies(t *testing.T) {
	mcfg, mc := services.Mongo(t)
	tcfg, _ := services.Kafka(t)
	pcfg, pool := services.Postgres(t)
	ctx := services.Context(t, 2*time.Minute)
	db := services.Unique(t)
	for _, coll := range []string{"kept", "dead"} {
		if _, err := mc.Database(db).Collection(coll).InsertMany(ctx, []any{
			bson.D{{Key: "_id", Value: 1}, {Key: "t", Value: "a"}, {Key: "qty", Value: "three"}},
			bson.D{{Key: "_id", Value: 2}, {Key: "t", Value: "a"}, {Key: "qty", Value: int32(3)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	mapping := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(mapping, fmt.Appendf(nil, `collections:
  - source: %[1]s.kept
    tenant: {field: t}
    table: %[1]s_kept
    columns: [{path: qty, type: integer}]
  - source: %[1]s.dead
    tenant: {field: t}
    table: %[1]s_dead
    on_conflict: dlq
    columns: [{path: qty, type: integer}]
`, db), 0o644); err != nil {
		t.Fatal(err)
	}
	kafka := []string{"--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix}
	if code, _, stderr := docshift(ctx, t, append([]string{"snapshot", "--mapping", mapping, "--mongo-uri", mcfg.URI}, kafka...)...); code != 0 {
		t.Fatalf("snapshot exited %d: %s", code, stderr)
	}
	if code, _, stderr := docshift(ctx, t, append([]string{"consume", "--pg-url", pcfg.URL, "--group", db, "--stop-at-end", "--monitor-addr", ""}, kafka...)...); code != 0 {
		t.Fatalf("consume exited %d: %s", code, stderr)
	}
	row := func(table string) (qty *int32, extra *string) {
		if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT qty, _extra::text FROM %s WHERE _id = '{"$numberInt":"1"}'`, schemas.QuoteIdent(table))).Scan(&qty, &extra); err != nil {
			t.Fatal(err)
		}
		return qty, extra
	}
	if qty, extra := row(db + "_kept"); qty != nil || extra == nil || !strings.Contains(*extra, `"three"`) {
		t.Errorf("default policy: qty %v, _extra %v; want NULL and the value kept in _extra", qty, extra)
	}
	if qty, extra := row(db + "_dead"); qty != nil || (extra != nil && strings.Contains(*extra, "three")) {
		t.Errorf("dlq policy: qty %v, _extra %v; want NULL and nothing in _extra", qty, extra)
	}
	dead := readTopic(ctx, t, tcfg, tcfg.DLQ())
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want the one document of %s.dead", len(dead), db)
	}
	var reason string
	for _, h := range dead[0].Headers {
		if h.Key == "error" {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "qty") || !strings.Contains(string(dead[0].Value), `"three"`) {
		t.Fatalf("dead letter: reason %q, value %s", reason, dead[0].Value)
	}
}

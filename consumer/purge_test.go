package consumer

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// TestPurgeDeletesOnlyTombstonesOlderThanRetention: tombstones whose
// version's cluster time is before the cutoff go; newer tombstones and live
// rows, however old, stay.
func TestPurgeDeletesOnlyTombstonesOlderThanRetention(t *testing.T) {
	_, pool := services.Postgres(t)
	ctx := services.Context(t, time.Minute)
	name := services.Unique(t) + "_purge"
	coll := schemas.Collection{Table: name, Columns: []schemas.Column{{Name: "name", Type: schemas.Text}}}
	s, err := schemas.NewSchema(schemas.Namespace{Database: "d", Collection: "c"}, coll.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(pool)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+schemas.QuoteIdent(name)) })
	version := func(ago time.Duration) int64 {
		return schemas.Version(bson.Timestamp{T: uint32(time.Now().Add(-ago).Unix())})
	}
	ch := func(id string, v int64, del bool) change {
		e := &schemas.Envelope{Op: schemas.OpUpdate, Tenant: "t", ID: id, Version: v, Row: map[string]any{"name": id}}
		if del {
			e.Op, e.Row = schemas.OpDelete, nil
		}
		return change{env: e, schema: s}
	}
	if _, err := a.apply(ctx, []change{
		ch(`"old-tombstone"`, version(48*time.Hour), true),
		ch(`"new-tombstone"`, version(time.Hour), true),
		ch(`"old-live"`, version(48*time.Hour), false),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := a.purge(ctx, name, time.Now().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purge deleted %d rows (err %v), want 1", n, err)
	}
	rows, err := pool.Query(ctx, "SELECT _id FROM "+schemas.QuoteIdent(name)+" ORDER BY _id")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != 2 || ids[0] != `"new-tombstone"` || ids[1] != `"old-live"` {
		t.Fatalf("rows after purge: %v, want the new tombstone and the old live row", ids)
	}
}

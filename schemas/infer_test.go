package schemas

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
)

func TestInfer(t *testing.T) {
	_, mc := services.Mongo(t)
	ctx := services.Context(t, time.Minute)
	db := services.Unique(t)
	coll := mc.Database(db).Collection("orders")
	var docs []any
	for i := range 100 {
		qty := any(int32(i))
		if i%10 == 0 {
			qty = int64(i) // int32 + int64 -> bigint
		}
		code := any(int32(i))
		if i%4 == 0 {
			code = fmt.Sprintf("c%d", i) // numbers and strings -> text
		}
		docs = append(docs, bson.D{
			{Key: "_id", Value: bson.NewObjectID()},
			{Key: "tenant_id", Value: "t1"},
			{Key: "qty", Value: qty},
			{Key: "code", Value: code},
			{Key: "price", Value: float64(i) + 0.5},
			{Key: "at", Value: bson.NewDateTimeFromTime(time.Unix(int64(i), 0))},
			{Key: "customer", Value: bson.D{{Key: "name", Value: "n"}, {Key: "vip", Value: i%2 == 0}}},
			{Key: "attrs", Value: bson.D{{Key: fmt.Sprintf("k%d", i), Value: i}}}, // map-like: jsonb
			{Key: "tags", Value: bson.A{"a", "b"}},
			{Key: "items", Value: bson.A{bson.D{{Key: "sku", Value: "s"}, {Key: "n", Value: int32(1)},
				{Key: "parts", Value: bson.A{bson.D{{Key: "w", Value: 1.5}}}}}}},
			{Key: "note", Value: nil},
		})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	inf, err := Infer(ctx, mc, []Namespace{{db, "orders"}}, InferOptions{Sample: 50, Tenant: TenantRule{Field: "tenant_id"}})
	if err != nil {
		t.Fatal(err)
	}
	if inf.Sampled[db+".orders"] != 50 {
		t.Errorf("sampled %d documents, want 50", inf.Sampled[db+".orders"])
	}
	c := inf.Mapping.Collections[0]
	got := map[string]SQLType{}
	for _, col := range c.Columns {
		got[col.Name] = col.Type
	}
	want := map[string]SQLType{"qty": BigInt, "code": Text, "price": Double, "at": TimestampTZ,
		"customer_name": Text, "customer_vip": Boolean, "attrs": JSONB, "tags": JSONB, "note": Text}
	for name, ty := range want {
		if got[name] != ty {
			t.Errorf("column %s: %q, want %q (all: %v)", name, got[name], ty, got)
		}
	}
	if _, ok := got["tenant_id"]; ok {
		t.Error("the tenant field was proposed as a column")
	}
	if len(c.Children) != 1 || c.Children[0].Path.String() != "items" || len(c.Children[0].Children) != 1 {
		t.Fatalf("children = %+v", c.Children)
	}
	var report bytes.Buffer
	inf.WriteReport(&report)
	for _, want := range []string{"qty: 32-bit integer×", "-> bigint", "code: ", "-> text"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
	// The YAML it writes is a valid mapping with the same tables.
	var y bytes.Buffer
	if err := inf.WriteYAML(&y); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMapping("inferred.yaml", y.Bytes())
	if err != nil {
		t.Fatalf("inferred YAML does not parse: %v\n%s", err, y.String())
	}
	if fmt.Sprint(m.Collections[0].TargetTable()) != fmt.Sprint(c.TargetTable()) {
		t.Fatalf("YAML round trip changed the table:\n%s", y.String())
	}
}

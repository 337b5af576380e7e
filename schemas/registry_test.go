package schemas

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

func TestConfluentFraming(t *testing.T) {
	fake := srfake.New()
	defer fake.Close()
	ctx := context.Background()
	writer, err := NewConfluentRegistry([]string{fake.URL()}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	c := testCollection(t)
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(nil, &Envelope{Op: OpCreate, Version: 9, Tenant: "acme", ID: `"x"`, Row: map[string]any{"status": "new"}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 {
		t.Fatalf("value starts with %x, want the Confluent magic byte 0", b[0])
	}
	// Any Confluent-compatible reader can fetch the writer schema by its id.
	id, _ := confluentID(b)
	cl, _ := sr.NewClient(sr.URLs(fake.URL()))
	got, err := cl.SchemaByID(ctx, id)
	if err != nil || got.Schema != s.JSON {
		t.Fatalf("schema id %d: %v", id, err)
	}
	// A fresh registry (a consumer elsewhere) decodes it through the registry.
	reader, err := NewConfluentRegistry([]string{fake.URL()}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e, rs, err := reader.Decode(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Row["status"] != "new" || e.Tenant != "acme" || rs.Table.Name != "orders" {
		t.Fatalf("decoded %+v from table %s", e, rs.Table.Name)
	}
	// Without a schema registry, a Confluent-framed record is named as such.
	if _, _, err := NewRegistry(nil, "").Decode(ctx, b); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("decoding without a registry: %v", err)
	}
}

// TestSchemaEvolutionIsBackwardCompatible: a mapping that grows a column or a
// child table gives a schema that reads records of the old one (Avro schema
// resolution), and registers under the same subject.
func TestSchemaEvolutionIsBackwardCompatible(t *testing.T) {
	fake := srfake.New()
	defer fake.Close()
	ctx := context.Background()
	c := testCollection(t)
	v1, _ := NewSchema(c.Source, c.TargetTable())
	reg, _ := NewConfluentRegistry([]string{fake.URL()}, nil, "")
	if err := reg.Register(ctx, v1); err != nil {
		t.Fatal(err)
	}
	grown := *c
	grown.Columns = append(append([]Column{}, c.Columns...), Column{Path: Path{"discount"}, Name: "discount", Type: Double})
	grown.Children = []Child{{Path: Path{"items"}, Table: "orders__items"}}
	v2, err := NewSchema(grown.Source, grown.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckBackward(v1, v2); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, v2); err != nil {
		t.Fatalf("grown schema rejected: %v", err)
	}
	if v2.registryID == v1.registryID {
		t.Fatal("grown schema got the same id")
	}
	// The check can fail: retyping a column is not backward compatible.
	retyped := *c
	retyped.Columns = append([]Column{}, c.Columns...)
	retyped.Columns[0].Type = BigInt
	v3, _ := NewSchema(retyped.Source, retyped.TargetTable())
	if err := CheckBackward(v1, v3); err == nil {
		t.Fatal("retyping a column passed the compatibility check: the check proves nothing")
	}
}

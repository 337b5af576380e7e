package schemas

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const testMapping = `
collections:
  - source: shop.orders
    tenant: {field: tenant_id}
    columns:
      - {path: status, type: text}
      - {path: total, type: double}
      - {path: qty, type: bigint}
      - {path: n, type: integer}
      - {path: paid, type: boolean}
      - {path: at, type: timestamptz}
      - {path: meta, type: jsonb}
      - {path: "odd name!", type: text}
`

func testCollection(t *testing.T) *Collection {
	t.Helper()
	m, err := ParseMapping("test", []byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	return &m.Collections[0]
}

func marshal(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNormalize(t *testing.T) {
	c := testCollection(t)
	at := time.Date(2025, 3, 4, 5, 6, 7, 8e6, time.UTC)
	doc := marshal(t, bson.D{
		{Key: "_id", Value: int32(7)},
		{Key: "tenant_id", Value: "acme"},
		{Key: "status", Value: "paid"},
		{Key: "total", Value: int32(12)},  // int32 widens into double
		{Key: "qty", Value: 3.0},          // integral double fits bigint
		{Key: "n", Value: int64(1) << 40}, // does not fit integer: kept in _extra
		{Key: "paid", Value: nil},         // null is SQL NULL
		{Key: "at", Value: bson.NewDateTimeFromTime(at)},
		{Key: "meta", Value: bson.D{{Key: "k", Value: int64(1)}}},
		{Key: "odd name!", Value: "x"},
		{Key: "unmapped", Value: bson.A{int32(1), "two"}},
	})
	d, err := c.Normalize("shop", doc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Tenant != "acme" || d.ID != `{"$numberInt":"7"}` {
		t.Errorf("tenant, id = %q, %q", d.Tenant, d.ID)
	}
	want := map[string]any{
		"status":              "paid",
		"total":               12.0,
		"qty":                 int64(3),
		"at":                  at,
		"meta":                `{"k":1}`, // jsonb columns hold relaxed Extended JSON
		AvroName("odd name!"): "x",
		ColExtra:              `{"n":{"$numberLong":"1099511627776"},"paid":null,"unmapped":[{"$numberInt":"1"},"two"]}`,
	}
	for k, v := range want {
		if !reflect.DeepEqual(d.Row[k], v) {
			t.Errorf("row[%s] = %#v, want %#v", k, d.Row[k], v)
		}
	}
	if _, ok := d.Row["n"]; ok {
		t.Error("a value that does not fit its column was put in the column")
	}
	if v, ok := d.Row["paid"]; !ok || v != nil {
		t.Errorf("null paid = %#v, %v; want present and nil", v, ok)
	}
	if len(d.Conflicts) != 1 || d.Conflicts[0].Column != "n" {
		t.Errorf("conflicts = %v, want one for n", d.Conflicts)
	}
}

func TestNormalizeErrors(t *testing.T) {
	c := testCollection(t)
	if _, err := c.Normalize("shop", marshal(t, bson.D{{Key: "tenant_id", Value: "a"}})); err != ErrNoID {
		t.Errorf("no _id: err = %v", err)
	}
	_, err := c.Normalize("shop", marshal(t, bson.D{{Key: "_id", Value: "x"}}))
	if err == nil || !strings.Contains(err.Error(), `field "tenant_id" is missing`) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("no tenant: err = %v", err)
	}
	_, err = c.Normalize("shop", marshal(t, bson.D{{Key: "_id", Value: "y"}, {Key: "tenant_id", Value: nil}}))
	if !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), `tenant field "tenant_id"`) || !strings.Contains(err.Error(), `"y"`) {
		t.Errorf("null tenant: err = %v", err)
	}
	// A document with a field twice (BSON allows it) has the first _id and
	// the first tenant, and neither goes to _extra.
	d, err := c.Normalize("shop", marshal(t, bson.D{{Key: "tenant_id", Value: "first"}, {Key: "_id", Value: int32(1)},
		{Key: "status", Value: "s"}, {Key: "_id", Value: int32(2)}, {Key: "tenant_id", Value: "second"}}))
	if err != nil || d.ID != `{"$numberInt":"1"}` || d.Tenant != "first" || d.Row[ColExtra] != nil || d.Row["status"] != "s" {
		t.Errorf("fields twice: %+v, %v", d, err)
	}
}

func TestTenantRules(t *testing.T) {
	doc := marshal(t, bson.D{{Key: "_id", Value: 1}, {Key: "org", Value: int32(5)}})
	for _, tc := range []struct {
		rule TenantRule
		want string
	}{
		{TenantRule{Field: "org"}, `{"$numberInt":"5"}`},
		{TenantRule{Database: true}, "tenantdb"},
		{TenantRule{Constant: "solo"}, "solo"},
	} {
		c := &Collection{Source: Namespace{"tenantdb", "x"}, Tenant: tc.rule, Table: "x"}
		d, err := c.Normalize("tenantdb", doc)
		if err != nil {
			t.Fatal(err)
		}
		if d.Tenant != tc.want {
			t.Errorf("rule %+v: tenant %q, want %q", tc.rule, d.Tenant, tc.want)
		}
	}
}

func TestSchemaRoundTrip(t *testing.T) {
	c := testCollection(t)
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	// The schema is deterministic: same mapping, same fingerprint.
	s2, _ := NewSchema(c.Source, c.TargetTable())
	if s.Fingerprint != s2.Fingerprint || s.JSON != s2.JSON {
		t.Fatal("schema is not deterministic")
	}
	// The table survives the trip through the schema JSON.
	parsed, err := ParseSchema(s.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed.Table, c.TargetTable()) {
		t.Fatalf("table from schema = %+v\nwant %+v", parsed.Table, c.TargetTable())
	}
	at := time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)
	in := &Envelope{Op: OpRead, Version: Version(bson.Timestamp{T: 1700000000, I: 3}), Tenant: "acme", ID: `"k"`,
		Source: Source{Database: "shop", Collection: "orders", ClusterTime: 42, Snapshot: true},
		Row: map[string]any{"status": "x", "total": math.Inf(-1), "qty": int64(-9), "n": int32(4), "paid": true,
			"at": at, "meta": `{}`, ColExtra: nil, AvroName("odd name!"): nil}}
	b, err := s.Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := Fingerprint(b); err != nil || fp != s.Fingerprint {
		t.Fatalf("Fingerprint = %x, %v; want %x", fp, err, s.Fingerprint)
	}
	out, err := parsed.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in  %+v\n out %+v", in, out)
	}
	del := &Envelope{Op: OpDelete, Version: 5, Tenant: "acme", ID: `"k"`, Source: in.Source}
	b, err = s.Encode(nil, del)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.Decode(b); err != nil || out.Row != nil || out.Op != OpDelete {
		t.Fatalf("delete round trip: %+v, %v", out, err)
	}
}

func TestFingerprintRejectsOtherFormats(t *testing.T) {
	for _, b := range [][]byte{nil, {0xC3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte("{\"json\":true}")} {
		if _, err := Fingerprint(b); err == nil {
			t.Errorf("Fingerprint(%x) accepted a non single-object value", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := &Collection{Source: Namespace{"a", "b"}, Tenant: TenantRule{Constant: "t"}, Table: "b",
		Columns: []Column{{Path: Path{"x"}, Name: "x", Type: Text}}}
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Encode(nil, &Envelope{Op: OpRead, Tenant: "t", ID: `"1"`, Row: map[string]any{"x": "y"}})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any input either decodes or returns an error; it never panics.
		_, _ = s.Decode(b)
	})
}

func TestIdentifier(t *testing.T) {
	short := "orders"
	if Identifier(short) != short {
		t.Error("short identifier changed")
	}
	long1 := strings.Repeat("é", 40) + "a"
	long2 := strings.Repeat("é", 40) + "b"
	i1, i2 := Identifier(long1), Identifier(long2)
	if len(i1) > 63 || len(i2) > 63 {
		t.Fatalf("identifiers too long: %d %d", len(i1), len(i2))
	}
	if i1 == i2 {
		t.Fatal("two long names with a common prefix collide")
	}
	if Identifier(long1) != i1 {
		t.Fatal("Identifier is not deterministic")
	}
	if !strings.HasPrefix(i1, "é") || !utf8Valid(i1) {
		t.Fatalf("identifier cut inside a rune: %q", i1)
	}
	if AvroName("a b") == AvroName("a_b") || AvroName("a_b") != "a_b" || AvroName("1x")[0] != '_' {
		t.Fatalf("AvroName: %q %q %q", AvroName("a b"), AvroName("a_b"), AvroName("1x"))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestNormalizeIntoReuses: documents normalized one after another into one
// Document come out as Normalize makes them, with nothing left over from the
// one before (fields, _extra, conflicts), and its row map is reused.
func TestNormalizeIntoReuses(t *testing.T) {
	c := testCollection(t)
	docs := []bson.Raw{
		marshal(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "tenant_id", Value: "a"}, {Key: "status", Value: "paid"},
			{Key: "n", Value: int64(1) << 40}, {Key: "unmapped", Value: "x"}}),
		marshal(t, bson.D{{Key: "_id", Value: "two"}, {Key: "tenant_id", Value: "b"}, {Key: "total", Value: 2.5}}),
		marshal(t, bson.D{{Key: "_id", Value: int64(3)}, {Key: "tenant_id", Value: "c"}, {Key: "qty", Value: "not a number"}}),
	}
	var d Document
	var first map[string]any
	for i, raw := range docs {
		if err := c.NormalizeInto("shop", raw, &d); err != nil {
			t.Fatal(err)
		}
		want, err := c.Normalize("shop", raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&d, want) {
			t.Errorf("document %d: NormalizeInto gave %+v, Normalize %+v", i, d, *want)
		}
		if i == 0 {
			first = d.Row
		} else if reflect.ValueOf(d.Row).UnsafePointer() != reflect.ValueOf(first).UnsafePointer() {
			t.Errorf("document %d: a new row map, want the first one reused", i)
		}
	}
	if err := c.NormalizeInto("shop", bson.Raw{1, 2}, &d); err == nil {
		t.Error("malformed BSON: no error")
	}
}

// TestExtraKeepsPlaces: _extra, written as the fields are met, keeps every
// unmapped field in its place: the unmapped rest of a partly mapped
// sub-document under its key (nothing when all of it is mapped), a scalar
// where a sub-document was mapped, and a key that is not UTF-8 as text (as
// encoding/json would: U+FFFD for the bad bytes).
func TestExtraKeepsPlaces(t *testing.T) {
	m, err := ParseMapping("test", []byte(`
collections:
  - source: shop.orders
    tenant: {field: tenant_id}
    columns:
      - {path: customer.name, type: text}
      - {path: customer.address.city, type: text}
      - {path: seller.name, type: text}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := &m.Collections[0]
	// A key of bytes that are not UTF-8 cannot be marshalled from Go: it
	// is patched into a document with a placeholder key of the same length.
	raw := marshal(t, bson.D{
		{Key: "_id", Value: int32(1)},
		{Key: "tenant_id", Value: "acme"},
		{Key: "a", Value: int32(1)},
		{Key: "customer", Value: bson.D{
			{Key: "name", Value: "Ann"},
			{Key: "address", Value: bson.D{{Key: "city", Value: "Oslo"}, {Key: "zip", Value: "0150"}}},
			{Key: "email", Value: "ann@example.com"},
		}},
		{Key: "seller", Value: "not a document"},
		{Key: "XX", Value: true},
		{Key: "z", Value: bson.D{{Key: "name", Value: "mapped elsewhere only"}}},
	})
	i := strings.Index(string(raw), "XX\x00")
	raw[i], raw[i+1] = 0xff, 0xfe
	var d Document
	for range 2 { // the second time into the same Document: nothing left over
		if err := c.NormalizeInto("shop", raw, &d); err != nil {
			t.Fatal(err)
		}
		want := `{"a":{"$numberInt":"1"},"customer":{"address":{"zip":"0150"},"email":"ann@example.com"},"seller":"not a document","` +
			"\uFFFD" + `":true,"z":{"name":"mapped elsewhere only"}}` // a run of bad bytes is one replacement
		if got := d.Row[ColExtra]; got != want {
			t.Fatalf("_extra\n got %v\nwant %s", got, want)
		}
		if d.Row["customer_name"] != "Ann" || d.Row["customer_address_city"] != "Oslo" {
			t.Fatalf("row = %v", d.Row)
		}
	}
	// Every field of a sub-document mapped: no trace of it in _extra.
	all := marshal(t, bson.D{{Key: "_id", Value: int32(2)}, {Key: "tenant_id", Value: "acme"},
		{Key: "customer", Value: bson.D{{Key: "name", Value: "Bo"}, {Key: "address", Value: bson.D{{Key: "city", Value: "Rome"}}}}}})
	if err := c.NormalizeInto("shop", all, &d); err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Row[ColExtra]; ok {
		t.Fatalf("_extra = %v, want none", v)
	}
}

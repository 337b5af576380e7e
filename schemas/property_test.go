package schemas

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
)

// randomValue draws a BSON value of a random type (documents and arrays to a
// bounded depth).
func randomValue(rng *rand.Rand, depth int) any {
	switch k := rng.IntN(16); {
	case k == 0:
		return nil
	case k == 1:
		return int32(rng.Int32() - math.MaxInt32/2)
	case k == 2:
		return rng.Int64() - math.MaxInt64/2
	case k == 3:
		return []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.0, rng.NormFloat64() * 1e6}[rng.IntN(5)]
	case k == 4:
		d, _ := bson.ParseDecimal128(fmt.Sprintf("%d.%02d", rng.IntN(1e6)-5e5, rng.IntN(100)))
		return d
	case k == 5:
		return rng.IntN(2) == 0
	case k == 6:
		return bson.NewDateTimeFromTime(time.UnixMilli(rng.Int64N(2e14) - 1e14))
	case k == 7:
		return bson.NewObjectID()
	case k == 8:
		return bson.Binary{Subtype: []byte{0, 4, 0x80}[rng.IntN(3)], Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
	case k == 9:
		return bson.Timestamp{T: rng.Uint32(), I: rng.Uint32()}
	case k == 10 && depth < 3:
		return bson.D{{Key: "a", Value: randomValue(rng, depth+1)}, {Key: "b.c", Value: randomValue(rng, depth+1)}}
	case k == 11 && depth < 3:
		return bson.A{randomValue(rng, depth+1), randomValue(rng, depth+1)}
	case k == 12:
		return bson.Regex{Pattern: "^a", Options: "i"}
	default:
		runes := []string{"plain", "é", "😀", "nul\x00byte", "quote\"", "", strings.Repeat("x", 300)}
		return runes[rng.IntN(len(runes))]
	}
}

// randomOrder draws a document for the corpus mapping: each mapped field,
// when present, of a random type; items of random shape.
func randomOrder(rng *rand.Rand, i int) bson.D {
	d := bson.D{{Key: "_id", Value: i}, {Key: "tenant", Value: fmt.Sprintf("t%d", rng.IntN(4))}}
	for _, f := range []string{"seq", "c_text", "c_int", "c_big", "c_dbl", "c_num", "c_dec", "c_bool", "c_ts", "c_uuid", "c_bytes", "c_json", "a", "other"} {
		if rng.IntN(4) > 0 {
			d = append(d, bson.E{Key: f, Value: randomValue(rng, 0)})
		}
	}
	if rng.IntN(3) > 0 {
		var items bson.A
		for range rng.IntN(4) {
			if rng.IntN(5) == 0 {
				items = append(items, randomValue(rng, 2))
				continue
			}
			items = append(items, bson.D{{Key: "sku", Value: randomValue(rng, 2)}, {Key: "qty", Value: randomValue(rng, 2)},
				{Key: "parts", Value: bson.A{bson.D{{Key: "n", Value: randomValue(rng, 2)}}}}})
		}
		d = append(d, bson.E{Key: "items", Value: items})
	}
	return d
}

// TestRoundTripProperty: for generated documents of random shape and types,
// document → row → Avro bytes → decoded row gives the row back, every
// conflict keeps its value in an _extra, and nothing panics.
func TestRoundTripProperty(t *testing.T) {
	c := corpusCollection(t)
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 4242))
	for i := range 3000 {
		raw, err := bson.Marshal(randomOrder(rng, i))
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Normalize("corpus", raw)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		b, err := s.Encode(nil, &Envelope{Op: OpRead, Tenant: d.Tenant, ID: d.ID, Row: d.Row})
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		e, err := s.Decode(b)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if got, want := fmt.Sprint(goldenValue(e.Row)), fmt.Sprint(goldenValue(fill(s.Table, d.Row))); got != want {
			t.Fatalf("document %d does not survive Avro:\n got  %s\n want %s", i, got, want)
		}
		if len(d.Conflicts) > 0 && !strings.Contains(fmt.Sprint(d.Row), ColExtra) && !hasChildExtra(d.Row) {
			t.Fatalf("document %d has conflicts %v but no _extra kept them", i, d.Conflicts)
		}
	}
}

func hasChildExtra(row map[string]any) bool {
	for _, v := range row {
		if rows, ok := v.([]any); ok {
			for _, r := range rows {
				if m, ok := r.(map[string]any); ok && (m[ColExtra] != nil || hasChildExtra(m)) {
					return true
				}
			}
		}
	}
	return false
}

// TestHostileColumnNameIsQuoted: a field named like an SQL injection becomes
// one quoted column of that very name, and nothing else happens.
func TestHostileColumnNameIsQuoted(t *testing.T) {
	_, pool := services.Postgres(t)
	ctx := context.Background()
	name := services.Unique(t)
	hostile := `x"; DROP TABLE ` + name + `_victim; --`
	m, err := ParseMapping("m.yaml", []byte(fmt.Sprintf("collections:\n  - source: a.b\n    tenant: {constant: t}\n    table: %s\n    columns:\n      - {path: [%q], type: text}\n", name, hostile)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE "+QuoteIdent(name+"_victim")+" (x int)"); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range m.Collections[0].TargetTable().DDL() {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2",
		QuoteIdent(name), Identifier(hostile)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("column %q: found %d, %v", hostile, n, err)
	}
	var victim bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", QuoteIdent(name+"_victim")).Scan(&victim); err != nil || !victim {
		t.Fatalf("the victim table is gone (%v)", err)
	}
	if _, err := pool.Exec(ctx, "DROP TABLE "+QuoteIdent(name)+", "+QuoteIdent(name+"_victim")); err != nil {
		t.Fatal(err)
	}
}

// TestRowLevelSecurity: with row_level_security, a role that is not the
// table's owner sees only the rows of the tenant its session names.
func TestRowLevelSecurity(t *testing.T) {
	_, pool := services.Postgres(t)
	ctx := context.Background()
	name := services.Unique(t)
	m, err := ParseMapping("m.yaml", []byte(fmt.Sprintf("collections:\n  - source: a.b\n    tenant: {field: t}\n    table: %s\n    row_level_security: true\n", name)))
	if err != nil {
		t.Fatal(err)
	}
	ddl := m.Collections[0].TargetTable().DDL()
	for range 2 { // idempotent
		for _, stmt := range ddl {
			if _, err := pool.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	table, role := QuoteIdent(name), QuoteIdent(name+"_reader")
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, stmt := range []string{
		"INSERT INTO " + table + " (_tenant, _id, _version) VALUES ('acme', '1', 1), ('acme', '2', 1), ('globex', '3', 1)",
		"CREATE ROLE " + role,
		"GRANT SELECT ON " + table + " TO " + role,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	defer pool.Exec(ctx, "DROP TABLE "+table+"; DROP ROLE "+role)
	count := func(tenant string) int {
		var n int
		if _, err := conn.Exec(ctx, "SET ROLE "+role); err != nil {
			t.Fatal(err)
		}
		defer conn.Exec(ctx, "RESET ROLE")
		if _, err := conn.Exec(ctx, "SELECT set_config($1, $2, false)", TenantSetting, tenant); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("acme"); n != 2 {
		t.Errorf("acme's session sees %d rows, want 2", n)
	}
	if n := count("globex"); n != 1 {
		t.Errorf("globex's session sees %d rows, want 1", n)
	}
	if n := count(""); n != 0 {
		t.Errorf("a session with no tenant sees %d rows, want 0", n)
	}
}

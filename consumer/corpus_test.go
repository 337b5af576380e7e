package consumer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
)

// TestCorpusRoundTrip sends the golden corpus (every BSON type in a column of
// every SQL type, nested child arrays) through normalization, Avro, Kafka and
// the consumer into PostgreSQL, and reads every column of every row and child
// row back: each equals the normalized value it came from.
func TestCorpusRoundTrip(t *testing.T) {
	mapping, err := os.ReadFile("../schemas/testdata/corpus-mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := newMappedSink(t, 3, strings.Replace(string(mapping), "table: corpus", "table: {table}", 1))
	ctx := services.Context(t, 2*time.Minute)

	want := map[string]map[string][]string{} // table -> row key -> column values as compared
	var recs []*kgo.Record
	for i, raw := range readCorpus(t) {
		d, err := s.coll.Normalize(s.ns.Database, raw)
		if err != nil {
			t.Fatalf("corpus document %d: %v", i+1, err)
		}
		version := int64(100 + i) // a later document of the same key wins
		e := &schemas.Envelope{Op: schemas.OpRead, Version: version, Tenant: d.Tenant, ID: d.ID, Row: d.Row}
		v, err := s.schema.Encode(nil, e)
		if err != nil {
			t.Fatalf("corpus document %d: %v", i+1, err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: schemas.Key(d.Tenant, d.ID), Value: v})
		expectRows(want, s.schema.Table, []any{d.Tenant, d.ID, version, false}, nil, d.Row)
	}
	s.produce(ctx, recs...)
	cfg := s.config()
	cfg.StopAtEnd = true
	cfg.DLQ = false // a value PostgreSQL rejects fails the test
	if err := s.run(ctx, cfg, s.pool, nil); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	for _, tbl := range s.schema.Table.All() {
		if len(want[tbl.Name]) == 0 {
			t.Errorf("%s: the corpus gives it no rows", tbl.Name)
		}
		got := readTable(ctx, t, s, tbl)
		if len(got) != len(want[tbl.Name]) {
			t.Errorf("%s: %d rows, want %d", tbl.Name, len(got), len(want[tbl.Name]))
		}
		for key, w := range want[tbl.Name] {
			g, ok := got[key]
			if !ok {
				t.Errorf("%s: row %s missing", tbl.Name, key)
				continue
			}
			for i, c := range tbl.Columns {
				if !sameValue(c.Type, w[i], g[i]) {
					t.Errorf("%s row %s column %s (%s): got %q, want %q", tbl.Name, key, c.Name, c.Type, g[i], w[i])
				}
			}
		}
	}
}

// readCorpus returns the corpus documents (canonical Extended JSON, one per
// line) as BSON.
func readCorpus(t *testing.T) []bson.Raw {
	t.Helper()
	b, err := os.ReadFile("../schemas/testdata/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var d bson.D
		if err := bson.UnmarshalExtJSON(sc.Bytes(), true, &d); err != nil {
			t.Fatalf("corpus line %d: %v", line, err)
		}
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatalf("corpus line %d: %v", line, err)
		}
		docs = append(docs, raw)
	}
	return docs
}

// expectRows records the row a normalized (parent or child) row leaves in
// table, and its child rows, as the text readTable reads back. sys holds the
// leading system column values.
func expectRows(want map[string]map[string][]string, table schemas.Table, sys []any, idx []int, row map[string]any) {
	vals := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		var v any
		if i < len(sys) {
			v = sys[i]
		} else {
			v = row[c.Field]
		}
		vals[i] = expectedText(c.Type, v)
	}
	if want[table.Name] == nil {
		want[table.Name] = map[string][]string{}
	}
	key := vals[0] + " " + vals[1]
	if idx != nil {
		key += " " + vals[2]
	}
	want[table.Name][key] = vals
	for _, ch := range table.Children {
		elems, _ := row[ch.Field].([]any)
		for i, el := range elems {
			pos := append(append([]int(nil), idx...), i)
			m, _ := el.(map[string]any)
			expectRows(want, ch, []any{sys[0], sys[1], pos}, pos, m)
		}
	}
}

// expectedText renders a normalized value as readTable reads its column.
func expectedText(typ schemas.SQLType, v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return strconv.FormatInt(x.UnixMicro(), 10)
	case []byte:
		return hex.EncodeToString(x)
	case *big.Rat:
		return x.RatString()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []int:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.Itoa(n)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

// readTable reads every row of a table as text, by key (tenant, id and, for
// a child table, _idx).
func readTable(ctx context.Context, t *testing.T, s *sink, table schemas.Table) map[string][]string {
	t.Helper()
	exprs := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		q := schemas.QuoteIdent(c.Name)
		switch c.Type {
		case schemas.TimestampTZ:
			exprs[i] = fmt.Sprintf("trunc(extract(epoch from %s) * 1000000)::text", q)
		case schemas.Bytea:
			exprs[i] = fmt.Sprintf("encode(%s, 'hex')", q)
		default:
			exprs[i] = q + "::text"
		}
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), schemas.QuoteIdent(table.Name)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for rows.Next() {
		ptrs := make([]*string, len(exprs))
		dest := make([]any, len(exprs))
		for i := range ptrs {
			dest[i] = &ptrs[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		vals := make([]string, len(ptrs))
		for i, p := range ptrs {
			vals[i] = "NULL"
			if p != nil {
				vals[i] = *p
			}
		}
		key := vals[0] + " " + vals[1]
		if len(table.Key()) == 3 {
			key += " " + vals[2]
		}
		got[key] = vals
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// sameValue compares a column's expected and read-back text by the column
// type's meaning: numbers by value (exact for numeric), JSON by structure.
func sameValue(typ schemas.SQLType, want, got string) bool {
	if want == got {
		return true
	}
	if want == "NULL" || got == "NULL" {
		return false
	}
	switch {
	case typ == schemas.Double:
		w, err1 := strconv.ParseFloat(want, 64)
		g, err2 := strconv.ParseFloat(got, 64)
		return err1 == nil && err2 == nil && (math.Float64bits(w) == math.Float64bits(g) || (math.IsNaN(w) && math.IsNaN(g)))
	case strings.HasPrefix(string(typ), "numeric"):
		w, ok1 := new(big.Rat).SetString(want)
		g, ok2 := new(big.Rat).SetString(got)
		return ok1 && ok2 && w.Cmp(g) == 0
	case typ == schemas.JSONB:
		return reflect.DeepEqual(jsonValue(want), jsonValue(got))
	}
	return false
}

// jsonValue decodes JSON text with its numbers as exact rationals, so that
// jsonb's respelling of a number (1e2 as 100) compares equal.
func jsonValue(text string) any {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Sprintf("invalid JSON %q: %v", text, err)
	}
	var norm func(any) any
	norm = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if r, ok := new(big.Rat).SetString(string(x)); ok {
				return r.RatString()
			}
		case []any:
			for i := range x {
				x[i] = norm(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = norm(x[k])
			}
		}
		return v
	}
	return norm(v)
}

package schemas

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/internal/services"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// readCorpus returns the corpus documents (canonical Extended JSON, one per
// line) as BSON.
func readCorpus(t *testing.T) []bson.Raw {
	t.Helper()
	f, err := os.Open("testdata/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []bson.Raw
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var d bson.D
		if err := bson.UnmarshalExtJSON(sc.Bytes(), true, &d); err != nil {
			t.Fatalf("corpus line %d: %v", line, err)
		}
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatalf("corpus line %d: %v", line, err)
		}
		docs = append(docs, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// goldenValue renders a row value with its Go type, so that the golden file
// tells int32 from int64 and NaN from a string.
func goldenValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = goldenValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = goldenValue(e)
		}
		return out
	case time.Time:
		return "time:" + x.Format(time.RFC3339Nano)
	case []byte:
		return "bytes:" + base64.StdEncoding.EncodeToString(x)
	case *big.Rat:
		return "decimal:" + x.RatString()
	case string:
		return "string:" + x
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// normalizeCorpus renders every document's normalized form, one JSON line each.
func normalizeCorpus(t *testing.T, c *Collection, docs []bson.Raw) []byte {
	t.Helper()
	var out bytes.Buffer
	for i, doc := range docs {
		d, err := c.Normalize("corpus", doc)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		var conflicts []string
		for _, cf := range d.Conflicts {
			conflicts = append(conflicts, cf.String())
		}
		line, err := json.Marshal(map[string]any{"id": d.ID, "tenant": d.Tenant, "row": goldenValue(d.Row), "conflicts": conflicts})
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func corpusCollection(t *testing.T) *Collection {
	t.Helper()
	m, err := LoadMapping("testdata/corpus-mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return &m.Collections[0]
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./schemas -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs at line %d:\n got  %s\n want %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs in length: got %d lines, want %d", path, len(gl), len(wl))
	}
}

// TestGoldenCorpus normalizes the corpus (every BSON type, conflicts,
// children, odd names) and compares rows, _extra, the Avro schema and the DDL
// with the golden files. Every row also survives the Avro round trip.
func TestGoldenCorpus(t *testing.T) {
	c := corpusCollection(t)
	docs := readCorpus(t)
	if len(docs) < 60 {
		t.Fatalf("corpus has %d documents, want at least 60", len(docs))
	}
	checkGolden(t, "corpus.golden.jsonl", normalizeCorpus(t, c, docs))

	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(s.JSON), "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	checkGolden(t, "corpus.avsc", pretty.Bytes())
	checkGolden(t, "corpus.sql", []byte(strings.Join(c.TargetTable().DDL(), ";\n")+";\n"))

	for i, doc := range docs {
		d, err := c.Normalize("corpus", doc)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Encode(nil, &Envelope{Op: OpRead, Tenant: d.Tenant, ID: d.ID, Row: d.Row})
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		e, err := s.Decode(b)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		if got, want := fmt.Sprint(goldenValue(e.Row)), fmt.Sprint(goldenValue(fill(s.Table, d.Row))); got != want {
			t.Fatalf("document %d does not survive Avro:\n got  %s\n want %s", i+1, got, want)
		}
	}
}

// fill gives a row every column and child of its table (absent: nil or
// empty), as the decoder returns it.
func fill(t Table, row map[string]any) map[string]any {
	out := map[string]any{}
	for _, c := range t.DataColumns() {
		out[c.Field] = row[c.Field]
	}
	for _, ch := range t.Children {
		rows, _ := row[ch.Field].([]any)
		filled := make([]any, len(rows))
		for i, r := range rows {
			filled[i] = fill(ch, r.(map[string]any))
		}
		out[ch.Field] = filled
	}
	return out
}

// TestGoldenCorpusThroughMongo inserts the corpus into the MongoDB wire
// server, reads it back through the driver, and expects the same golden rows:
// real BSON from a real wire protocol.
func TestGoldenCorpusThroughMongo(t *testing.T) {
	_, mc := services.Mongo(t)
	ctx := services.Context(t, 2*time.Minute)
	coll := mc.Database(services.Unique(t)).Collection("docs")
	docs := readCorpus(t)
	// Documents the wire server refuses are normalized in TestGoldenCorpus
	// only.
	refused := map[string]string{
		`"uuid-4"`: "a UUID binary (subtype 4) must be 16 bytes",
		`"bin-3"`:  "mongo-java-server does not decode binary subtype 5 (MD5); MongoDB does",
		`"json-3"`: "mongo-java-server does not decode code with scope (deprecated in MongoDB)",
		`"json-7"`: "mongo-java-server does not decode symbols (deprecated in MongoDB)",
		`"json-8"`: "mongo-java-server does not decode DBPointer (deprecated in MongoDB)",
	}
	// Documents the wire server stores but changes are compared in
	// TestGoldenCorpus only.
	altered := map[string]string{
		`"bin-2"`:  "mongo-java-server stores user-defined binary subtype 0x80 as subtype 0",
		`"json-9"`: "mongo-java-server stores undefined as null",
	}
	var stored []int
	for i, d := range docs {
		id, _ := CanonicalID(d.Lookup("_id"))
		_, err := coll.InsertOne(ctx, d)
		_, expected := refused[id]
		switch {
		case err != nil && !expected:
			t.Errorf("inserting corpus document %d (%s): %v", i+1, id, err)
		case err == nil && expected:
			t.Errorf("corpus document %d (%s) was stored, though the server was known to refuse it (%s)", i+1, id, refused[id])
		case err == nil:
			stored = append(stored, i)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var back []bson.Raw
	for cur.Next(ctx) {
		back = append(back, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(stored) {
		t.Fatalf("read back %d documents, inserted %d", len(back), len(stored))
	}
	got := strings.Split(string(normalizeCorpus(t, corpusCollection(t), back)), "\n")
	want, err := os.ReadFile("testdata/corpus.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	wl := strings.Split(string(want), "\n")
	for j, i := range stored {
		id, _ := CanonicalID(docs[i].Lookup("_id"))
		if _, skip := altered[id]; skip {
			continue
		}
		if got[j] != wl[i] {
			t.Errorf("document %d differs after the wire round trip:\n got  %s\n want %s", i+1, got[j], wl[i])
		}
	}
}

// TestLargeDocument: a 15 MiB document (under MongoDB's 16 MiB limit) goes
// through the server, normalization and Avro intact.
func TestLargeDocument(t *testing.T) {
	_, mc := services.Mongo(t)
	ctx := services.Context(t, 2*time.Minute)
	coll := mc.Database(services.Unique(t)).Collection("docs")
	big := strings.Repeat("0123456789abcdef", 15<<20/32) // two fields of 7.5 MiB
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "big"}, {Key: "tenant", Value: "acme"},
		{Key: "c_text", Value: big}, {Key: "blob", Value: big}}); err != nil {
		t.Fatal(err)
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "big"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	c := corpusCollection(t)
	d, err := c.Normalize("corpus", raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Row["c_text"] != big || d.Row[ColExtra] != `{"blob":"`+big+`"}` {
		t.Fatal("the 15 MB values did not arrive whole")
	}
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(nil, &Envelope{Op: OpRead, Tenant: d.Tenant, ID: d.ID, Row: d.Row})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Decode(b)
	if err != nil || e.Row["c_text"] != big {
		t.Fatalf("15 MB row did not survive Avro: %v", err)
	}
}

// FuzzNormalize feeds arbitrary bytes as a BSON document: normalization never
// panics, and a row it returns always encodes with the table's schema and
// decodes back to itself.
func FuzzNormalize(f *testing.F) {
	for _, d := range readCorpusF(f) {
		f.Add([]byte(d))
	}
	m, err := LoadMapping("testdata/corpus-mapping.yaml")
	if err != nil {
		f.Fatal(err)
	}
	c := &m.Collections[0]
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := c.Normalize("corpus", bson.Raw(b))
		if err != nil {
			return
		}
		out, err := s.Encode(nil, &Envelope{Op: OpRead, Tenant: d.Tenant, ID: d.ID, Row: d.Row})
		if err != nil {
			t.Fatalf("normalized row does not encode: %v", err)
		}
		e, err := s.Decode(out)
		if err != nil {
			t.Fatalf("encoded row does not decode: %v", err)
		}
		if got, want := fmt.Sprint(goldenValue(e.Row)), fmt.Sprint(goldenValue(fill(s.Table, d.Row))); got != want {
			t.Fatalf("row does not survive Avro:\n got  %s\n want %s", got, want)
		}
	})
}

func readCorpusF(f *testing.F) []bson.Raw {
	t := &testing.T{}
	defer func() { recover() }()
	return readCorpus(t)
}

package snapshot

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func rv(v any) bson.RawValue {
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		panic(err)
	}
	return bson.RawValue{Type: t, Value: b}
}

// describe renders a plan as "bracket[min,max)" items for comparison.
func describe(chunks []Chunk) string {
	var parts []string
	for i, c := range chunks {
		if c.Seq != i {
			return fmt.Sprintf("chunk %d has seq %d", i, c.Seq)
		}
		lo, hi := "-", "-"
		if c.Min != nil {
			lo = c.Min.String()
		}
		if c.Max != nil {
			hi = c.Max.String()
		}
		parts = append(parts, fmt.Sprintf("%s[%s,%s)", c.Bracket, lo, hi))
	}
	return strings.Join(parts, " ")
}

func TestSplitPoints(t *testing.T) {
	oid := bson.ObjectID{1}
	tests := []struct {
		name    string
		present []string
		samples []any
		every   int
		want    string
	}{
		{"no samples, one bracket", []string{"objectId"}, nil, 3, "objectId[-,-)"},
		{"no samples, brackets in BSON order", []string{"objectId", "number", "string"}, nil, 3,
			"number[-,-) string[-,-) objectId[-,-)"},
		{"fewer samples than one chunk", []string{"number"}, []any{int32(1), int32(2)}, 3, "number[-,-)"},
		{"one bracket", []string{"number"}, []any{int32(1), int32(2), int32(3), int32(4), int32(5), int32(6), int32(7)}, 3,
			`number[-,{"$numberInt":"4"}) number[{"$numberInt":"4"},{"$numberInt":"7"}) number[{"$numberInt":"7"},-)`},
		{"numbers of different types share one bracket", []string{"number"},
			[]any{int32(1), 2.5, int64(3), int32(4), 5.5}, 2,
			`number[-,{"$numberLong":"3"}) number[{"$numberLong":"3"},{"$numberDouble":"5.5"}) number[{"$numberDouble":"5.5"},-)`},
		{"a boundary never spans brackets", []string{"number", "string", "objectId"},
			[]any{int32(1), int32(2), int32(3), "a", "b", oid}, 2,
			`number[-,{"$numberInt":"3"}) number[{"$numberInt":"3"},-) string[-,"b") string["b",-) objectId[-,-)`},
		{"a sampled bracket the probe missed is planned", nil, []any{"a", "b"}, 5, "string[-,-)"},
		{"duplicate samples give no empty chunk", []string{"string"}, []any{"a", "b", "b", "b", "b", "c"}, 2,
			`string[-,"b") string["b",-)`},
		{"composite _ids", []string{"object"},
			[]any{bson.D{{Key: "a", Value: 1}}, bson.D{{Key: "a", Value: 2}}, bson.D{{Key: "a", Value: 3}}}, 1,
			`object[-,{"a":{"$numberInt":"2"}}) object[{"a":{"$numberInt":"2"}},{"a":{"$numberInt":"3"}}) object[{"a":{"$numberInt":"3"}},-)`},
		{"null and bool brackets", []string{"null", "bool"}, []any{bson.Null{}, false, true}, 2,
			`null[-,-) bool[-,true) bool[true,-)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			present := make([]bool, len(brackets))
			for _, n := range tt.present {
				present[bracketByName(n)] = true
			}
			var samples []bson.RawValue
			for _, s := range tt.samples {
				samples = append(samples, rv(s))
			}
			got := describe(splitPoints("db.c", present, make([][]int32, len(brackets)), samples, tt.every))
			if got != tt.want {
				t.Errorf("plan\n got  %s\n want %s", got, tt.want)
			}
			again := describe(splitPoints("db.c", present, make([][]int32, len(brackets)), samples, tt.every))
			if again != got {
				t.Errorf("plan is not deterministic:\n %s\n %s", got, again)
			}
		})
	}
}

// TestBracketsCoverEveryType checks that every BSON type belongs to exactly
// one bracket, so per-bracket chunks cover any _id.
func TestBracketsCoverEveryType(t *testing.T) {
	types := []bson.Type{bson.TypeDouble, bson.TypeString, bson.TypeEmbeddedDocument, bson.TypeArray, bson.TypeBinary,
		bson.TypeUndefined, bson.TypeObjectID, bson.TypeBoolean, bson.TypeDateTime, bson.TypeNull, bson.TypeRegex,
		bson.TypeDBPointer, bson.TypeJavaScript, bson.TypeSymbol, bson.TypeCodeWithScope, bson.TypeInt32,
		bson.TypeTimestamp, bson.TypeInt64, bson.TypeDecimal128, bson.TypeMinKey, bson.TypeMaxKey}
	seen := map[bson.Type]int{}
	for _, b := range brackets {
		for _, bt := range b.types {
			seen[bt]++
		}
	}
	for _, ty := range types {
		if seen[ty] != 1 {
			t.Errorf("BSON type %s is in %d brackets, want 1", ty, seen[ty])
		}
	}
	if len(seen) != len(types) {
		t.Errorf("brackets name %d types, want %d", len(seen), len(types))
	}
}

func TestChunkFilter(t *testing.T) {
	whole := wholeCollection("db.c")[0]
	if f, err := whole.Filter(); err != nil || len(f) != 0 {
		t.Errorf("a whole-collection chunk's filter is %v, %v; want {}", f, err)
	}
	c := Chunk{Namespace: "db.c", Seq: 3, Bracket: "number", Min: &Bound{rv(int32(5))}, Max: &Bound{rv(9.5)}}
	f, err := c.Filter()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := bson.MarshalExtJSON(f, false, false)
	want := `{"_id":{"$type":[1,16,18,19],"$gte":5,"$lt":9.5}}`
	if string(got) != want {
		t.Errorf("filter %s, want %s", got, want)
	}
	mk := Chunk{Namespace: "db.c", Bracket: "minKey"}
	f, _ = mk.Filter()
	if got, _ := bson.MarshalExtJSON(f, false, false); string(got) != `{"_id":{"$type":[-1]}}` {
		t.Errorf("minKey filter %s", got)
	}
	for _, bad := range []Chunk{{Namespace: "db.c", Min: &Bound{rv(1)}}, {Namespace: "db.c", Bracket: "nope"}} {
		if _, err := bad.Filter(); err == nil {
			t.Errorf("chunk %+v: no error", bad)
		}
	}
}

// TestTaskRoundTrip checks that a task keeps its bounds' BSON types through
// its JSON form (1 and 1.0 and "1" stay apart).
func TestTaskRoundTrip(t *testing.T) {
	for _, v := range []any{int32(1), int64(1), 1.0, "1", bson.ObjectID{7}, bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: "x"}}, bson.DateTime(5)} {
		in := task{Run: 2, Chunk: Chunk{Namespace: "db.c", Seq: 1, Bracket: brackets[bracketIndex(rv(v).Type)].name, Min: &Bound{rv(v)}}}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeTask(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !equalValue(out.Chunk.Min.Value, in.Chunk.Min.Value) {
			t.Errorf("%s: bound %v came back as %v", b, in.Chunk.Min.Value, out.Chunk.Min.Value)
		}
	}
}

// TestCompareValues checks the planner's BSON order on values of every
// bracket the tests use: it must agree with MongoDB's sort.
func TestCompareValues(t *testing.T) {
	sorted := []any{bson.MinKey{}, bson.Null{}, math.NaN(), int64(-5), int32(1), 1.5, int64(2), "a", "b",
		bson.D{{Key: "a", Value: int32(1)}}, bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: "x"}}, bson.D{{Key: "a", Value: int32(2)}},
		bson.Binary{Data: []byte{9}}, bson.ObjectID{1}, bson.ObjectID{2}, false, true, bson.DateTime(1), bson.DateTime(2),
		bson.Timestamp{T: 1, I: 2}, bson.Timestamp{T: 2}, bson.MaxKey{}}
	for i := range sorted {
		for j := range sorted {
			got := compareValues(rv(sorted[i]), rv(sorted[j]))
			want := cmpInt(i, j)
			if got != want {
				t.Errorf("compare(%v, %v) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

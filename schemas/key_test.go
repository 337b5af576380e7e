package schemas

import (
	"encoding/json"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func rawValue(t *testing.T, v any) bson.RawValue {
	t.Helper()
	b, err := bson.Marshal(bson.D{{Key: "v", Value: v}})
	if err != nil {
		t.Fatal(err)
	}
	return bson.Raw(b).Lookup("v")
}

func TestCanonicalIDKeepsTypesApart(t *testing.T) {
	oid, _ := bson.ObjectIDFromHex("65f0a1b2c3d4e5f601234567")
	ids := map[string]any{
		`{"$numberInt":"1"}`:                  int32(1),
		`{"$numberLong":"1"}`:                 int64(1),
		`{"$numberDouble":"1.0"}`:             1.0,
		`"1"`:                                 "1",
		`{"$oid":"65f0a1b2c3d4e5f601234567"}`: oid,
		`{"a":{"$numberInt":"1"},"b":"x"}`:    bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: "x"}},
		`{"b":"x","a":{"$numberInt":"1"}}`:    bson.D{{Key: "b", Value: "x"}, {Key: "a", Value: int32(1)}},
		`"quote\" and \\ and \u0001 and é"`:   "quote\" and \\ and \x01 and é",
		`{"$stringBase64":"YQBi"}`:            "a\x00b", // PostgreSQL text cannot hold NUL
	}
	for want, v := range ids {
		got, err := CanonicalID(rawValue(t, v))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("CanonicalID(%#v) = %s, want %s", v, got, want)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ tenant, id string }{
		{"acme", `{"$oid":"65f0a1b2c3d4e5f601234567"}`},
		{`we"ird,[tenant]`, `"1"`},
		{"", `{"$numberInt":"1"}`},
	} {
		k := Key(tc.tenant, tc.id)
		tenant, id, err := ParseKey(k)
		if err != nil {
			t.Fatalf("ParseKey(%s): %v", k, err)
		}
		if tenant != tc.tenant || id != tc.id {
			t.Errorf("ParseKey(%s) = %q, %q; want %q, %q", k, tenant, id, tc.tenant, tc.id)
		}
	}
	if string(Key("a", `"1"`)) == string(Key("a", `{"$numberInt":"1"}`)) {
		t.Error("string and int32 ids share a key")
	}
	for _, bad := range []string{``, `[]`, `["a"]`, `[1,"x"]`, `{"a":1}`, `not json`} {
		if _, _, err := ParseKey([]byte(bad)); err == nil {
			t.Errorf("ParseKey(%q) accepted a malformed key", bad)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte(`["acme",{"$oid":"65f0a1b2c3d4e5f601234567"}]`))
	f.Add([]byte(`["",1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tenant, id, err := ParseKey(b)
		if err != nil {
			return
		}
		// A parsed key re-encodes to a key that parses to the same parts.
		t2, id2, err := ParseKey(Key(tenant, id))
		if err != nil || t2 != tenant || id2 != id {
			t.Fatalf("re-encoded key of %q does not round-trip: %q %q %v", b, t2, id2, err)
		}
	})
}

func TestVersionOrdersLikeClusterTime(t *testing.T) {
	a := Version(bson.Timestamp{T: 1700000000, I: 5})
	b := Version(bson.Timestamp{T: 1700000000, I: 6})
	c := Version(bson.Timestamp{T: 1700000001, I: 0})
	if !(a < b && b < c) {
		t.Fatalf("versions out of order: %d %d %d", a, b, c)
	}
	if ts := TimestampOf(b); ts.T != 1700000000 || ts.I != 6 {
		t.Fatalf("TimestampOf(Version(x)) = %+v", ts)
	}
}

// TestAppendKeyMatchesJSON: the fast path for plain tenants writes exactly
// what encoding/json writes, so keys (and with them partitions) stay as
// they were for every tenant.
func TestAppendKeyMatchesJSON(t *testing.T) {
	want := func(tenant, id string) string {
		b, _ := json.Marshal(tenant)
		return "[" + string(b) + "," + id + "]"
	}
	tenants := []string{"", "acme", "tenant-07", "a b", `q"uote`, `back\slash`, "<b>&amp;</b>", "tab\there",
		"nul\x00", "del\x7f", "é", "日本", "\u2028", "bad\xffutf8", "~!@#$%^*()_+{}|:?`-=[];',./"}
	for c := 0x20; c < 0x7f; c++ {
		tenants = append(tenants, "x"+string(rune(c))+"y")
	}
	for _, tenant := range tenants {
		id := `{"$oid":"65f0a1b2c3d4e5f601234567"}`
		if got := string(Key(tenant, id)); got != want(tenant, id) {
			t.Errorf("Key(%q) = %s, want %s", tenant, got, want(tenant, id))
		}
		if got := string(AppendKey([]byte("prefix"), tenant, id)); got != "prefix"+want(tenant, id) {
			t.Errorf("AppendKey(%q) = %s", tenant, got)
		}
	}
}

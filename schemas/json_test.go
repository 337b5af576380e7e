package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestAppendStringRoundTrips: every string appendString writes is one valid
// JSON string that decodes to the input, with control characters escaped,
// whether the characters to escape come first, last, in runs or not at all.
func TestAppendStringRoundTrips(t *testing.T) {
	ins := []string{"", "plain", "a note that goes to _extra", `"`, `\`, `""`, `a"b\c`, "\n", "x\r\ny", "\t\t",
		"\x00", "\x01end", "start\x1f", "\x7f", "é", "日本語", "\u2028\u2029", "emoji 🎉", strings.Repeat("long ", 100) + "\"end"}
	for c := 0; c < 0x80; c++ {
		ins = append(ins, string(rune(c)), "a"+string(rune(c))+"b", string(rune(c))+string(rune(c)))
	}
	for _, in := range ins {
		out := appendString([]byte("prefix"), in)
		if !strings.HasPrefix(string(out), "prefix") {
			t.Fatalf("appendString(%q) lost what was before it: %q", in, out)
		}
		js := out[len("prefix"):]
		var got string
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not one JSON string: %v", in, js, err)
		}
		if got != in {
			t.Fatalf("appendString(%q) = %s, decodes to %q", in, js, got)
		}
		for _, b := range js {
			if b < 0x20 {
				t.Fatalf("appendString(%q) = %q: control byte %#x left unescaped", in, js, b)
			}
		}
	}
}

// TestCanonicalObjectID: the _id fast path for ObjectIds writes what
// appendJSON writes.
func TestCanonicalObjectID(t *testing.T) {
	for range 100 {
		oid := bson.NewObjectID()
		v := bson.RawValue{Type: bson.TypeObjectID, Value: oid[:]}
		want, err := appendJSON(nil, v, true)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := CanonicalID(v); err != nil || got != string(want) {
			t.Fatalf("CanonicalID = %q, %v; want %q", got, err, want)
		}
	}
}

// TestMalformedStringValue: a BSON string whose length or terminator does
// not hold is an error naming its type, never a panic or a read past it.
func TestMalformedStringValue(t *testing.T) {
	good := []byte{3, 0, 0, 0, 'h', 'i', 0}
	if b, err := appendJSON(nil, bson.RawValue{Type: bson.TypeString, Value: good}, true); err != nil || string(b) != `"hi"` {
		t.Fatalf("good string: %q, %v", b, err)
	}
	for name, v := range map[string][]byte{
		"empty":            {},
		"short":            {1, 0, 0},
		"zero length":      {0, 0, 0, 0, 0},
		"negative length":  {0xff, 0xff, 0xff, 0xff, 0},
		"length past end":  {9, 0, 0, 0, 'h', 'i', 0},
		"no terminating 0": {3, 0, 0, 0, 'h', 'i', 'x'},
	} {
		if _, err := appendJSON(nil, bson.RawValue{Type: bson.TypeString, Value: v}, true); !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), "string") {
			t.Errorf("%s: err = %v, want a malformed string error", name, err)
		}
	}
	// Not UTF-8, or with a NUL inside: base64, bytes kept.
	odd := []byte{4, 0, 0, 0, 'a', 0, 0xff, 0}
	if b, _ := appendJSON(nil, bson.RawValue{Type: bson.TypeString, Value: odd}, true); string(b) != `{"$stringBase64":"YQD/"}` {
		t.Errorf("odd string: %s", b)
	}
}

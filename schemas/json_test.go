package schemas

import (
	"encoding/json"
	"strings"
	"testing"
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

package schemas

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// CanonicalID returns the canonical Extended JSON of an _id value. It keeps the
// BSON type: 1, "1", 1.0 and ObjectId values all give different strings, and a
// composite _id document keeps its field order.
func CanonicalID(id bson.RawValue) (string, error) {
	if oid, ok := id.ObjectIDOK(); ok { // nearly every _id: built in place, one allocation
		b := make([]byte, 0, len(`{"$oid":""}`)+2*len(oid))
		b = hex.AppendEncode(append(b, `{"$oid":"`...), oid[:])
		return string(append(b, `"}`...)), nil
	}
	b, err := appendJSON(nil, id, true)
	if err != nil {
		return "", fmt.Errorf("encoding _id: %w", err)
	}
	return string(b), nil
}

// canonicalJSON renders one BSON value as canonical Extended JSON.
func canonicalJSON(v bson.RawValue) ([]byte, error) {
	return appendJSON(nil, v, true)
}

// Key returns the Kafka record key of a document: the JSON array
// [tenant, canonical _id], e.g. ["acme",{"$oid":"65f0..."}]. It is readable by
// any client, unambiguous (JSON escaping), and type-preserving, so records of
// one document always share a key and two documents never do.
func Key(tenant, canonicalID string) []byte {
	return AppendKey(make([]byte, 0, len(tenant)+len(canonicalID)+5), tenant, canonicalID)
}

// AppendKey appends the record key of Key to b.
func AppendKey(b []byte, tenant, canonicalID string) []byte {
	b = append(b, '[')
	if plainJSON(tenant) {
		b = append(append(append(b, '"'), tenant...), '"')
	} else {
		t, _ := json.Marshal(tenant) // a Go string always marshals
		b = append(b, t...)
	}
	b = append(b, ',')
	b = append(b, canonicalID...)
	return append(b, ']')
}

// plainJSON reports whether encoding/json writes s as itself in quotes:
// printable ASCII other than the characters it escapes (", \, and <, >, &
// for HTML safety). Keys must stay byte-identical to those written before,
// so anything else goes through encoding/json.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// ParseKey splits a record key into tenant and canonical _id.
func ParseKey(key []byte) (tenant, canonicalID string, err error) {
	var parts []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(key))
	dec.UseNumber()
	if err := dec.Decode(&parts); err != nil || len(parts) != 2 {
		return "", "", fmt.Errorf("%w: key %q is not [tenant, id]", ErrNotDocshiftRecord, key)
	}
	if err := json.Unmarshal(parts[0], &tenant); err != nil {
		return "", "", fmt.Errorf("%w: key %q has no string tenant", ErrNotDocshiftRecord, key)
	}
	return tenant, string(parts[1]), nil
}

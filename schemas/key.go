package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// CanonicalID returns the canonical Extended JSON of an _id value. It keeps the
// BSON type: 1, "1", 1.0 and ObjectId values all give different strings, and a
// composite _id document keeps its field order.
func CanonicalID(id bson.RawValue) (string, error) {
	b, err := canonicalJSON(id)
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
	t, _ := json.Marshal(tenant) // a Go string always marshals
	b := make([]byte, 0, len(t)+len(canonicalID)+3)
	b = append(b, '[')
	b = append(b, t...)
	b = append(b, ',')
	b = append(b, canonicalID...)
	return append(b, ']')
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

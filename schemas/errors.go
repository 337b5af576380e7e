package schemas

import (
	"errors"
	"fmt"
)

// ErrNoTenant is returned when a document does not carry the field its
// collection's tenant rule names.
var ErrNoTenant = errors.New("document has no tenant")

// ErrNoID is returned for a document without an _id field.
var ErrNoID = errors.New("document has no _id")

// ErrUnknownSchema is returned when a record's schema fingerprint is not in the
// registry even after a refresh.
var ErrUnknownSchema = errors.New("unknown schema fingerprint")

// ErrNotDocshiftRecord is returned when a Kafka record value is not an Avro
// single-object encoded docshift envelope.
var ErrNotDocshiftRecord = errors.New("not a docshift record")

// MappingError names the mapping file, the collection entry and the field that
// is wrong.
type MappingError struct {
	File  string // path of the mapping file, empty for an in-memory mapping
	Line  int    // 1-based line of the offending node, 0 if unknown
	Field string // e.g. "collections[0].columns[2].type"
	Err   error
}

func (e *MappingError) Error() string {
	loc := e.File
	if loc == "" {
		loc = "mapping"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %v", loc, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *MappingError) Unwrap() error { return e.Err }

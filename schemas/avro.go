package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/linkedin/goavro/v2"
)

// Op is the kind of change a record carries.
type Op string

// The operations of the envelope, as in Debezium: create, update, delete, and
// read (a snapshot row).
const (
	OpCreate Op = "c"
	OpUpdate Op = "u"
	OpDelete Op = "d"
	OpRead   Op = "r"
)

// Envelope is the value of every docshift record on Kafka.
type Envelope struct {
	Op      Op
	Version int64 // see Version: ordering of changes per key
	Source  Source
	Tenant  string
	ID      string         // canonical Extended JSON of the document's _id
	Row     map[string]any // Avro field name -> value; nil for a delete
}

// Source says where a record came from.
type Source struct {
	Database    string
	Collection  string
	ClusterTime int64 // the MongoDB cluster time of the change or read, as a Version
	Snapshot    bool
}

// Schema is the Avro schema of one collection's envelope together with the
// target table it describes.
type Schema struct {
	Table       Table
	Source      Namespace
	Fingerprint uint64 // CRC-64-AVRO (Rabin) of the canonical form
	JSON        string
	codec       *goavro.Codec
	rowName     string
}

// Avro attribute names docshift adds to its schemas; Avro readers ignore them.
const (
	attrTable  = "docshift.table"
	attrColumn = "docshift.column"
	attrType   = "docshift.type"
)

type avroField struct {
	Name    string `json:"name"`
	Type    any    `json:"type"`
	Default any    `json:"default,omitempty"`
	Column  string `json:"docshift.column,omitempty"`
	SQLType string `json:"docshift.type,omitempty"`
	// nullDefault marks a field whose default is null (omitempty cannot say so).
	nullDefault bool
}

func (f avroField) MarshalJSON() ([]byte, error) {
	type plain avroField
	b, err := json.Marshal(plain(f))
	if err != nil || !f.nullDefault {
		return b, err
	}
	// Insert "default":null after the type.
	return append(b[:len(b)-1], []byte(`,"default":null}`)...), nil
}

type avroRecord struct {
	Type      string      `json:"type"`
	Name      string      `json:"name"`
	Namespace string      `json:"namespace,omitempty"`
	Table     string      `json:"docshift.table,omitempty"`
	Fields    []avroField `json:"fields"`
}

func avroType(t SQLType) any {
	switch t.canonical() {
	case BigInt:
		return "long"
	case Integer:
		return "int"
	case Double:
		return "double"
	case Boolean:
		return "boolean"
	case TimestampTZ:
		return map[string]string{"type": "long", "logicalType": "timestamp-micros"}
	default: // text, jsonb
		return "string"
	}
}

// unionBranch is the name goavro gives the non-null branch of a column's union.
func unionBranch(t SQLType) string {
	switch t.canonical() {
	case BigInt:
		return "long"
	case Integer:
		return "int"
	case Double:
		return "double"
	case Boolean:
		return "boolean"
	case TimestampTZ:
		return "long.timestamp-micros"
	default:
		return "string"
	}
}

// NewSchema builds the envelope schema of a table fed by the namespace ns.
func NewSchema(ns Namespace, t Table) (*Schema, error) {
	avroNS := "docshift." + AvroName(ns.Database) + "." + AvroName(ns.Collection)
	row := avroRecord{Type: "record", Name: "Row"}
	for _, c := range t.DataColumns() {
		row.Fields = append(row.Fields, avroField{
			Name: c.Field, Type: []any{"null", avroType(c.Type)}, nullDefault: true,
			Column: c.Name, SQLType: string(c.Type.canonical()),
		})
	}
	env := avroRecord{
		Type: "record", Name: "Envelope", Namespace: avroNS, Table: t.Name,
		Fields: []avroField{
			{Name: "op", Type: map[string]any{"type": "enum", "name": "Op", "symbols": []string{"c", "u", "d", "r"}}},
			{Name: "version", Type: "long"},
			{Name: "source", Type: avroRecord{Type: "record", Name: "Source", Fields: []avroField{
				{Name: "db", Type: "string"},
				{Name: "collection", Type: "string"},
				{Name: "cluster_time", Type: "long"},
				{Name: "snapshot", Type: "boolean"},
			}}},
			{Name: "tenant", Type: "string"},
			{Name: "id", Type: "string"},
			{Name: "row", Type: []any{"null", row}, nullDefault: true},
		},
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("building schema of %s: %w", ns, err)
	}
	return ParseSchema(string(b))
}

// ParseSchema reads an envelope schema written by NewSchema (for example from
// the schema topic) and recovers the table it describes.
func ParseSchema(schemaJSON string) (*Schema, error) {
	codec, err := goavro.NewCodec(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("parsing Avro schema: %w", err)
	}
	var env struct {
		Namespace string `json:"namespace"`
		Table     string `json:"docshift.table"`
		Fields    []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schemaJSON), &env); err != nil {
		return nil, fmt.Errorf("parsing Avro schema: %w", err)
	}
	if env.Table == "" {
		return nil, errors.New("parsing Avro schema: no docshift.table attribute: not a docshift envelope")
	}
	s := &Schema{JSON: schemaJSON, Fingerprint: codec.Rabin, codec: codec,
		rowName: env.Namespace + ".Row", Table: Table{Name: env.Table}}
	s.Table.Columns = append(s.Table.Columns, systemColumns[:4]...)
	for _, f := range env.Fields {
		if f.Name != "row" {
			continue
		}
		var union []json.RawMessage
		if err := json.Unmarshal(f.Type, &union); err != nil || len(union) != 2 {
			return nil, errors.New("parsing Avro schema: row is not a [null, record] union")
		}
		var row struct {
			Fields []struct {
				Name    string `json:"name"`
				Column  string `json:"docshift.column"`
				SQLType string `json:"docshift.type"`
			} `json:"fields"`
		}
		if err := json.Unmarshal(union[1], &row); err != nil {
			return nil, fmt.Errorf("parsing Avro schema row: %w", err)
		}
		for _, rf := range row.Fields {
			t := SQLType(rf.SQLType)
			if !t.valid() || rf.Column == "" {
				return nil, fmt.Errorf("parsing Avro schema: field %q has no valid docshift.column/docshift.type", rf.Name)
			}
			s.Table.Columns = append(s.Table.Columns, TableColumn{Name: rf.Column, Field: rf.Name, Type: t.canonical()})
		}
	}
	return s, nil
}

// Encode returns the Avro single-object encoding of e (magic C3 01, the
// schema's 8-byte fingerprint, then the binary datum), appended to buf.
func (s *Schema) Encode(buf []byte, e *Envelope) ([]byte, error) {
	native := map[string]any{
		"op":      string(e.Op),
		"version": e.Version,
		"source": map[string]any{
			"db": e.Source.Database, "collection": e.Source.Collection,
			"cluster_time": e.Source.ClusterTime, "snapshot": e.Source.Snapshot,
		},
		"tenant": e.Tenant,
		"id":     e.ID,
		"row":    nil,
	}
	if e.Row != nil {
		row := make(map[string]any, len(e.Row))
		for _, c := range s.Table.DataColumns() {
			v, ok := e.Row[c.Field]
			if !ok || v == nil {
				row[c.Field] = nil
				continue
			}
			row[c.Field] = goavro.Union(unionBranch(c.Type), v)
		}
		native["row"] = goavro.Union(s.rowName, row)
	}
	out, err := s.codec.SingleFromNative(buf, native)
	if err != nil {
		return buf, fmt.Errorf("encoding %s record %s: %w", s.Table.Name, e.ID, err)
	}
	return out, nil
}

// Decode reads a single-object encoded envelope written with this schema.
func (s *Schema) Decode(b []byte) (*Envelope, error) {
	native, _, err := s.codec.NativeFromSingle(b)
	if err != nil {
		return nil, fmt.Errorf("decoding %s record: %w", s.Table.Name, err)
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding %s record: not a record", s.Table.Name)
	}
	e := &Envelope{}
	op, _ := m["op"].(string)
	e.Op = Op(op)
	e.Version, _ = m["version"].(int64)
	e.Tenant, _ = m["tenant"].(string)
	e.ID, _ = m["id"].(string)
	if src, ok := m["source"].(map[string]any); ok {
		e.Source.Database, _ = src["db"].(string)
		e.Source.Collection, _ = src["collection"].(string)
		e.Source.ClusterTime, _ = src["cluster_time"].(int64)
		e.Source.Snapshot, _ = src["snapshot"].(bool)
	}
	if u, ok := m["row"].(map[string]any); ok {
		row, _ := u[s.rowName].(map[string]any)
		e.Row = make(map[string]any, len(row))
		for k, v := range row {
			if branch, ok := v.(map[string]any); ok {
				for _, inner := range branch {
					v = inner
				}
			}
			if t, ok := v.(time.Time); ok {
				v = t.UTC()
			}
			e.Row[k] = v
		}
	}
	return e, nil
}

// Fingerprint returns the schema fingerprint of a single-object encoded value.
func Fingerprint(b []byte) (uint64, error) {
	if len(b) < 10 || b[0] != 0xC3 || b[1] != 0x01 {
		return 0, ErrNotDocshiftRecord
	}
	var fp uint64
	for i := 9; i >= 2; i-- { // little-endian
		fp = fp<<8 | uint64(b[i])
	}
	return fp, nil
}

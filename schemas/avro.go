package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
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
	rows        *rowEncoder // the row record, compiled for Encode
	rowName     string
	fullName    string // of the envelope record
	registryID  int    // schema registry id; 0: single-object encoding
}

// docshift adds attributes to its schemas, which Avro readers ignore:
// docshift.table (the envelope: the root table; an array field: a child
// table), docshift.rls (row-level security), docshift.column and
// docshift.type (a column's SQL name and type), docshift.path (a child
// table's array path). They let a consumer rebuild the tables from a schema.

type avroField struct {
	Name    string   `json:"name"`
	Type    any      `json:"type"`
	Default any      `json:"default,omitempty"`
	Column  string   `json:"docshift.column,omitempty"`
	SQLType string   `json:"docshift.type,omitempty"`
	Table   string   `json:"docshift.table,omitempty"`
	Path    []string `json:"docshift.path,omitempty"`
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
	RLS       bool        `json:"docshift.rls,omitempty"`
	Fields    []avroField `json:"fields"`
}

// avroType is the Avro form of a column type; docs/types.md lists them.
func avroType(t SQLType) any {
	if p, s, ok := t.decimal(); ok {
		return map[string]any{"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}
	}
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
	case UUID:
		return map[string]string{"type": "string", "logicalType": "uuid"}
	case Bytea:
		return "bytes"
	default: // text, numeric (exact decimal text), jsonb
		return "string"
	}
}

// unionBranch is the name goavro gives the non-null branch of a column's union.
func unionBranch(t SQLType) string {
	if _, _, ok := t.decimal(); ok {
		return "bytes.decimal"
	}
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
	case Bytea:
		return "bytes"
	default:
		return "string"
	}
}

// rowRecord is the Avro record of a table's rows: its data columns, then one
// array field per child table.
func rowRecord(name string, t Table) avroRecord {
	rec := avroRecord{Type: "record", Name: name}
	for _, c := range t.DataColumns() {
		rec.Fields = append(rec.Fields, avroField{
			Name: c.Field, Type: []any{"null", avroType(c.Type)}, nullDefault: true,
			Column: c.Name, SQLType: string(c.Type.canonical()),
		})
	}
	for _, ch := range t.Children {
		rec.Fields = append(rec.Fields, avroField{
			Name: ch.Field, Type: map[string]any{"type": "array", "items": rowRecord(name+"_"+ch.Field, ch)},
			Default: []any{}, Table: ch.Name, Path: ch.Path,
		})
	}
	return rec
}

// NewSchema builds the envelope schema of a table fed by the namespace ns.
func NewSchema(ns Namespace, t Table) (*Schema, error) {
	avroNS := "docshift." + AvroName(ns.Database) + "." + AvroName(ns.Collection)
	env := avroRecord{
		Type: "record", Name: "Envelope", Namespace: avroNS, Table: t.Name, RLS: t.RLS,
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
			{Name: "row", Type: []any{"null", rowRecord("Row", t)}, nullDefault: true},
		},
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("building schema of %s: %w", ns, err)
	}
	return ParseSchema(string(b))
}

// jsonRecord is a row record as read back from schema JSON.
type jsonRecord struct {
	Name   string `json:"name"`
	Fields []struct {
		Name    string          `json:"name"`
		Type    json.RawMessage `json:"type"`
		Column  string          `json:"docshift.column"`
		SQLType string          `json:"docshift.type"`
		Table   string          `json:"docshift.table"`
		Path    []string        `json:"docshift.path"`
	} `json:"fields"`
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
		RLS       bool   `json:"docshift.rls"`
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
	s := &Schema{JSON: schemaJSON, Fingerprint: codec.Rabin, codec: codec, rowName: env.Namespace + ".Row",
		fullName: env.Namespace + ".Envelope"}
	for _, f := range env.Fields {
		if f.Name != "row" {
			continue
		}
		var union []json.RawMessage
		if err := json.Unmarshal(f.Type, &union); err != nil || len(union) != 2 {
			return nil, errors.New("parsing Avro schema: row is not a [null, record] union")
		}
		t, err := parseTable(env.Table, union[1], false)
		if err != nil {
			return nil, err
		}
		t.RLS = env.RLS
		s.Table = t
	}
	s.rows = newRowEncoder(s.Table)
	return s, nil
}

func parseTable(name string, recordJSON json.RawMessage, child bool) (Table, error) {
	var rec jsonRecord
	if err := json.Unmarshal(recordJSON, &rec); err != nil {
		return Table{}, fmt.Errorf("parsing Avro schema of table %s: %w", name, err)
	}
	t := Table{Name: name}
	if child {
		t.Columns = append(t.Columns, childSystemColumns[:3]...)
	} else {
		t.Columns = append(t.Columns, systemColumns[:4]...)
	}
	for _, rf := range rec.Fields {
		if rf.Table != "" { // a child table's array
			var arr struct {
				Items json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(rf.Type, &arr); err != nil {
				return Table{}, fmt.Errorf("parsing Avro schema: child %q is not an array of records", rf.Name)
			}
			ct, err := parseTable(rf.Table, arr.Items, true)
			if err != nil {
				return Table{}, err
			}
			ct.Field, ct.Path = rf.Name, rf.Path
			t.Children = append(t.Children, ct)
			continue
		}
		ty := SQLType(rf.SQLType)
		if !ty.valid() || rf.Column == "" {
			return Table{}, fmt.Errorf("parsing Avro schema: field %q has no valid docshift.column/docshift.type", rf.Name)
		}
		t.Columns = append(t.Columns, TableColumn{Name: rf.Column, Field: rf.Name, Type: ty.canonical()})
	}
	return t, nil
}

// Encode appends the encoding of e to buf: Avro single-object encoding (C3
// 01, the schema's 8-byte fingerprint, the datum), or, once the schema is
// registered with a schema registry, the Confluent wire format (0x00, the
// 4-byte big-endian schema id, the datum).
//
// The datum is written by the schema's compiled row encoder (rowEncoder);
// a value of a Go type it does not know (a hand-built row) goes through the
// goavro codec instead, which writes the same bytes or says what is wrong.
func (s *Schema) Encode(buf []byte, e *Envelope) ([]byte, error) {
	start := len(buf)
	if s.registryID != 0 {
		id := uint32(s.registryID)
		buf = append(buf, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	} else {
		buf = append(buf, 0xC3, 0x01)
		buf = binary.LittleEndian.AppendUint64(buf, s.Fingerprint)
	}
	if out, ok := s.appendEnvelope(buf, e); ok {
		return out, nil
	}
	return s.encodeNative(buf[:start], e)
}

// encodeNative encodes e through the goavro codec.
func (s *Schema) encodeNative(buf []byte, e *Envelope) ([]byte, error) {
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
		native["row"] = goavro.Union(s.rowName, nativeRow(s.Table, e.Row))
	}
	var out []byte
	var err error
	if s.registryID != 0 {
		id := uint32(s.registryID)
		buf = append(buf, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
		out, err = s.codec.BinaryFromNative(buf, native)
	} else {
		out, err = s.codec.SingleFromNative(buf, native)
	}
	if err != nil {
		return buf, fmt.Errorf("encoding %s record %s: %w", s.Table.Name, e.ID, err)
	}
	return out, nil
}

// opIndex is the position of an Op in the envelope's Op enum.
func opIndex(op Op) (int64, bool) {
	switch op {
	case OpCreate:
		return 0, true
	case OpUpdate:
		return 1, true
	case OpDelete:
		return 2, true
	case OpRead:
		return 3, true
	}
	return 0, false
}

// appendEnvelope appends the Avro binary datum of e; it reports false when
// a value is not of the Go type the row encoder writes (buf is then to be
// discarded).
func (s *Schema) appendEnvelope(buf []byte, e *Envelope) ([]byte, bool) {
	op, ok := opIndex(e.Op)
	if !ok || (e.Row != nil && s.rows == nil) {
		return buf, false
	}
	buf = avroLong(buf, op)
	buf = avroLong(buf, e.Version)
	buf = avroString(buf, e.Source.Database)
	buf = avroString(buf, e.Source.Collection)
	buf = avroLong(buf, e.Source.ClusterTime)
	buf = avroBool(buf, e.Source.Snapshot)
	buf = avroString(buf, e.Tenant)
	buf = avroString(buf, e.ID)
	if e.Row == nil {
		return append(buf, 0), true // the union's null branch
	}
	return s.rows.append(append(buf, 2), e.Row) // branch 1: the row record
}

// rowEncoder writes a table's row record: a [null, T] union per data
// column, then an array of child rows per child table.
type rowEncoder struct {
	columns  []columnEncoder
	children []childEncoder
}

type columnEncoder struct {
	field string
	kind  avroKind
	scale int // kindDecimal: the column's scale
}

type childEncoder struct {
	field string
	rows  *rowEncoder
}

// avroKind is the non-null branch of a column's union, as the row encoder
// writes it.
type avroKind uint8

const (
	kindString avroKind = iota
	kindLong
	kindInt
	kindDouble
	kindBoolean
	kindTimestampMicros
	kindBytes
	kindDecimal // bytes: two's-complement big-endian unscaled value
)

func kindOf(t SQLType) avroKind {
	switch unionBranch(t) {
	case "long":
		return kindLong
	case "int":
		return kindInt
	case "double":
		return kindDouble
	case "boolean":
		return kindBoolean
	case "long.timestamp-micros":
		return kindTimestampMicros
	case "bytes":
		return kindBytes
	case "bytes.decimal":
		return kindDecimal
	}
	return kindString
}

func newRowEncoder(t Table) *rowEncoder {
	r := &rowEncoder{}
	for _, c := range t.DataColumns() {
		_, scale, _ := c.Type.decimal()
		r.columns = append(r.columns, columnEncoder{field: c.Field, kind: kindOf(c.Type), scale: scale})
	}
	for _, ch := range t.Children {
		r.children = append(r.children, childEncoder{field: ch.Field, rows: newRowEncoder(ch)})
	}
	return r
}

// decimalBytes is the Avro decimal form of r at scale: the unscaled value
// r·10^scale (which must be an integer) in two's-complement big-endian, in
// as few bytes as hold its sign.
func decimalBytes(r *big.Rat, scale int) ([]byte, bool) {
	n := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	q, rem := new(big.Int).QuoRem(n, r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		return nil, false
	}
	if q.Sign() >= 0 {
		b := q.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b, true
	}
	// Negative: 2^(8k) + q in k bytes, k the fewest that keep the sign bit.
	k := (new(big.Int).Sub(new(big.Int).Neg(q), big.NewInt(1)).BitLen() + 8) / 8
	mod := new(big.Int).Lsh(big.NewInt(1), uint(8*k))
	b := new(big.Int).Add(mod, q).Bytes()
	for len(b) < k {
		b = append([]byte{0xff}, b...)
	}
	return b, true
}

// append writes row as nativeRow lays it out for goavro: a missing or nil
// value is null, a missing child array is empty.
func (r *rowEncoder) append(buf []byte, row map[string]any) ([]byte, bool) {
	for _, c := range r.columns {
		v := row[c.field]
		if v == nil {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, 2)
		switch c.kind {
		case kindString:
			s, ok := v.(string)
			if !ok {
				return buf, false
			}
			buf = avroString(buf, s)
		case kindLong:
			n, ok := v.(int64)
			if !ok {
				return buf, false
			}
			buf = avroLong(buf, n)
		case kindInt:
			n, ok := v.(int32)
			if !ok {
				return buf, false
			}
			buf = avroLong(buf, int64(n))
		case kindDouble:
			f, ok := v.(float64)
			if !ok {
				return buf, false
			}
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(f))
		case kindBoolean:
			b, ok := v.(bool)
			if !ok {
				return buf, false
			}
			buf = avroBool(buf, b)
		case kindTimestampMicros:
			t, ok := v.(time.Time)
			if !ok {
				return buf, false
			}
			buf = avroLong(buf, t.Unix()*1e6+int64(t.Nanosecond()/1e3))
		case kindBytes:
			b, ok := v.([]byte)
			if !ok {
				return buf, false
			}
			buf = avroLong(buf, int64(len(b)))
			buf = append(buf, b...)
		case kindDecimal:
			r, ok := v.(*big.Rat)
			if !ok {
				return buf, false
			}
			b, ok := decimalBytes(r, c.scale)
			if !ok {
				return buf, false
			}
			buf = avroLong(buf, int64(len(b)))
			buf = append(buf, b...)
		default:
			return buf, false
		}
	}
	for _, ch := range r.children {
		rows, _ := row[ch.field].([]any)
		if len(rows) > 0 {
			buf = avroLong(buf, int64(len(rows)))
			for _, cr := range rows {
				m, _ := cr.(map[string]any)
				var ok bool
				if buf, ok = ch.rows.append(buf, m); !ok {
					return buf, false
				}
			}
		}
		buf = append(buf, 0) // end of the array
	}
	return buf, true
}

// avroLong writes an Avro int or long: zig-zag, then a varint.
func avroLong(buf []byte, n int64) []byte {
	return binary.AppendUvarint(buf, uint64(n<<1)^uint64(n>>63))
}

func avroString(buf []byte, s string) []byte {
	return append(avroLong(buf, int64(len(s))), s...)
}

func avroBool(buf []byte, b bool) []byte {
	if b {
		return append(buf, 1)
	}
	return append(buf, 0)
}

// nativeRow lays out a row for the codec: unions for columns, arrays of child
// rows for child tables.
func nativeRow(t Table, in map[string]any) map[string]any {
	row := make(map[string]any, len(t.Columns)+len(t.Children))
	for _, c := range t.DataColumns() {
		v, ok := in[c.Field]
		if !ok || v == nil {
			row[c.Field] = nil
			continue
		}
		row[c.Field] = goavro.Union(unionBranch(c.Type), v)
	}
	for _, ch := range t.Children {
		rows, _ := in[ch.Field].([]any)
		out := make([]any, len(rows))
		for i, r := range rows {
			m, _ := r.(map[string]any)
			out[i] = nativeRow(ch, m)
		}
		row[ch.Field] = out
	}
	return row
}

// plainRow undoes nativeRow on a decoded row.
func plainRow(t Table, in map[string]any) map[string]any {
	row := make(map[string]any, len(in))
	for _, c := range t.DataColumns() {
		v := in[c.Field]
		if branch, ok := v.(map[string]any); ok {
			for _, inner := range branch {
				v = inner
			}
		}
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC()
		}
		row[c.Field] = v
	}
	for _, ch := range t.Children {
		rows, _ := in[ch.Field].([]any)
		out := make([]any, len(rows))
		for i, r := range rows {
			m, _ := r.(map[string]any)
			out[i] = plainRow(ch, m)
		}
		row[ch.Field] = out
	}
	return row
}

// Decode reads a single-object encoded envelope written with this schema.
func (s *Schema) Decode(b []byte) (*Envelope, error) {
	var native any
	var err error
	if _, ok := confluentID(b); ok {
		native, _, err = s.codec.NativeFromBinary(b[5:])
	} else {
		native, _, err = s.codec.NativeFromSingle(b)
	}
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
		e.Row = plainRow(s.Table, row)
	}
	return e, nil
}

// confluentID returns the schema id of a Confluent wire format value.
func confluentID(b []byte) (int, bool) {
	if len(b) < 5 || b[0] != 0 {
		return 0, false
	}
	return int(uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])), true
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

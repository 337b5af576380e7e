package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// SQLType is a column type of the target database.
type SQLType string

// The column types a mapping may name.
const (
	Text        SQLType = "text"
	BigInt      SQLType = "bigint"
	Integer     SQLType = "integer"
	Double      SQLType = "double precision"
	Boolean     SQLType = "boolean"
	TimestampTZ SQLType = "timestamptz"
	JSONB       SQLType = "jsonb"
)

var typeAliases = map[string]SQLType{
	"text": Text, "string": Text,
	"bigint": BigInt, "int8": BigInt, "long": BigInt,
	"integer": Integer, "int": Integer, "int4": Integer,
	"double precision": Double, "double": Double, "float8": Double,
	"boolean": Boolean, "bool": Boolean,
	"timestamptz": TimestampTZ, "timestamp": TimestampTZ, "date": TimestampTZ,
	"jsonb": JSONB, "json": JSONB,
}

func (t SQLType) valid() bool {
	_, ok := typeAliases[string(t)]
	return ok
}

// canonical returns the type's canonical spelling (aliases resolved).
func (t SQLType) canonical() SQLType { return typeAliases[string(t)] }

func knownTypes() string {
	return "text, bigint, integer, double precision, boolean, timestamptz, jsonb"
}

// UnmarshalText accepts any alias ("double", "int8", ...) and stores the
// canonical spelling; an unknown type is kept as written for Validate to name.
func (t *SQLType) UnmarshalText(b []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	if c, ok := typeAliases[s]; ok {
		*t = c
		return nil
	}
	*t = SQLType(string(b))
	return nil
}

// Table describes a target table: its name and its columns in order, system
// columns first. A consumer rebuilds it from a record's Avro schema, so it
// needs no mapping file.
type Table struct {
	Name    string
	Columns []TableColumn
}

// TableColumn is one column of a target table.
type TableColumn struct {
	Name  string  // SQL identifier (unquoted)
	Field string  // Avro field name in the row record
	Type  SQLType // SQL type
}

// Names of the system columns every docshift table has.
const (
	ColTenant  = "_tenant"
	ColID      = "_id"
	ColVersion = "_version"
	ColDeleted = "_deleted"
	ColExtra   = "_extra"
)

// systemColumns are carried by the envelope (tenant, id, version, deleted) or
// by the row (_extra), never by a mapped column.
var systemColumns = []TableColumn{
	{Name: ColTenant, Type: Text},
	{Name: ColID, Type: Text},
	{Name: ColVersion, Type: BigInt},
	{Name: ColDeleted, Type: Boolean},
	{Name: ColExtra, Field: ColExtra, Type: JSONB},
}

// Table returns the target table of the collection.
func (c *Collection) TargetTable() Table {
	t := Table{Name: c.Table}
	t.Columns = append(t.Columns, systemColumns...)
	for _, col := range c.Columns {
		t.Columns = append(t.Columns, TableColumn{Name: col.Name, Field: AvroName(col.Name), Type: col.Type})
	}
	return t
}

// DataColumns returns the columns carried in the row record (_extra and the
// mapped columns), in schema order.
func (t Table) DataColumns() []TableColumn {
	var out []TableColumn
	for _, c := range t.Columns {
		if c.Field != "" {
			out = append(out, c)
		}
	}
	return out
}

// maxIdentifier is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1).
const maxIdentifier = 63

// Identifier returns name as a PostgreSQL identifier: unchanged when it fits in
// 63 bytes, otherwise cut on a rune boundary and suffixed with a hash of the
// full name, so that two long names that share a prefix stay distinct and the
// same name always gives the same identifier.
func Identifier(name string) string {
	if len(name) <= maxIdentifier {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "_" + hex.EncodeToString(sum[:4])
	cut := maxIdentifier - len(suffix)
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + suffix
}

// AvroName returns a valid Avro name ([A-Za-z_][A-Za-z0-9_]*) for any column
// name. A name that had to change gets a hash suffix so two different names
// never map to the same Avro name.
func AvroName(name string) string {
	var b strings.Builder
	changed := false
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if ok {
			b.WriteRune(r)
			continue
		}
		changed = true
		if i == 0 && r >= '0' && r <= '9' {
			b.WriteByte('_')
			b.WriteRune(r)
			continue
		}
		b.WriteByte('_')
	}
	if name == "" {
		changed = true
	}
	if !changed {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return b.String() + "_" + hex.EncodeToString(sum[:4])
}

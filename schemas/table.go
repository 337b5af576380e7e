package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SQLType is a column type of the target database.
type SQLType string

// The column types a mapping may name (besides numeric(p,s)).
const (
	Text        SQLType = "text"
	BigInt      SQLType = "bigint"
	Integer     SQLType = "integer"
	Double      SQLType = "double precision"
	Numeric     SQLType = "numeric"
	Boolean     SQLType = "boolean"
	TimestampTZ SQLType = "timestamptz"
	UUID        SQLType = "uuid"
	Bytea       SQLType = "bytea"
	JSONB       SQLType = "jsonb"
	IntArray    SQLType = "integer[]" // the _idx column of child tables
)

var typeAliases = map[string]SQLType{
	"text": Text, "string": Text, "varchar": Text,
	"bigint": BigInt, "int8": BigInt, "long": BigInt,
	"integer": Integer, "int": Integer, "int4": Integer,
	"double precision": Double, "double": Double, "float8": Double,
	"numeric": Numeric, "decimal": Numeric,
	"boolean": Boolean, "bool": Boolean,
	"timestamptz": TimestampTZ, "timestamp": TimestampTZ, "date": TimestampTZ,
	"uuid":  UUID,
	"bytea": Bytea, "bytes": Bytea, "binary": Bytea,
	"jsonb": JSONB, "json": JSONB,
	"integer[]": IntArray,
}

var decimalType = regexp.MustCompile(`^(?:numeric|decimal)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

// decimal returns the precision and scale of numeric(p,s).
func (t SQLType) decimal() (precision, scale int, ok bool) {
	m := decimalType.FindStringSubmatch(strings.ToLower(strings.TrimSpace(string(t))))
	if m == nil {
		return 0, 0, false
	}
	p, _ := strconv.Atoi(m[1])
	sc, _ := strconv.Atoi(m[2])
	if p < 1 || p > 1000 || sc > p {
		return 0, 0, false
	}
	return p, sc, true
}

func (t SQLType) valid() bool {
	if _, _, ok := t.decimal(); ok {
		return true
	}
	_, ok := typeAliases[strings.ToLower(strings.TrimSpace(string(t)))]
	return ok
}

// canonical returns the type's canonical spelling (aliases resolved).
func (t SQLType) canonical() SQLType {
	if p, s, ok := t.decimal(); ok {
		return SQLType(fmt.Sprintf("numeric(%d,%d)", p, s))
	}
	if c, ok := typeAliases[strings.ToLower(strings.TrimSpace(string(t)))]; ok {
		return c
	}
	return t
}

func knownTypes() string {
	return "text, integer, bigint, double precision, numeric, numeric(p,s), boolean, timestamptz, uuid, bytea, jsonb"
}

// Table describes a target table: its name, its columns in order (system
// columns first) and its child tables. A consumer rebuilds it from a record's
// Avro schema, so it needs no mapping file.
type Table struct {
	Name     string
	Columns  []TableColumn
	Children []Table
	Field    string // child tables: the Avro field of the array in the parent row
	Path     Path   // child tables: the array's path in the parent document
	RLS      bool   // root tables: a row-level-security policy per tenant
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
	ColIdx     = "_idx" // child tables: the element's position, outermost array first
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

// childSystemColumns lead every child table: the root document's tenant and
// _id, and the element's position path.
var childSystemColumns = []TableColumn{
	{Name: ColTenant, Type: Text},
	{Name: ColID, Type: Text},
	{Name: ColIdx, Type: IntArray},
	{Name: ColExtra, Field: ColExtra, Type: JSONB},
}

// TargetTable returns the target table of the collection, with its children.
func (c *Collection) TargetTable() Table {
	t := Table{Name: c.Table, RLS: c.RowLevelSecurity}
	t.Columns = append(t.Columns, systemColumns...)
	t.Columns = append(t.Columns, dataColumns(c.Columns)...)
	t.Children = childTables(c.Children)
	return t
}

func dataColumns(cols []Column) []TableColumn {
	out := make([]TableColumn, 0, len(cols))
	for _, col := range cols {
		out = append(out, TableColumn{Name: col.Name, Field: AvroName(col.Name), Type: col.Type.canonical()})
	}
	return out
}

func childTables(children []Child) []Table {
	var out []Table
	for _, ch := range children {
		t := Table{Name: ch.Table, Field: ch.field(), Path: ch.Path}
		t.Columns = append(t.Columns, childSystemColumns...)
		t.Columns = append(t.Columns, dataColumns(ch.Columns)...)
		t.Children = childTables(ch.Children)
		out = append(out, t)
	}
	return out
}

// field is the Avro field name of the child's array in its parent row.
func (ch *Child) field() string { return AvroName(strings.Join(ch.Path, "_")) }

// Key returns the names of the table's primary key columns.
func (t Table) Key() []string {
	if t.isChild() {
		return []string{ColTenant, ColID, ColIdx}
	}
	return []string{ColTenant, ColID}
}

func (t Table) isChild() bool { return t.Field != "" }

// All returns the table and its descendants, parents before children.
func (t Table) All() []Table {
	out := []Table{t}
	for _, c := range t.Children {
		out = append(out, c.All()...)
	}
	return out
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
	if validAvroName(name) {
		return name
	}
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

// validAvroName reports whether AvroName leaves name as it is (without
// building a copy: normalization asks once per column value).
func validAvroName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return name != ""
}

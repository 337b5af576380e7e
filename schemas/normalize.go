package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Document is a source document normalized for its table.
type Document struct {
	Tenant    string
	ID        string         // canonical Extended JSON of _id
	Row       map[string]any // Avro field name -> value (nil for SQL NULL)
	Conflicts []Conflict     // values that did not fit their column (kept in _extra)

	scratch []byte // where _extra is built, kept for the next NormalizeInto
}

// Conflict records a value that does not fit its column (or a child path
// that does not hold an array). The value is not lost: it is kept in _extra
// under its field name, or, with on_conflict: dlq, left for the caller to send
// to the dead-letter topic.
type Conflict struct {
	Table  string
	Column string // column name, or the child table's path
	Got    bson.Type
	Want   SQLType // empty for a child path
	Value  bson.RawValue
}

func (c Conflict) String() string {
	want := string(c.Want)
	if want == "" {
		want = "array"
	}
	return fmt.Sprintf("%s.%s (%s) got BSON %s", c.Table, c.Column, want, c.Got)
}

// Normalize turns a raw BSON document of this collection into a row. database
// is the source database (for the database tenant rule).
//
// Mapped columns get their typed values; arrays mapped as child tables become
// lists of child rows under the child's Avro field; every other field, and
// every value that does not fit its column, goes to _extra (canonical
// Extended JSON). A mapped field that holds an explicit null is NULL in its
// column and null in _extra, so null and missing stay distinct.
func (c *Collection) Normalize(database string, doc bson.Raw) (*Document, error) {
	d := &Document{}
	if err := c.NormalizeInto(database, doc, d); err != nil {
		return nil, err
	}
	return d, nil
}

// NormalizeInto is Normalize into d, reusing d's row map and scratch space:
// for a caller that is done with one document before it normalizes the next
// (the snapshot encodes each row at once), it saves their allocation.
func (c *Collection) NormalizeInto(database string, doc bson.Raw, d *Document) error {
	row, scratch := d.Row, d.scratch
	clear(row)
	*d = Document{scratch: scratch[:0]}
	// Malformed BSON is an error, never a panic in a value accessor below.
	if err := doc.Validate(); err != nil {
		return fmt.Errorf("malformed BSON document: %w", err)
	}
	w := walker{table: c.Table, dlq: c.OnConflict == ConflictDLQ, conflicts: &d.Conflicts, extra: &d.scratch}
	if c.Tenant.Field != "" && !strings.Contains(c.Tenant.Field, ".") {
		// A top-level tenant field is carried in _tenant (a nested one
		// stays in place): the walk takes it out, with _id.
		w.tenantField = c.Tenant.Field
	}
	var werr error
	d.Row, werr = w.rowInto(row, doc, c.tree, true)
	if w.id.Type == 0 {
		return ErrNoID
	}
	var err error
	if d.ID, err = CanonicalID(w.id); err != nil {
		return err
	}
	if w.tenantField != "" {
		d.Tenant, err = c.tenantOf(w.tenant, w.tenant.Type != 0)
	} else {
		d.Tenant, err = c.tenant(database, doc)
	}
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("document %s: %w", d.ID, err)
	}
	return nil
}

// walker builds the rows of one document.
type walker struct {
	table     string
	dlq       bool
	conflicts *[]Conflict
	// The top level's _id and tenant field (when tenantField is set) are
	// not the row's: the walk keeps their values (the first of each) here.
	tenantField string
	id, tenant  bson.RawValue
	// extra is where the _extra JSON of the row being built is written,
	// as its fields are met (a child row's after its parent's so far, and
	// taken off again).
	extra *[]byte
}

// row builds the row of one (sub-)document mapped by tree: its columns, its
// child arrays and its _extra. top is the document's own row, whose _id and
// tenant field are carried elsewhere.
func (w *walker) row(doc bson.Raw, tree *pathNode, top bool) (map[string]any, error) {
	return w.rowInto(nil, doc, tree, top)
}

// rowInto is row filling row, an empty map, or a new one if row is nil.
func (w *walker) rowInto(row map[string]any, doc bson.Raw, tree *pathNode, top bool) (map[string]any, error) {
	if row == nil {
		size := 1 // _extra
		if tree != nil {
			size += len(tree.sub)
		}
		row = make(map[string]any, size)
	}
	start := len(*w.extra)
	defer func() { *w.extra = (*w.extra)[:start] }()
	*w.extra = append(*w.extra, '{')
	n, err := w.walk(doc, tree, row, top)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		*w.extra = append(*w.extra, '}')
		row[ColExtra] = string((*w.extra)[start:])
	}
	return row, nil
}

// walk fills row from the fields of doc that tree maps and writes the rest
// to w.extra as the members of a JSON object (canonical Extended JSON),
// returning how many it wrote. Nested unmapped parts keep their place:
// {"a": {"b": 1}} with a.c mapped leaves {"a": {"b": 1}} in _extra.
func (w *walker) walk(doc bson.Raw, tree *pathNode, row map[string]any, top bool) (int, error) {
	if len(doc) < 5 {
		return 0, fmt.Errorf("malformed BSON: document of %d bytes", len(doc))
	}
	// The elements are read in place (no slice of them), and their keys
	// are never made strings.
	extras := 0
	// member starts the next member of the object: a comma after the
	// first, then the key.
	member := func(key []byte) {
		if extras > 0 {
			*w.extra = append(*w.extra, ',')
		}
		*w.extra = appendKeyBytes(*w.extra, key)
	}
	keep := func(key []byte, val bson.RawValue) error {
		member(key)
		extras++
		var err error
		*w.extra, err = appendJSON(*w.extra, val, true)
		return err
	}
	for rem := bsoncore.Document(doc[4 : len(doc)-1]); len(rem) > 0; {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return 0, errors.New("malformed BSON: truncated element")
		}
		rem = rest
		// An element ReadElement returns is whole: type, key and its NUL,
		// value. It is split here once (its accessors each look for the
		// key's end again).
		k := bytes.IndexByte(el[1:], 0)
		keyBytes := el[1 : 1+k]
		val := bson.RawValue{Type: bson.Type(el[0]), Value: el[2+k:]}
		if top {
			switch {
			case string(keyBytes) == "_id":
				if w.id.Type == 0 {
					w.id = val
				}
				continue
			case w.tenantField != "" && string(keyBytes) == w.tenantField:
				if w.tenant.Type == 0 {
					w.tenant = val
				}
				continue
			}
		}
		var n *pathNode
		if tree != nil {
			n = tree.sub[string(keyBytes)]
		}
		var err error
		switch {
		case n == nil:
			err = keep(keyBytes, val)
		case n.col != nil:
			if val.Type == bson.TypeNull {
				row[n.avro] = nil
				err = keep(keyBytes, val)
				break
			}
			v, ok := n.value(val)
			if ok {
				row[n.avro] = v
				break
			}
			*w.conflicts = append(*w.conflicts, Conflict{Table: w.table, Column: n.col.Name, Got: val.Type, Want: n.col.Type, Value: val})
			if !w.dlq {
				err = keep(keyBytes, val)
			}
		case n.child != nil:
			var rows []any
			var kept bool
			if rows, kept, err = w.children(n.child, val); err == nil {
				row[n.child.field()] = rows
				if kept {
					err = keep(keyBytes, val)
				}
			}
		case val.Type != bson.TypeEmbeddedDocument: // mapped fields below this one, but no document
			err = keep(keyBytes, val)
		default:
			// The sub-document's unmapped rest, as an object under its key,
			// taken off again if it has none.
			mark := len(*w.extra)
			member(keyBytes)
			*w.extra = append(*w.extra, '{')
			var k int
			if k, err = w.walk(val.Document(), n, row, false); err == nil {
				if k == 0 {
					*w.extra = (*w.extra)[:mark]
				} else {
					*w.extra = append(*w.extra, '}')
					extras++
				}
			}
		}
		if err != nil {
			return 0, err
		}
	}
	return extras, nil
}

// children returns the child rows of an array field. A value that is not an
// array (or null) gives no rows and is kept in the parent's _extra (keep);
// an array element that is not a document becomes a row whose _extra holds
// it under "$value".
func (w *walker) children(ch *Child, val bson.RawValue) (rows []any, keep bool, err error) {
	rows = []any{}
	if val.Type != bson.TypeArray {
		if val.Type != bson.TypeNull {
			*w.conflicts = append(*w.conflicts, Conflict{Table: ch.Table, Column: ch.Path.String(), Got: val.Type, Value: val})
		}
		return rows, true, nil
	}
	elems, err := val.Array().Values()
	if err != nil {
		return nil, false, fmt.Errorf("malformed BSON array %s: %w", ch.Path, err)
	}
	sub := walker{table: ch.Table, dlq: w.dlq, conflicts: w.conflicts, extra: w.extra}
	for _, el := range elems {
		if el.Type != bson.TypeEmbeddedDocument {
			start := len(*w.extra)
			b, err := appendJSON(append(*w.extra, `{"$value":`...), el, true)
			if err != nil {
				return nil, false, err
			}
			rows = append(rows, map[string]any{ColExtra: string(append(b, '}')[start:])})
			*w.extra = b[:start]
			continue
		}
		r, err := sub.row(el.Document(), ch.tree, false)
		if err != nil {
			return nil, false, err
		}
		rows = append(rows, r)
	}
	return rows, false, nil
}

// TenantOf returns the tenant of a document of this collection (for a
// delete: of its pre-image or its document key).
func (c *Collection) TenantOf(database string, doc bson.Raw) (string, error) {
	return c.tenant(database, doc)
}

func (c *Collection) tenant(database string, doc bson.Raw) (string, error) {
	switch {
	case c.Tenant.Constant != "":
		return c.Tenant.Constant, nil
	case c.Tenant.Database:
		return database, nil
	}
	path := c.tenantPath
	if path == nil {
		path = strings.Split(c.Tenant.Field, ".")
	}
	v, err := doc.LookupErr(path...)
	return c.tenantOf(v, err == nil)
}

// tenantOf is the tenant that the value v of the tenant field names, or
// the error that says why there is none (found: whether the field is there).
func (c *Collection) tenantOf(v bson.RawValue, found bool) (string, error) {
	if !found {
		return "", fmt.Errorf("%w: field %q is missing", ErrNoTenant, c.Tenant.Field)
	}
	t, err := TenantValue(v)
	if err != nil {
		return "", fmt.Errorf("tenant field %q: %w", c.Tenant.Field, err)
	}
	return t, nil
}

// TenantValue returns the tenant a tenant field's value names: a string as it
// is, any other type (ObjectId, number) in canonical Extended JSON so that
// distinct values stay distinct.
func TenantValue(v bson.RawValue) (string, error) {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue(), nil
	case bson.TypeNull, bson.TypeUndefined:
		return "", fmt.Errorf("%w: the value is null", ErrNoTenant)
	}
	b, err := canonicalJSON(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// value converts a BSON value to the Go value of the node's column (see
// columnValue).
func (n *pathNode) value(v bson.RawValue) (any, bool) {
	if n.decimal {
		return decimalValue(v, n.precision, n.scale)
	}
	return columnValue(n.col.Type, v)
}

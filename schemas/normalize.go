package schemas

import (
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

// NormalizeInto is Normalize into d, reusing d's row map: for a caller that
// is done with one document before it normalizes the next (the snapshot
// encodes each row at once), it saves the map's allocation.
func (c *Collection) NormalizeInto(database string, doc bson.Raw, d *Document) error {
	row := d.Row
	clear(row)
	*d = Document{}
	// Malformed BSON is an error, never a panic in a value accessor below.
	if err := doc.Validate(); err != nil {
		return fmt.Errorf("malformed BSON document: %w", err)
	}
	idVal, err := doc.LookupErr("_id")
	if err != nil {
		return ErrNoID
	}
	if d.ID, err = CanonicalID(idVal); err != nil {
		return err
	}
	if d.Tenant, err = c.tenant(database, doc); err != nil {
		return fmt.Errorf("document %s: %w", d.ID, err)
	}
	w := walker{table: c.Table, dlq: c.OnConflict == ConflictDLQ, conflicts: &d.Conflicts}
	skip := "" // a top-level tenant field is carried in _tenant; a nested one stays in place
	if c.Tenant.Field != "" && !strings.Contains(c.Tenant.Field, ".") {
		skip = c.Tenant.Field
	}
	d.Row, err = w.rowInto(row, doc, c.tree, skip)
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
}

// row builds the row of one (sub-)document mapped by tree: its columns, its
// child arrays and its _extra. skip names a top-level field that is carried
// elsewhere (the tenant field).
func (w *walker) row(doc bson.Raw, tree *pathNode, skip string) (map[string]any, error) {
	return w.rowInto(nil, doc, tree, skip)
}

// rowInto is row filling row, an empty map, or a new one if row is nil.
func (w *walker) rowInto(row map[string]any, doc bson.Raw, tree *pathNode, skip string) (map[string]any, error) {
	if row == nil {
		size := 1 // _extra
		if tree != nil {
			size += len(tree.sub)
		}
		row = make(map[string]any, size)
	}
	extra, err := w.walk(doc, tree, row, skip, true)
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		s, err := docJSON(extra, true)
		if err != nil {
			return nil, fmt.Errorf("encoding _extra: %w", err)
		}
		row[ColExtra] = s
	}
	return row, nil
}

// walk fills row from the fields of doc that tree maps and returns the rest,
// for _extra. Nested unmapped parts keep their place: {"a": {"b": 1}} with
// a.c mapped leaves {"a": {"b": 1}} in _extra.
func (w *walker) walk(doc bson.Raw, tree *pathNode, row map[string]any, skip string, top bool) ([]bson.E, error) {
	if len(doc) < 5 {
		return nil, fmt.Errorf("malformed BSON: document of %d bytes", len(doc))
	}
	// The elements are read in place (no slice of them); a key becomes a
	// string only when it goes to _extra.
	var extra []bson.E
	for rem := bsoncore.Document(doc[4 : len(doc)-1]); len(rem) > 0; {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return nil, errors.New("malformed BSON: truncated element")
		}
		rem = rest
		keyBytes, cv := el.KeyBytes(), el.Value()
		val := bson.RawValue{Type: bson.Type(cv.Type), Value: cv.Data}
		if top && (string(keyBytes) == "_id" || (skip != "" && string(keyBytes) == skip)) {
			continue
		}
		var n *pathNode
		if tree != nil {
			n = tree.sub[string(keyBytes)]
		}
		switch {
		case n == nil:
			extra = append(extra, bson.E{Key: string(keyBytes), Value: val})
		case n.col != nil:
			if val.Type == bson.TypeNull {
				row[n.avro] = nil
				extra = append(extra, bson.E{Key: string(keyBytes), Value: val})
				continue
			}
			v, ok := n.value(val)
			if ok {
				row[n.avro] = v
				continue
			}
			*w.conflicts = append(*w.conflicts, Conflict{Table: w.table, Column: n.col.Name, Got: val.Type, Want: n.col.Type, Value: val})
			if !w.dlq {
				extra = append(extra, bson.E{Key: string(keyBytes), Value: val})
			}
		case n.child != nil:
			rows, keep, err := w.children(n.child, val)
			if err != nil {
				return nil, err
			}
			row[n.child.field()] = rows
			if keep {
				extra = append(extra, bson.E{Key: string(keyBytes), Value: val})
			}
		default: // mapped fields below this one
			if val.Type != bson.TypeEmbeddedDocument {
				extra = append(extra, bson.E{Key: string(keyBytes), Value: val})
				continue
			}
			rest, err := w.walk(val.Document(), n, row, "", false)
			if err != nil {
				return nil, err
			}
			if len(rest) > 0 {
				extra = append(extra, bson.E{Key: string(keyBytes), Value: rest})
			}
		}
	}
	return extra, nil
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
	sub := walker{table: ch.Table, dlq: w.dlq, conflicts: w.conflicts}
	for _, el := range elems {
		if el.Type != bson.TypeEmbeddedDocument {
			s, err := docJSON([]bson.E{{Key: "$value", Value: el}}, true)
			if err != nil {
				return nil, false, err
			}
			rows = append(rows, map[string]any{ColExtra: s})
			continue
		}
		r, err := sub.row(el.Document(), ch.tree, "")
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
	if err != nil {
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

package schemas

import (
	"fmt"
	"math"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Document is a source document normalized for its table.
type Document struct {
	Tenant    string
	ID        string         // canonical Extended JSON of _id
	Row       map[string]any // Avro field name -> value (nil for SQL NULL)
	Conflicts []Conflict     // values that did not fit their column (kept in _extra)
}

// Conflict records a value whose BSON type does not fit its column. The value
// is not lost: it is kept in _extra under its field name.
type Conflict struct {
	Column string
	Got    bson.Type
	Want   SQLType
}

func (c Conflict) String() string {
	return fmt.Sprintf("column %s (%s) got BSON %s", c.Column, c.Want, c.Got)
}

// Normalize turns a raw BSON document of this collection into a row. database
// is the source database (for the database tenant rule).
func (c *Collection) Normalize(database string, doc bson.Raw) (*Document, error) {
	idVal, err := doc.LookupErr("_id")
	if err != nil {
		return nil, ErrNoID
	}
	d := &Document{Row: make(map[string]any, len(c.Columns)+1)}
	if d.ID, err = CanonicalID(idVal); err != nil {
		return nil, err
	}
	if d.Tenant, err = c.tenant(database, doc); err != nil {
		return nil, fmt.Errorf("document %s: %w", d.ID, err)
	}

	elems, err := doc.Elements()
	if err != nil {
		return nil, fmt.Errorf("document %s: malformed BSON: %w", d.ID, err)
	}
	var extra bson.D
	mapped := make(map[string]*Column, len(c.Columns))
	for i := range c.Columns {
		mapped[c.Columns[i].Path] = &c.Columns[i]
	}
	for _, el := range elems {
		key := el.Key()
		if key == "_id" || (c.Tenant.Field != "" && key == c.Tenant.Field) {
			continue
		}
		col, ok := mapped[key]
		if !ok {
			extra = append(extra, bson.E{Key: key, Value: el.Value()})
			continue
		}
		v, ok := columnValue(col.Type, el.Value())
		if !ok {
			d.Conflicts = append(d.Conflicts, Conflict{Column: col.Name, Got: el.Value().Type, Want: col.Type})
			extra = append(extra, bson.E{Key: key, Value: el.Value()})
			continue
		}
		d.Row[AvroName(col.Name)] = v
	}
	if len(extra) > 0 {
		b, err := bson.MarshalExtJSON(extra, true, false)
		if err != nil {
			return nil, fmt.Errorf("document %s: encoding _extra: %w", d.ID, err)
		}
		d.Row[ColExtra] = string(b)
	}
	return d, nil
}

func (c *Collection) tenant(database string, doc bson.Raw) (string, error) {
	switch {
	case c.Tenant.Constant != "":
		return c.Tenant.Constant, nil
	case c.Tenant.Database:
		return database, nil
	}
	v, err := doc.LookupErr(c.Tenant.Field)
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

// columnValue converts a BSON value to the Go value of a column of type t. It
// reports false when the value does not fit (the caller keeps it in _extra).
// BSON null gives SQL NULL for every type.
func columnValue(t SQLType, v bson.RawValue) (any, bool) {
	if v.Type == bson.TypeNull {
		return nil, true
	}
	switch t.canonical() {
	case Text:
		if s, ok := v.StringValueOK(); ok {
			return s, true
		}
	case BigInt:
		switch v.Type {
		case bson.TypeInt32:
			return int64(v.Int32()), true
		case bson.TypeInt64:
			return v.Int64(), true
		case bson.TypeDouble:
			f := v.Double()
			if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
				return int64(f), true
			}
		}
	case Integer:
		switch v.Type {
		case bson.TypeInt32:
			return v.Int32(), true
		case bson.TypeInt64:
			if n := v.Int64(); n >= math.MinInt32 && n <= math.MaxInt32 {
				return int32(n), true
			}
		}
	case Double:
		switch v.Type {
		case bson.TypeDouble:
			return v.Double(), true
		case bson.TypeInt32:
			return float64(v.Int32()), true
		case bson.TypeInt64:
			return float64(v.Int64()), true
		}
	case Boolean:
		if b, ok := v.BooleanOK(); ok {
			return b, true
		}
	case TimestampTZ:
		if ms, ok := v.DateTimeOK(); ok {
			return time.UnixMilli(ms).UTC(), true
		}
	case JSONB:
		if b, err := canonicalJSON(v); err == nil {
			return string(b), true
		}
	}
	return nil, false
}

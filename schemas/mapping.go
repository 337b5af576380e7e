package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mapping says, per source collection, where its documents go and how they are
// typed. It is read from a YAML file:
//
//	collections:
//	  - source: shop.orders        # database.collection
//	    tenant: {field: tenant_id} # or {database: true} or {constant: acme}
//	    table: orders              # target table; default: the collection name
//	    columns:
//	      - {path: status, type: text}
//	      - {path: total, type: double}
//
// Every document field that no column names is kept in the table's _extra
// column.
type Mapping struct {
	Collections []Collection `yaml:"collections"`

	file string
}

// Collection maps one source collection to one target table.
type Collection struct {
	Source  Namespace  `yaml:"source"`
	Tenant  TenantRule `yaml:"tenant"`
	Table   string     `yaml:"table"`
	Columns []Column   `yaml:"columns"`

	line int
}

// Namespace is a MongoDB database and collection.
type Namespace struct {
	Database   string
	Collection string
}

func (n Namespace) String() string { return n.Database + "." + n.Collection }

// ParseNamespace splits "db.collection"; the collection may contain dots.
func ParseNamespace(s string) (Namespace, error) {
	db, coll, ok := strings.Cut(s, ".")
	if !ok || db == "" || coll == "" {
		return Namespace{}, fmt.Errorf("namespace %q is not of the form database.collection", s)
	}
	return Namespace{Database: db, Collection: coll}, nil
}

// UnmarshalYAML reads "db.collection".
func (n *Namespace) UnmarshalYAML(node *yaml.Node) error {
	var s string
	if err := node.Decode(&s); err != nil {
		return err
	}
	ns, err := ParseNamespace(s)
	if err != nil {
		return err
	}
	*n = ns
	return nil
}

// TenantRule says where a document's tenant comes from. Exactly one of its
// fields is set.
type TenantRule struct {
	Field    string `yaml:"field"`    // a top-level document field
	Database bool   `yaml:"database"` // the database name (database-per-tenant)
	Constant string `yaml:"constant"` // the same tenant for every document
}

// Column maps a document field to a typed target column.
type Column struct {
	Path string  `yaml:"path"` // top-level field name in the document
	Name string  `yaml:"name"` // column name; default: derived from Path
	Type SQLType `yaml:"type"`

	line int
}

// LoadMapping reads and validates a mapping file.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &MappingError{File: path, Err: err}
	}
	return ParseMapping(path, b)
}

// ParseMapping parses and validates mapping YAML; file is used in errors only.
func ParseMapping(file string, b []byte) (*Mapping, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, &MappingError{File: file, Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	if err := checkKeys(&root, "", file); err != nil {
		return nil, err
	}
	m := &Mapping{file: file}
	if err := root.Decode(m); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return nil, &MappingError{File: file, Err: errors.New(te.Errors[0])}
		}
		return nil, &MappingError{File: file, Err: err}
	}
	recordLines(&root, m)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// allowedKeys lists the keys each kind of YAML mapping node may have, by the
// path of the node with list indexes removed.
var allowedKeys = map[string][]string{
	"":                    {"collections"},
	"collections":         {"source", "tenant", "table", "columns"},
	"collections.tenant":  {"field", "database", "constant"},
	"collections.columns": {"path", "name", "type"},
}

// checkKeys rejects keys the mapping format does not know, naming the line:
// a misspelt key must not silently fall back to a default.
func checkKeys(n *yaml.Node, path, file string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := checkKeys(c, path, file); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		allowed, known := allowedKeys[path]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if known && !slices.Contains(allowed, k.Value) {
				return &MappingError{File: file, Line: k.Line, Field: strings.TrimPrefix(path+"."+k.Value, "."),
					Err: fmt.Errorf("unknown key (known: %s)", strings.Join(allowed, ", "))}
			}
			child := strings.TrimPrefix(path+"."+k.Value, ".")
			if _, ok := allowedKeys[child]; ok {
				if err := checkKeys(n.Content[i+1], child, file); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// recordLines copies source lines from the YAML tree into the decoded mapping
// so that validation errors can name them.
func recordLines(root *yaml.Node, m *Mapping) {
	colls := mapValue(docNode(root), "collections")
	if colls == nil {
		return
	}
	for i, c := range colls.Content {
		if i >= len(m.Collections) {
			return
		}
		m.Collections[i].line = c.Line
		cols := mapValue(c, "columns")
		if cols == nil {
			continue
		}
		for j, col := range cols.Content {
			if j < len(m.Collections[i].Columns) {
				m.Collections[i].Columns[j].line = col.Line
			}
		}
	}
}

func docNode(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Validate checks the mapping and fills defaults (table and column names). The
// error names the file, line and field.
func (m *Mapping) Validate() error {
	if len(m.Collections) == 0 {
		return &MappingError{File: m.file, Field: "collections", Err: errors.New("no collections are mapped")}
	}
	tables := map[string]int{}
	sources := map[string]int{}
	for i := range m.Collections {
		c := &m.Collections[i]
		field := fmt.Sprintf("collections[%d]", i)
		fail := func(sub string, line int, err error) error {
			if line == 0 {
				line = c.line
			}
			return &MappingError{File: m.file, Line: line, Field: field + sub, Err: err}
		}
		if c.Source.Database == "" {
			return fail(".source", 0, errors.New("missing (want database.collection)"))
		}
		if prev, dup := sources[c.Source.String()]; dup {
			return fail(".source", 0, fmt.Errorf("%s is already mapped by collections[%d]", c.Source, prev))
		}
		sources[c.Source.String()] = i
		set := 0
		if c.Tenant.Field != "" {
			set++
		}
		if c.Tenant.Database {
			set++
		}
		if c.Tenant.Constant != "" {
			set++
		}
		if set != 1 {
			return fail(".tenant", 0, errors.New("set exactly one of field, database, constant"))
		}
		if c.Table == "" {
			c.Table = c.Source.Collection
		}
		c.Table = Identifier(c.Table)
		if prev, dup := tables[c.Table]; dup {
			return fail(".table", 0, fmt.Errorf("table %q is already the target of collections[%d]", c.Table, prev))
		}
		tables[c.Table] = i
		names := map[string]int{}
		for _, sys := range systemColumns {
			names[sys.Name] = -1
		}
		for j := range c.Columns {
			col := &c.Columns[j]
			cf := fmt.Sprintf(".columns[%d]", j)
			if col.Path == "" {
				return fail(cf+".path", col.line, errors.New("missing"))
			}
			if col.Path == "_id" {
				return fail(cf+".path", col.line, errors.New("_id is always mapped to the _id key column"))
			}
			if !col.Type.valid() {
				return fail(cf+".type", col.line, fmt.Errorf("unknown type %q (known: %s)", col.Type, knownTypes()))
			}
			if col.Name == "" {
				col.Name = col.Path
			}
			col.Name = Identifier(col.Name)
			if prev, dup := names[col.Name]; dup {
				what := "a docshift system column"
				if prev >= 0 {
					what = fmt.Sprintf("columns[%d]", prev)
				}
				return fail(cf+".name", col.line, fmt.Errorf("column %q clashes with %s", col.Name, what))
			}
			names[col.Name] = j
		}
	}
	return nil
}

// Lookup returns the mapping of a namespace, or nil.
func (m *Mapping) Lookup(ns Namespace) *Collection {
	for i := range m.Collections {
		if m.Collections[i].Source == ns {
			return &m.Collections[i]
		}
	}
	return nil
}

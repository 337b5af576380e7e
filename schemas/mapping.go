package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Mapping says, per source collection, where its documents go and how they are
// typed. It is read from a YAML file:
//
//	collections:
//	  - source: shop.orders        # database.collection; "*" matches any name: shop.*, *.orders
//	    tenant: {field: tenant_id} # or {database: true} or {constant: acme}
//	    table: orders              # target table; default: the collection name
//	    on_conflict: extra         # or dlq: where a value that does not fit its column goes
//	    row_level_security: false  # true: a per-tenant policy on the table
//	    columns:
//	      - {path: status, type: text}
//	      - {path: customer.name, type: text}     # nested path; column customer_name
//	      - {path: [a.b, c], type: text}          # a path whose field names contain dots
//	    children:                                 # arrays of sub-documents -> child tables
//	      - path: items
//	        table: orders__items                  # default: <table>__<path>
//	        columns:
//	          - {path: sku, type: text}
//	        children: [...]                       # nested arrays
//
// Every document field that no column names is kept in the table's _extra
// column.
type Mapping struct {
	Collections []Collection `yaml:"collections"`

	file     string
	resolved sync.Map // Namespace -> *Collection: patterns resolved once per namespace
}

// Collection maps one source collection (or every collection a pattern
// matches) to one target table.
type Collection struct {
	Source           Namespace  `yaml:"source"`
	Tenant           TenantRule `yaml:"tenant"`
	Table            string     `yaml:"table"`
	Columns          []Column   `yaml:"columns"`
	Children         []Child    `yaml:"children"`
	OnConflict       string     `yaml:"on_conflict"`
	RowLevelSecurity bool       `yaml:"row_level_security"`

	line       int
	tree       *pathNode
	tenantPath []string // Tenant.Field split at its dots, once
}

// Child maps an array of sub-documents to a child table: one row per array
// element, keyed by the root document's tenant and _id and the element's
// position.
type Child struct {
	Path     Path     `yaml:"path"`
	Table    string   `yaml:"table"`
	Columns  []Column `yaml:"columns"`
	Children []Child  `yaml:"children"`

	line int
	tree *pathNode
}

// Conflict policies.
const (
	ConflictExtra = "extra" // keep the value in _extra (default)
	ConflictDLQ   = "dlq"   // leave it out of the row and report it for the dead-letter topic
)

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
	Path Path    `yaml:"path"` // field path in the document
	Name string  `yaml:"name"` // column name; default: the path joined with "_"
	Type SQLType `yaml:"type"`

	line int
}

// Path is a field path in a document: "a.b.c" in YAML, or a list of field
// names (for names that contain dots).
type Path []string

// UnmarshalYAML reads "a.b" or [a, b].
func (p *Path) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		if node.Value == "" {
			*p = nil
			return nil
		}
		*p = strings.Split(node.Value, ".")
	case yaml.SequenceNode:
		var parts []string
		if err := node.Decode(&parts); err != nil {
			return err
		}
		*p = parts
	default:
		return fmt.Errorf("line %d: a path is a string or a list of field names", node.Line)
	}
	return nil
}

func (p Path) String() string { return strings.Join(p, ".") }

// Matches reports whether the pattern n (which may hold "*" for any database
// or collection name) matches the namespace ns.
func (n Namespace) Matches(ns Namespace) bool {
	return (n.Database == "*" || n.Database == ns.Database) && (n.Collection == "*" || n.Collection == ns.Collection)
}

// IsPattern reports whether n holds a wildcard.
func (n Namespace) IsPattern() bool { return n.Database == "*" || n.Collection == "*" }

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
	"":                             {"collections"},
	"collections":                  {"source", "tenant", "table", "columns", "children", "on_conflict", "row_level_security"},
	"collections.tenant":           {"field", "database", "constant"},
	"collections.columns":          {"path", "name", "type"},
	"collections.children":         {"path", "table", "columns", "children"},
	"collections.children.columns": {"path", "name", "type"},
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
			for strings.Contains(child, "children.children") { // nested children read like children
				child = strings.Replace(child, "children.children", "children", 1)
			}
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
		columnLines(c, m.Collections[i].Columns)
		childLines(c, m.Collections[i].Children)
	}
}

func columnLines(n *yaml.Node, cols []Column) {
	if seq := mapValue(n, "columns"); seq != nil {
		for j, col := range seq.Content {
			if j < len(cols) {
				cols[j].line = col.Line
			}
		}
	}
}

func childLines(n *yaml.Node, children []Child) {
	if seq := mapValue(n, "children"); seq != nil {
		for j, c := range seq.Content {
			if j < len(children) {
				children[j].line = c.Line
				columnLines(c, children[j].Columns)
				childLines(c, children[j].Children)
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
	tables := map[string]string{}
	sources := map[string]int{}
	for i := range m.Collections {
		c := &m.Collections[i]
		field := fmt.Sprintf("collections[%d]", i)
		fail := func(sub string, err error) error {
			return &MappingError{File: m.file, Line: c.line, Field: field + sub, Err: err}
		}
		if c.Source.Database == "" {
			return fail(".source", errors.New("missing (want database.collection)"))
		}
		if prev, dup := sources[c.Source.String()]; dup {
			return fail(".source", fmt.Errorf("%s is already mapped by collections[%d]", c.Source, prev))
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
			return fail(".tenant", errors.New("set exactly one of field, database, constant"))
		}
		switch c.OnConflict {
		case "":
			c.OnConflict = ConflictExtra
		case ConflictExtra, ConflictDLQ:
		default:
			return fail(".on_conflict", fmt.Errorf("%q is not extra or dlq", c.OnConflict))
		}
		if c.Table == "" {
			c.Table = c.Source.Collection
			if c.Source.Collection == "*" {
				c.Table = "{collection}"
			}
		}
		if !strings.Contains(c.Table, "{collection}") {
			c.Table = Identifier(c.Table)
			if prev, dup := tables[c.Table]; dup {
				return fail(".table", fmt.Errorf("table %q is already the target of %s", c.Table, prev))
			}
			tables[c.Table] = field
		}
		tree, err := buildTree(m.file, field, c.line, c.Table, rootColumns, c.Columns, c.Children, tables)
		if err != nil {
			return err
		}
		c.tree = tree
		if c.Tenant.Field != "" {
			c.tenantPath = strings.Split(c.Tenant.Field, ".")
		}
	}
	return nil
}

// rootColumns and childColumns are the system column names a mapped column
// may not take.
var (
	rootColumns  = []string{ColTenant, ColID, ColVersion, ColDeleted, ColExtra}
	childColumns = []string{ColTenant, ColID, ColIdx, ColExtra}
)

// pathNode is the mapping of one level of a document: which field names lead
// to a column, to a child table, or to deeper mapped fields.
type pathNode struct {
	col   *Column
	child *Child
	sub   map[string]*pathNode
	// Worked out once from col, for every value normalized: its Avro
	// field name and, for numeric(p,s), precision and scale.
	avro             string
	precision, scale int
	decimal          bool
}

// buildTree validates the columns and children of one table and returns its
// path tree. Paths may not overlap: a field is a column, a child table, or a
// document with mapped fields below it, never two of those.
func buildTree(file, field string, line int, table string, system []string, cols []Column, children []Child, tables map[string]string) (*pathNode, error) {
	root := &pathNode{}
	names := map[string]string{}
	for _, s := range system {
		names[s] = "a docshift system column"
	}
	place := func(p Path, sub string, lineNo int) (*pathNode, error) {
		fail := func(err error) error { return &MappingError{File: file, Line: lineNo, Field: field + sub, Err: err} }
		if len(p) == 0 {
			return nil, fail(errors.New("missing"))
		}
		if len(p) == 1 && p[0] == "_id" {
			return nil, fail(errors.New("_id is always mapped to the _id key column"))
		}
		n := root
		for i, name := range p {
			if name == "" {
				return nil, fail(fmt.Errorf("path %q has an empty field name", p))
			}
			if n.col != nil || n.child != nil {
				return nil, fail(fmt.Errorf("path %q is below %q, which is already mapped", p, Path(p[:i])))
			}
			if n.sub == nil {
				n.sub = map[string]*pathNode{}
			}
			next := n.sub[name]
			if next == nil {
				next = &pathNode{}
				n.sub[name] = next
			}
			n = next
		}
		if n.col != nil || n.child != nil || n.sub != nil {
			return nil, fail(fmt.Errorf("path %q is mapped twice (or has mapped fields below it)", p))
		}
		return n, nil
	}
	for j := range cols {
		col := &cols[j]
		cf := fmt.Sprintf(".columns[%d]", j)
		lineNo := col.line
		if lineNo == 0 {
			lineNo = line
		}
		n, err := place(col.Path, cf+".path", lineNo)
		if err != nil {
			return nil, err
		}
		n.col = col
		if !col.Type.valid() {
			return nil, &MappingError{File: file, Line: lineNo, Field: field + cf + ".type",
				Err: fmt.Errorf("unknown type %q (known: %s)", col.Type, knownTypes())}
		}
		col.Type = col.Type.canonical()
		if col.Name == "" {
			col.Name = strings.Join(col.Path, "_")
		}
		col.Name = Identifier(col.Name)
		if prev, dup := names[col.Name]; dup {
			return nil, &MappingError{File: file, Line: lineNo, Field: field + cf + ".name",
				Err: fmt.Errorf("column %q clashes with %s", col.Name, prev)}
		}
		names[col.Name] = "columns" + fmt.Sprintf("[%d]", j)
		n.avro = AvroName(col.Name)
		n.precision, n.scale, n.decimal = col.Type.decimal()
	}
	for j := range children {
		ch := &children[j]
		cf := fmt.Sprintf(".children[%d]", j)
		lineNo := ch.line
		if lineNo == 0 {
			lineNo = line
		}
		n, err := place(ch.Path, cf+".path", lineNo)
		if err != nil {
			return nil, err
		}
		n.child = ch
		if ch.Table == "" {
			ch.Table = table + "__" + strings.Join(ch.Path, "_")
		}
		if !strings.Contains(ch.Table, "{collection}") {
			ch.Table = Identifier(ch.Table)
			if prev, dup := tables[ch.Table]; dup {
				return nil, &MappingError{File: file, Line: lineNo, Field: field + cf + ".table",
					Err: fmt.Errorf("table %q is already the target of %s", ch.Table, prev)}
			}
			tables[ch.Table] = field + cf
		}
		fieldName := AvroName(strings.Join(ch.Path, "_"))
		if prev, dup := names[fieldName]; dup {
			return nil, &MappingError{File: file, Line: lineNo, Field: field + cf + ".path",
				Err: fmt.Errorf("child %q clashes with %s", fieldName, prev)}
		}
		names[fieldName] = "children" + fmt.Sprintf("[%d]", j)
		tree, err := buildTree(file, field+cf, lineNo, ch.Table, childColumns, ch.Columns, ch.Children, tables)
		if err != nil {
			return nil, err
		}
		ch.tree = tree
	}
	return root, nil
}

// Lookup returns the mapping of a concrete namespace, or nil: the entry that
// names it exactly, else the first pattern that matches it, resolved for it
// (its {collection} placeholders filled in).
func (m *Mapping) Lookup(ns Namespace) *Collection {
	for i := range m.Collections {
		if m.Collections[i].Source == ns {
			return &m.Collections[i]
		}
	}
	if c, ok := m.resolved.Load(ns); ok {
		return c.(*Collection)
	}
	for i := range m.Collections {
		if m.Collections[i].Source.IsPattern() && m.Collections[i].Source.Matches(ns) {
			// Resolved once per namespace: the producer looks up every event.
			c, _ := m.resolved.LoadOrStore(ns, m.Collections[i].resolve(ns))
			return c.(*Collection)
		}
	}
	return nil
}

// resolve returns a copy of a pattern entry for one namespace.
func (c *Collection) resolve(ns Namespace) *Collection {
	r := *c
	r.Source = ns
	r.Table = Identifier(strings.ReplaceAll(c.Table, "{collection}", ns.Collection))
	r.Children = resolveChildren(c.Children, ns)
	r.tree = rebuild(c.tree, c.Columns, r.Columns, c.Children, r.Children)
	return &r
}

func resolveChildren(children []Child, ns Namespace) []Child {
	out := make([]Child, len(children))
	for i, ch := range children {
		out[i] = ch
		out[i].Table = Identifier(strings.ReplaceAll(ch.Table, "{collection}", ns.Collection))
		out[i].Children = resolveChildren(ch.Children, ns)
		out[i].tree = rebuild(ch.tree, ch.Columns, out[i].Columns, ch.Children, out[i].Children)
	}
	return out
}

// rebuild copies a path tree, pointing it at the copied columns and children.
func rebuild(n *pathNode, oldCols, newCols []Column, oldCh, newCh []Child) *pathNode {
	if n == nil {
		return nil
	}
	out := &pathNode{avro: n.avro, precision: n.precision, scale: n.scale, decimal: n.decimal}
	for i := range oldCols {
		if n.col == &oldCols[i] {
			out.col = &newCols[i]
		}
	}
	for i := range oldCh {
		if n.child == &oldCh[i] {
			out.child = &newCh[i]
		}
	}
	if n.sub != nil {
		out.sub = make(map[string]*pathNode, len(n.sub))
		for k, v := range n.sub {
			out.sub[k] = rebuild(v, oldCols, newCols, oldCh, newCh)
		}
	}
	return out
}

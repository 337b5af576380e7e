package schemas

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.yaml.in/yaml/v3"
)

// maxFlattenKeys is the most distinct field names a sub-document may show
// across the sample before it is treated as a map (one jsonb column) rather
// than flattened into columns.
const maxFlattenKeys = 32

// fieldStats is what the sample showed of one path.
type fieldStats struct {
	types   map[bson.Type]int
	bigInt  bool // an int64 beyond 2^53 (a double cannot hold it exactly)
	uuidBin int  // binary values of subtype 4 and 16 bytes
	sub     *docStats
	elems   *docStats // array elements that are documents
	scalars int       // array elements that are not documents
}

// docStats is what the sample showed of one level of documents.
type docStats struct {
	n      int
	fields map[string]*fieldStats
	order  []string
}

func newDocStats() *docStats { return &docStats{fields: map[string]*fieldStats{}} }

func (d *docStats) add(doc bson.Raw) error {
	elems, err := doc.Elements()
	if err != nil {
		return err
	}
	d.n++
	for _, el := range elems {
		k := el.Key()
		fs := d.fields[k]
		if fs == nil {
			fs = &fieldStats{types: map[bson.Type]int{}}
			d.fields[k] = fs
			d.order = append(d.order, k)
		}
		if err := fs.add(el.Value()); err != nil {
			return err
		}
	}
	return nil
}

func (fs *fieldStats) add(v bson.RawValue) error {
	fs.types[v.Type]++
	switch v.Type {
	case bson.TypeInt64:
		if n := v.Int64(); n > 1<<53 || n < -(1<<53) {
			fs.bigInt = true
		}
	case bson.TypeBinary:
		if sub, data, ok := v.BinaryOK(); ok && sub == bson.TypeBinaryUUID && len(data) == 16 {
			fs.uuidBin++
		}
	case bson.TypeEmbeddedDocument:
		if fs.sub == nil {
			fs.sub = newDocStats()
		}
		return fs.sub.add(v.Document())
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return err
		}
		for _, e := range vals {
			if e.Type == bson.TypeEmbeddedDocument {
				if fs.elems == nil {
					fs.elems = newDocStats()
				}
				if err := fs.elems.add(e.Document()); err != nil {
					return err
				}
			} else if e.Type != bson.TypeNull {
				fs.scalars++
			}
		}
	}
	return nil
}

// Widening is one report line: a path whose samples disagree on type, and the
// column type chosen to hold them all.
type Widening struct {
	Collection Namespace
	Path       string
	Seen       string // e.g. "int32×90, string×10"
	Chosen     string
}

// Inference is the outcome of sampling.
type Inference struct {
	Mapping   Mapping
	Widenings []Widening
	Sampled   map[string]int // documents sampled per namespace
}

// InferOptions steer Infer.
type InferOptions struct {
	Sample int        // documents sampled per collection
	Tenant TenantRule // the tenant rule every proposed collection gets
}

// Infer samples each collection ($sample) and proposes a mapping: scalar
// fields become typed columns (conflicting types widened, see docs/types.md),
// sub-documents are flattened into columns, arrays of documents become child
// tables, other arrays and map-like documents become jsonb columns.
func Infer(ctx context.Context, mc *mongo.Client, sources []Namespace, opts InferOptions) (*Inference, error) {
	inf := &Inference{Sampled: map[string]int{}}
	for _, ns := range sources {
		coll := mc.Database(ns.Database).Collection(ns.Collection)
		// A failed $sample is tried again (twice): it can fail on a
		// transient error, and mongo-java-server's random sort sometimes
		// throws.
		var stats *docStats
		var err error
		for range 3 {
			if stats, err = sample(ctx, coll, opts.Sample); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sampling %s: %w", ns, err)
		}
		inf.Sampled[ns.String()] = stats.n
		c := Collection{Source: ns, Tenant: opts.Tenant, Table: Identifier(ns.Collection)}
		skip := map[string]bool{"_id": true}
		if opts.Tenant.Field != "" && !strings.Contains(opts.Tenant.Field, ".") {
			skip[opts.Tenant.Field] = true
		}
		c.Columns, c.Children = propose(stats, nil, skip, ns, c.Table, &inf.Widenings)
		inf.Mapping.Collections = append(inf.Mapping.Collections, c)
	}
	if err := inf.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("proposed mapping does not validate: %w", err)
	}
	return inf, nil
}

// sample gathers the statistics of n documents drawn with $sample.
func sample(ctx context.Context, coll *mongo.Collection, n int) (*docStats, error) {
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{{{Key: "$sample", Value: bson.D{{Key: "size", Value: n}}}}})
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	stats := newDocStats()
	for cur.Next(ctx) {
		if err := stats.add(cur.Current); err != nil {
			return nil, err
		}
	}
	return stats, cur.Err()
}

// propose turns the statistics of one document level into columns and
// children.
func propose(d *docStats, prefix Path, skip map[string]bool, ns Namespace, table string, widen *[]Widening) ([]Column, []Child) {
	var cols []Column
	var children []Child
	for _, k := range d.order {
		if len(prefix) == 0 && skip[k] {
			continue
		}
		fs := d.fields[k]
		path := append(append(Path{}, prefix...), k)
		nonNull := map[bson.Type]int{}
		for t, n := range fs.types {
			if t != bson.TypeNull && t != bson.TypeUndefined {
				nonNull[t] = n
			}
		}
		switch {
		case len(nonNull) == 1 && nonNull[bson.TypeEmbeddedDocument] > 0 && len(fs.sub.order) <= maxFlattenKeys && len(path) < 4:
			sc, sch := propose(fs.sub, path, nil, ns, table, widen)
			cols = append(cols, sc...)
			children = append(children, sch...)
		case len(nonNull) == 1 && nonNull[bson.TypeArray] > 0 && fs.elems != nil && fs.scalars == 0:
			name := table + "__" + strings.Join(path, "_")
			cc, cch := propose(fs.elems, nil, nil, ns, name, widen)
			children = append(children, Child{Path: path, Columns: cc, Children: cch})
		default:
			t := widenType(fs, nonNull)
			if len(nonNull) > 1 {
				*widen = append(*widen, Widening{Collection: ns, Path: path.String(), Seen: seen(nonNull), Chosen: string(t)})
			}
			cols = append(cols, Column{Path: path, Type: t})
		}
	}
	return cols, children
}

func seen(types map[bson.Type]int) string {
	var parts []string
	for t, n := range types {
		parts = append(parts, fmt.Sprintf("%s×%d", t, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// widenType is the narrowest column type that holds every sampled type.
func widenType(fs *fieldStats, types map[bson.Type]int) SQLType {
	has := func(ts ...bson.Type) bool {
		for _, t := range ts {
			if types[t] > 0 {
				return true
			}
		}
		return false
	}
	only := func(ts ...bson.Type) bool {
		n := 0
		for _, t := range ts {
			if types[t] > 0 {
				n++
			}
		}
		return n == len(types)
	}
	numbers := []bson.Type{bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128}
	scalars := append(append([]bson.Type{}, numbers...), bson.TypeString, bson.TypeBoolean, bson.TypeDateTime, bson.TypeObjectID, bson.TypeSymbol)
	switch {
	case len(types) == 0:
		return Text
	case only(bson.TypeInt32):
		return Integer
	case only(bson.TypeInt32, bson.TypeInt64):
		return BigInt
	case only(numbers...) && has(bson.TypeDecimal128):
		return Numeric
	case only(numbers...) && fs.bigInt:
		return Numeric
	case only(numbers...):
		return Double
	case only(bson.TypeString), only(bson.TypeObjectID), only(bson.TypeString, bson.TypeObjectID):
		return Text
	case only(bson.TypeBoolean):
		return Boolean
	case only(bson.TypeDateTime):
		return TimestampTZ
	case only(bson.TypeTimestamp):
		return BigInt
	case only(bson.TypeBinary) && fs.uuidBin == types[bson.TypeBinary]:
		return UUID
	case only(bson.TypeBinary):
		return Bytea
	case only(scalars...):
		return Text
	}
	return JSONB
}

// WriteYAML writes the proposed mapping as a mapping file.
func (inf *Inference) WriteYAML(w io.Writer) error {
	type col struct {
		Path any    `yaml:"path"`
		Type string `yaml:"type"`
	}
	type child struct {
		Path     any     `yaml:"path"`
		Columns  []col   `yaml:"columns,omitempty"`
		Children []child `yaml:"children,omitempty"`
	}
	type coll struct {
		Source   string         `yaml:"source"`
		Tenant   map[string]any `yaml:"tenant"`
		Table    string         `yaml:"table"`
		Columns  []col          `yaml:"columns,omitempty"`
		Children []child        `yaml:"children,omitempty"`
	}
	pathOut := func(p Path) any {
		for _, part := range p {
			if strings.Contains(part, ".") {
				return []string(p)
			}
		}
		return p.String()
	}
	cols := func(cs []Column) []col {
		var out []col
		for _, c := range cs {
			out = append(out, col{Path: pathOut(c.Path), Type: string(c.Type)})
		}
		return out
	}
	var kids func([]Child) []child
	kids = func(chs []Child) []child {
		var out []child
		for _, ch := range chs {
			out = append(out, child{Path: pathOut(ch.Path), Columns: cols(ch.Columns), Children: kids(ch.Children)})
		}
		return out
	}
	var doc struct {
		Collections []coll `yaml:"collections"`
	}
	for _, c := range inf.Mapping.Collections {
		tenant := map[string]any{}
		switch {
		case c.Tenant.Field != "":
			tenant["field"] = c.Tenant.Field
		case c.Tenant.Database:
			tenant["database"] = true
		default:
			tenant["constant"] = c.Tenant.Constant
		}
		doc.Collections = append(doc.Collections, coll{Source: c.Source.String(), Tenant: tenant, Table: c.Table,
			Columns: cols(c.Columns), Children: kids(c.Children)})
	}
	fmt.Fprintln(w, "# Proposed by docshift schemas infer; edit freely. Fields no column names stay in _extra.")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// WriteReport writes what was sampled and every widening.
func (inf *Inference) WriteReport(w io.Writer) {
	names := make([]string, 0, len(inf.Sampled))
	for n := range inf.Sampled {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "sampled %s: %d documents\n", n, inf.Sampled[n])
	}
	if len(inf.Widenings) == 0 {
		fmt.Fprintln(w, "no type conflicts")
		return
	}
	fmt.Fprintln(w, "type conflicts, widened:")
	for _, wd := range inf.Widenings {
		fmt.Fprintf(w, "  %s %s: %s -> %s\n", wd.Collection, wd.Path, wd.Seen, wd.Chosen)
	}
}

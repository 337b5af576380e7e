package consumer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/docshift/docshift/schemas"
)

// Child tables.
//
// A document's arrays of sub-documents are rows of child tables keyed by
// (_tenant, _id, _idx): the root document's key and the element's position
// path, outermost array first. They are replaced as a whole, in the parent's
// transaction, for exactly the parents the version-guarded upsert wrote: a
// stale record writes no parent row and so leaves the newer children alone,
// and a delete (a tombstone parent) leaves no children. The old child rows
// (all levels) of an updated parent are deleted first; a parent the upsert
// inserted has none (its children go with it, since they are deleted when its
// tombstone is written, before a purge removes the tombstone). The new child
// rows are then copied straight into their tables: after the delete nothing
// can conflict with them.

// childSet is one root table's child tables, parents before children, with
// their layouts.
type childSet struct {
	tables  []schemas.Table
	layouts map[string]*layout // by table name
}

func newChildSet(root schemas.Table) *childSet {
	cs := &childSet{tables: root.All()[1:], layouts: map[string]*layout{}}
	for _, t := range cs.tables {
		cs.layouts[t.Name] = newLayout(t)
	}
	return cs
}

// replaceChildren replaces the child rows of the parents in written (keys the
// upsert of root wrote from changes) with the rows of their arrays.
func (cs *childSet) replaceChildren(ctx context.Context, tx pgx.Tx, root schemas.Table, changes []change, written []writtenKey) error {
	if len(cs.tables) == 0 || len(written) == 0 {
		return nil
	}
	var tenants, ids []string // updated parents: their old children go
	for _, w := range written {
		if !w.inserted {
			tenants = append(tenants, w.tenant)
			ids = append(ids, w.id)
		}
	}
	if len(ids) > 0 {
		for _, t := range cs.tables {
			_, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s AS c USING unnest($1::text[], $2::text[]) AS k(tenant, id)
WHERE c.%s = k.tenant AND c.%s = k.id`, schemas.QuoteIdent(t.Name), schemas.QuoteIdent(schemas.ColTenant), schemas.QuoteIdent(schemas.ColID)),
				tenants, ids)
			if err != nil {
				return fmt.Errorf("deleting the child rows of %d parents from %s: %w", len(ids), t.Name, err)
			}
		}
	}
	envs := make(map[rowKey]*schemas.Envelope, len(changes))
	for _, c := range changes {
		envs[rowKey{c.env.Tenant, c.env.ID}] = c.env
	}
	rows := make(map[string][][]any, len(cs.tables))
	for _, w := range written {
		e := envs[w.rowKey]
		if e == nil || isDelete(e) {
			continue
		}
		if err := cs.collect(root.Children, e.Tenant, e.ID, nil, e.Row, rows); err != nil {
			return err
		}
	}
	for _, t := range cs.tables {
		if len(rows[t.Name]) == 0 {
			continue
		}
		if err := copyRows(ctx, tx, t.Name, cs.layouts[t.Name].cols, pgx.CopyFromRows(rows[t.Name])); err != nil {
			return fmt.Errorf("copying %d child rows into %s: %w", len(rows[t.Name]), t.Name, err)
		}
	}
	return nil
}

// collect appends the rows of the child arrays of one (parent or child) row
// to rows, by table, recursively: an element at position i of an array in a
// row at position idx is at idx + [i].
func (cs *childSet) collect(children []schemas.Table, tenant, id string, idx []int32, row map[string]any, rows map[string][][]any) error {
	for _, ct := range children {
		elems, ok := row[ct.Field].([]any)
		if !ok && row[ct.Field] != nil {
			return &copyEncodeError{fmt.Errorf("%s of %s: child array is %T", ct.Field, id, row[ct.Field])}
		}
		l := cs.layouts[ct.Name]
		for i, el := range elems {
			sub, ok := el.(map[string]any)
			if !ok {
				return &copyEncodeError{fmt.Errorf("%s[%d] of %s: child row is %T", ct.Field, i, id, el)}
			}
			pos := append(append(make([]int32, 0, len(idx)+1), idx...), int32(i))
			vals, err := l.childValues(tenant, id, pos, sub)
			if err != nil {
				return &copyEncodeError{err}
			}
			rows[ct.Name] = append(rows[ct.Name], vals)
			if err := cs.collect(ct.Children, tenant, id, pos, sub, rows); err != nil {
				return err
			}
		}
	}
	return nil
}

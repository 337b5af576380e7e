package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/docshift/docshift/schemas"
)

// rowKey is the primary key of a target row.
type rowKey struct{ tenant, id string }

// stagingName is the temporary table a table's batches are copied into; it
// depends on the column list so that a table that grew gets a new one.
func stagingName(t schemas.Table) string {
	h := sha256.New()
	h.Write([]byte(t.Name))
	for _, c := range t.Columns {
		h.Write([]byte{0})
		h.Write([]byte(c.Name))
	}
	return "docshift_stage_" + hex.EncodeToString(h.Sum(nil)[:8])
}

// upsertSQL is the set-based merge of a staging table into its target: a row
// is written only if its version is newer than the stored one. It returns the
// keys of the rows it wrote, each with whether it was inserted (xmax = 0: no
// stored row was updated).
func upsertSQL(t schemas.Table) string {
	quoted := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		quoted[i] = schemas.QuoteIdent(c.Name)
	}
	var set []string
	for _, q := range quoted[2:] { // all but the key columns
		set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", q, q))
	}
	version := schemas.QuoteIdent(schemas.ColVersion)
	return fmt.Sprintf(`INSERT INTO %s AS t (%s) SELECT %s FROM %s
ON CONFLICT (%s, %s) DO UPDATE SET %s
WHERE t.%s < EXCLUDED.%s
RETURNING t.%s, t.%s, t.xmax = 0`,
		schemas.QuoteIdent(t.Name), strings.Join(quoted, ", "), strings.Join(quoted, ", "), schemas.QuoteIdent(stagingName(t)),
		quoted[0], quoted[1], strings.Join(set, ", "),
		version, version, quoted[0], quoted[1])
}

// writtenKey is a row the upsert wrote; inserted when no row of that key
// existed before (so it has no child rows to replace).
type writtenKey struct {
	rowKey
	inserted bool
}

// upsert copies the changes (at most one per key) into a staging table and
// merges them into the target with one statement that writes a row only if
// its version is newer than the stored one. A delete becomes a tombstone row
// (_deleted, data columns NULL) with the delete's version. It returns the
// keys of the rows written.
func upsert(ctx context.Context, tx pgx.Tx, l *layout, cs []change) ([]writtenKey, error) {
	t := l.table
	stage := stagingName(t)
	_, err := tx.Exec(ctx, fmt.Sprintf(
		"CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
		schemas.QuoteIdent(stage), schemas.QuoteIdent(t.Name)))
	if err != nil {
		return nil, fmt.Errorf("staging table for %s: %w", t.Name, err)
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(cs) {
			return nil, nil
		}
		i++
		return l.rowValues(cs[i-1].env)
	})
	if err := copyRows(ctx, tx, stage, l.cols, src); err != nil {
		return nil, fmt.Errorf("copying %d rows for %s: %w", len(cs), t.Name, err)
	}
	rows, err := tx.Query(ctx, upsertSQL(t))
	if err != nil {
		return nil, fmt.Errorf("upserting %d rows into %s: %w", len(cs), t.Name, err)
	}
	keys := make([]writtenKey, 0, len(cs))
	var k writtenKey
	_, err = pgx.ForEachRow(rows, []any{&k.tenant, &k.id, &k.inserted}, func() error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upserting %d rows into %s: %w", len(cs), t.Name, err)
	}
	return keys, nil
}

// copyRows copies rows into table. A row value pgx cannot encode (the client
// fails the COPY, not the server) is reported as a copyEncodeError, so the
// batch is bisected down to the record at fault.
func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, src pgx.CopyFromSource) error {
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, src); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && !retryable(err) {
			err = &copyEncodeError{err}
		}
		return err
	}
	return nil
}

// layout is how a table's rows are laid out for COPY: its column names and,
// per column, the encoder its values need.
type layout struct {
	table schemas.Table
	cols  []string
	enc   []pgEncoder
}

func newLayout(t schemas.Table) *layout {
	l := &layout{table: t, cols: make([]string, len(t.Columns)), enc: make([]pgEncoder, len(t.Columns))}
	for i, c := range t.Columns {
		l.cols[i] = c.Name
		l.enc[i] = encoderFor(c.Type)
	}
	return l
}

// isDelete reports whether an envelope deletes its document.
func isDelete(e *schemas.Envelope) bool { return e.Op == schemas.OpDelete || e.Row == nil }

// rowValues lays out a change as a row of a root table, in column order.
func (l *layout) rowValues(e *schemas.Envelope) ([]any, error) {
	vals := make([]any, len(l.cols))
	deleted := isDelete(e)
	for i, c := range l.table.Columns {
		switch c.Name {
		case schemas.ColTenant:
			vals[i] = e.Tenant
		case schemas.ColID:
			vals[i] = e.ID
		case schemas.ColVersion:
			vals[i] = e.Version
		case schemas.ColDeleted:
			vals[i] = deleted
		default:
			if deleted {
				continue
			}
			if err := l.set(vals, i, e.Row[c.Field]); err != nil {
				return nil, fmt.Errorf("%s.%s of %s: %w", l.table.Name, c.Name, e.ID, err)
			}
		}
	}
	return vals, nil
}

// childValues lays out one element of a child array as a row of a child
// table: the root document's tenant and id, the element's position path, its
// columns.
func (l *layout) childValues(tenant, id string, idx []int32, row map[string]any) ([]any, error) {
	vals := make([]any, len(l.cols))
	for i, c := range l.table.Columns {
		switch c.Name {
		case schemas.ColTenant:
			vals[i] = tenant
		case schemas.ColID:
			vals[i] = id
		case schemas.ColIdx:
			vals[i] = idx
		default:
			if err := l.set(vals, i, row[c.Field]); err != nil {
				return nil, fmt.Errorf("%s.%s of %s %v: %w", l.table.Name, c.Name, id, idx, err)
			}
		}
	}
	return vals, nil
}

// set stores a data column's value, encoded for pgx when its type needs it.
func (l *layout) set(vals []any, i int, v any) error {
	if l.enc[i] == nil || v == nil {
		vals[i] = v
		return nil
	}
	enc, err := l.enc[i](v)
	vals[i] = enc
	return err
}

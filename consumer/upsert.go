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
// keys of the rows it wrote.
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
RETURNING t.%s, t.%s`,
		schemas.QuoteIdent(t.Name), strings.Join(quoted, ", "), strings.Join(quoted, ", "), schemas.QuoteIdent(stagingName(t)),
		quoted[0], quoted[1], strings.Join(set, ", "),
		version, version, quoted[0], quoted[1])
}

// upsert copies the changes (at most one per key) into a staging table and
// merges them into the target with one statement that writes a row only if
// its version is newer than the stored one. A delete becomes a tombstone row
// (_deleted, data columns NULL) with the delete's version. It returns the
// keys of the rows written.
func upsert(ctx context.Context, tx pgx.Tx, t schemas.Table, cs []change) ([]rowKey, error) {
	stage := stagingName(t)
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
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
		return rowValues(t, cs[i-1].env), nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, cols, src); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && !retryable(err) {
			err = &copyEncodeError{err}
		}
		return nil, fmt.Errorf("copying %d rows for %s: %w", len(cs), t.Name, err)
	}
	rows, err := tx.Query(ctx, upsertSQL(t))
	if err != nil {
		return nil, fmt.Errorf("upserting %d rows into %s: %w", len(cs), t.Name, err)
	}
	keys := make([]rowKey, 0, len(cs))
	var k rowKey
	_, err = pgx.ForEachRow(rows, []any{&k.tenant, &k.id}, func() error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upserting %d rows into %s: %w", len(cs), t.Name, err)
	}
	return keys, nil
}

// rowValues lays out a change as a row of t, in column order.
func rowValues(t schemas.Table, e *schemas.Envelope) []any {
	vals := make([]any, len(t.Columns))
	deleted := e.Op == schemas.OpDelete || e.Row == nil
	for i, c := range t.Columns {
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
			if !deleted {
				vals[i] = e.Row[c.Field]
			}
		}
	}
	return vals
}

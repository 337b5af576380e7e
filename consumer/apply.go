package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
)

// change is one decoded record, ready to apply.
type change struct {
	env    *schemas.Envelope
	schema *schemas.Schema
	offset int64
}

// decode turns a partition's records into changes. Tombstones (nil values,
// written after a delete for compaction) carry nothing to apply.
func decode(ctx context.Context, reg *schemas.Registry, recs []*kgo.Record) ([]change, error) {
	out := make([]change, 0, len(recs))
	for _, r := range recs {
		if r.Value == nil {
			continue
		}
		env, s, err := reg.Decode(ctx, r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s/%d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, change{env: env, schema: s, offset: r.Offset})
	}
	return out, nil
}

// collapse keeps, per table and key, only the change with the highest version
// (the later offset on a tie), in first-seen order. Within one batch the
// database then sees each row once.
func collapse(changes []change) map[string][]change {
	type key struct{ table, tenant, id string }
	idx := map[key]int{}
	var kept []change
	for _, c := range changes {
		k := key{c.schema.Table.Name, c.env.Tenant, c.env.ID}
		if i, ok := idx[k]; ok {
			if c.env.Version >= kept[i].env.Version {
				kept[i] = c
			}
			continue
		}
		idx[k] = len(kept)
		kept = append(kept, c)
	}
	byTable := map[string][]change{}
	for _, c := range kept {
		byTable[c.schema.Table.Name] = append(byTable[c.schema.Table.Name], c)
	}
	return byTable
}

// applier writes batches of changes to the target in one transaction each.
type applier struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	ensured map[uint64]bool // schema fingerprints whose table is up to date
}

func newApplier(pool *pgxpool.Pool) *applier {
	return &applier{pool: pool, ensured: map[uint64]bool{}}
}

// apply writes the changes in one transaction. It returns nil only once the
// transaction has committed.
func (a *applier) apply(ctx context.Context, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	byTable := collapse(changes)
	for _, cs := range byTable {
		if err := a.ensureTable(ctx, cs[0].schema); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		for _, cs := range byTable {
			if err := upsert(ctx, tx, cs[0].schema.Table, cs); err != nil {
				return err
			}
		}
		return nil
	})
}

// ensureTable creates the table of a schema, or adds the columns it lacks,
// once per schema per process. Concurrent workers (and processes) serialize on
// an advisory lock, since concurrent CREATE TABLE IF NOT EXISTS can collide.
func (a *applier) ensureTable(ctx context.Context, s *schemas.Schema) error {
	a.mu.Lock()
	done := a.ensured[s.Fingerprint]
	a.mu.Unlock()
	if done {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("docshift.ddl." + s.Table.Name))
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
			return err
		}
		for _, stmt := range s.Table.DDL() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", firstLine(stmt), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", s.Table.Name, err)
	}
	a.mu.Lock()
	a.ensured[s.Fingerprint] = true
	a.mu.Unlock()
	return nil
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

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

// upsert copies the changes into a staging table and merges them into the
// target with one statement that writes a row only if its version is newer
// than the stored one. A delete becomes a tombstone row (_deleted, data
// columns NULL) with the delete's version.
func upsert(ctx context.Context, tx pgx.Tx, t schemas.Table, cs []change) error {
	stage := stagingName(t)
	cols := make([]string, len(t.Columns))
	quoted := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
		quoted[i] = schemas.QuoteIdent(c.Name)
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(
		"CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
		schemas.QuoteIdent(stage), schemas.QuoteIdent(t.Name)))
	if err != nil {
		return fmt.Errorf("staging table for %s: %w", t.Name, err)
	}
	rows := make([][]any, 0, len(cs))
	for _, c := range cs {
		rows = append(rows, rowValues(t, c.env))
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copying %d rows for %s: %w", len(rows), t.Name, err)
	}
	var set []string
	for _, q := range quoted[2:] { // all but the key columns
		set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", q, q))
	}
	target := schemas.QuoteIdent(t.Name)
	stmt := fmt.Sprintf(`INSERT INTO %s AS t (%s) SELECT %s FROM %s
ON CONFLICT (%s, %s) DO UPDATE SET %s
WHERE t.%s < EXCLUDED.%s`,
		target, strings.Join(quoted, ", "), strings.Join(quoted, ", "), schemas.QuoteIdent(stage),
		quoted[0], quoted[1], strings.Join(set, ", "),
		schemas.QuoteIdent(schemas.ColVersion), schemas.QuoteIdent(schemas.ColVersion))
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("upserting %d rows into %s: %w", len(rows), t.Name, err)
	}
	return nil
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

package consumer

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/docshift/docshift/schemas"
)

// fenceTable records, per table and snapshot run start, which partitions'
// fences the sink has passed; partition -1 marks the fence as applied.
const fenceTable = "docshift_fences"

// fenceAt is a fence read from one partition.
type fenceAt struct {
	fence     *schemas.Fence
	topic     string
	partition int32
}

// applyFence records that a partition passed a snapshot fence. The last
// partition to pass it (across every consumer of the group: fences
// serialize on one advisory lock) marks deleted every row of the table older than the
// run's start, which the run therefore did not see, and removes the
// children of deleted rows. It returns the number of rows it marked.
func (a *applier) applyFence(ctx context.Context, f fenceAt) (int64, error) {
	// One lock for every fence: they are rare, and creating the fence table
	// concurrently (two tables' fences at once) would collide.
	h := fnv.New64a()
	h.Write([]byte("docshift.fences"))
	var marked int64
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+fenceTable+` (
  tbl text NOT NULL, version bigint NOT NULL, part integer NOT NULL, topic text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tbl, version, part))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+fenceTable+` (tbl, version, part, topic) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			f.fence.Table, f.fence.Version, f.partition, f.topic); err != nil {
			return err
		}
		var passed, applied int
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE part >= 0), count(*) FILTER (WHERE part = -1) FROM `+fenceTable+` WHERE tbl = $1 AND version = $2`,
			f.fence.Table, f.fence.Version).Scan(&passed, &applied); err != nil {
			return err
		}
		if passed < f.fence.Partitions || applied > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schemas.QuoteIdent(f.fence.Table)).Scan(&exists); err != nil {
			return err
		}
		if exists {
			tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = true, %s = $1 WHERE %s < $1 AND NOT %s`,
				schemas.QuoteIdent(f.fence.Table), schemas.QuoteIdent(schemas.ColDeleted), schemas.QuoteIdent(schemas.ColVersion),
				schemas.QuoteIdent(schemas.ColVersion), schemas.QuoteIdent(schemas.ColDeleted)), f.fence.Version)
			if err != nil {
				return fmt.Errorf("applying the snapshot fence of %s: %w", f.fence.Table, err)
			}
			marked = tag.RowsAffected()
			for _, child := range f.fence.Children {
				if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schemas.QuoteIdent(child)).Scan(&exists); err != nil || !exists {
					continue
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s c USING %s p WHERE p.%s = c.%s AND p.%s = c.%s AND p.%s`,
					schemas.QuoteIdent(child), schemas.QuoteIdent(f.fence.Table),
					schemas.QuoteIdent(schemas.ColTenant), schemas.QuoteIdent(schemas.ColTenant),
					schemas.QuoteIdent(schemas.ColID), schemas.QuoteIdent(schemas.ColID), schemas.QuoteIdent(schemas.ColDeleted))); err != nil {
					return fmt.Errorf("applying the snapshot fence of %s to %s: %w", f.fence.Table, child, err)
				}
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+fenceTable+` (tbl, version, part, topic) VALUES ($1, $2, -1, $3)`,
			f.fence.Table, f.fence.Version, f.topic)
		return err
	})
	return marked, err
}

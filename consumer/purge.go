package consumer

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/schemas"
)

// Tombstone purging.
//
// A delete is stored as a tombstone row (_deleted, with the delete's version)
// so that an older record of the same document, still on its way, cannot
// bring it back. Older records come from two places: snapshot chunks read
// before the delete (their version is the cluster time taken before the chunk
// was read) and change events still in flight in Kafka. So a tombstone may go
// once every snapshot chunk that could carry an older row is finished and
// every change older than it has been applied.
//
// The consumer cannot see the snapshot's progress, so the policy is a time
// bound: a tombstone whose version's cluster time is older than now minus
// --tombstone-retention is deleted. The retention must exceed the longest
// snapshot run plus the longest consumer lag; the default, 7 days, matches the
// records topics' minimum compaction lag. A replay from offset 0 after a
// purge is still right: within one partition the delete comes after the
// older records of its key, in offset order.
const purgeChunk = 10000

// purgeLoop purges tombstones every PurgeInterval until ctx ends.
func (c *Consumer) purgeLoop(ctx context.Context) {
	tick := time.NewTicker(c.cfg.PurgeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, table := range c.applier.tableNames() {
			n, err := c.applier.purge(ctx, table, time.Now().Add(-c.cfg.TombstoneRetention))
			c.metrics.purged.WithLabelValues(table).Add(float64(n))
			if err != nil && ctx.Err() == nil {
				c.log.Warn("purging tombstones", "table", table, "err", err)
			}
		}
	}
}

// purge deletes the tombstones of table whose version's cluster time is
// before cutoff, in chunks, and returns how many it deleted. The conditions
// are checked again on the row being deleted, so a newer version written
// meanwhile is never purged.
func (a *applier) purge(ctx context.Context, table string, cutoff time.Time) (int64, error) {
	version := schemas.Version(bson.Timestamp{T: uint32(cutoff.Unix())})
	q := schemas.QuoteIdent(table)
	stmt := fmt.Sprintf(`DELETE FROM %[1]s WHERE (_tenant, _id) IN (
  SELECT _tenant, _id FROM %[1]s WHERE _deleted AND _version < $1 LIMIT %[2]d)
AND _deleted AND _version < $1`, q, purgeChunk)
	var total int64
	for {
		tag, err := a.pool.Exec(ctx, stmt, version)
		if err != nil {
			return total, fmt.Errorf("purging tombstones of %s: %w", table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeChunk {
			return total, nil
		}
	}
}

package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
)

// applyRecords applies one partition batch: it decodes the records, collapses
// them per key, and writes them in one transaction. A transient error (of the
// database, or of the schema topic) is retried with backoff. When the database
// rejects the batch's data, the batch is split in halves until the records at
// fault are isolated; those, and the records that do not decode, go to the
// dead-letter topic, acknowledged before applyRecords returns. It returns the
// number of rows written (records older than the stored row write nothing).
func (c *Consumer) applyRecords(ctx context.Context, recs []*kgo.Record) (int, error) {
	changes := make([]change, 0, len(recs))
	var poison []deadLetter
	var fences []fenceAt
	for _, r := range recs {
		if r.Attrs.IsControl() || r.Value == nil {
			continue // transaction markers; compaction tombstones follow a delete and carry nothing
		}
		if f, ok, err := schemas.ParseFence(r); ok {
			if err != nil {
				poison = append(poison, deadLetter{rec: r, err: fmt.Errorf("%w: %w", ErrPoison, err)})
			} else {
				fences = append(fences, fenceAt{fence: f, topic: r.Topic, partition: r.Partition})
			}
			continue
		}
		var ch change
		err := c.retry(ctx, "reading the schema topic", func() error {
			var err error
			ch, err = decode(ctx, c.registry, c.decoders, r)
			return err
		}, func(err error) bool { return !errors.Is(err, ErrPoison) })
		if errors.Is(err, ErrPoison) {
			poison = append(poison, deadLetter{rec: r, err: err})
			continue
		}
		if err != nil {
			return 0, err
		}
		changes = append(changes, ch)
	}
	written, bad, err := c.applyIsolating(ctx, collapse(changes))
	if err != nil {
		return 0, err
	}
	// A fence follows every snapshot row of its partition: the rows before
	// it in this batch are applied now, so it may be passed.
	for _, f := range fences {
		var marked int64
		if err := c.retry(ctx, "applying a snapshot fence", func() error {
			var err error
			marked, err = c.applier.applyFence(ctx, f)
			return err
		}, retryable); err != nil {
			return 0, err
		}
		if marked > 0 {
			c.log.Info("snapshot fence passed: rows the snapshot did not see are marked deleted",
				"table", f.fence.Table, "run", f.fence.Run, "rows", marked)
		}
	}
	poison = append(poison, bad...)
	if len(poison) == 0 {
		return written, nil
	}
	if c.dlq == nil {
		return 0, poison[0].err
	}
	if err := c.dlq.send(ctx, poison); err != nil {
		return 0, err
	}
	for _, p := range poison {
		c.metrics.dlq.WithLabelValues(p.rec.Topic).Inc()
		c.log.Warn("record sent to the dead-letter topic", "dlq", c.dlq.topic,
			"topic", p.rec.Topic, "partition", p.rec.Partition, "offset", p.rec.Offset, "err", p.err)
	}
	return written, nil
}

// applyIsolating applies changes in one transaction, retrying transient
// errors. If the database rejects the data, it bisects: each half is applied
// on its own, down to the single changes that fail, which it returns as dead
// letters. Any other error is returned.
func (c *Consumer) applyIsolating(ctx context.Context, changes []change) (int, []deadLetter, error) {
	if len(changes) == 0 {
		return 0, nil, nil
	}
	var written int
	err := c.retry(ctx, "applying to the database", func() error {
		var err error
		written, err = c.applier.apply(ctx, changes)
		return err
	}, retryable)
	if err == nil || !dataRejected(err) {
		return written, nil, err
	}
	if len(changes) == 1 {
		return 0, []deadLetter{{rec: changes[0].rec, err: fmt.Errorf("%w: %w", ErrPoison, err)}}, nil
	}
	mid := len(changes) / 2
	w1, bad1, err := c.applyIsolating(ctx, changes[:mid])
	if err != nil {
		return 0, nil, err
	}
	w2, bad2, err := c.applyIsolating(ctx, changes[mid:])
	if err != nil {
		return 0, nil, err
	}
	return w1 + w2, append(bad1, bad2...), nil
}

// retry calls fn until it succeeds, fails with an error transient does not
// accept, or ctx ends; the waits double from RetryBackoff to RetryBackoffMax.
// Nothing is committed meanwhile, so a retry never skips a record.
func (c *Consumer) retry(ctx context.Context, what string, fn func() error, transient func(error) bool) error {
	backoff := c.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		c.metrics.retries.Inc()
		c.log.Warn("transient error, retrying", "while", what, "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, c.cfg.RetryBackoffMax)
	}
}

// applier writes batches of changes to the target in one transaction each.
type applier struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	ensured map[uint64]*tablePlan // by schema fingerprint: tables up to date, and how to write them
	tables  map[string]struct{}   // tables written by this process (for tombstone purges)
}

// tablePlan is how the rows of one schema are written: the root table's
// layout and its child tables.
type tablePlan struct {
	root     *layout
	children *childSet
}

func newApplier(pool *pgxpool.Pool) *applier {
	return &applier{pool: pool, ensured: map[uint64]*tablePlan{}, tables: map[string]struct{}{}}
}

// apply writes collapsed changes (at most one per key) in one transaction
// and returns the number of rows written. It returns nil only once the
// transaction has committed.
func (a *applier) apply(ctx context.Context, changes []change) (int, error) {
	byTable := map[string][]change{}
	var order []string
	for _, c := range changes {
		name := c.schema.Table.Name
		if _, ok := byTable[name]; !ok {
			order = append(order, name)
		}
		byTable[name] = append(byTable[name], c)
	}
	plans := make([]*tablePlan, len(order))
	for i, name := range order {
		var err error
		if plans[i], err = a.ensureTable(ctx, byTable[name][0].schema); err != nil {
			return 0, err
		}
	}
	written := 0
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		written = 0
		for i, name := range order {
			cs, p := byTable[name], plans[i]
			keys, err := upsert(ctx, tx, p.root, cs)
			if err != nil {
				return err
			}
			// Child rows are replaced for exactly the parents the upsert
			// wrote, in this same transaction: a stale parent record leaves
			// the newer children alone.
			if err := p.children.replaceChildren(ctx, tx, p.root.table, cs, keys); err != nil {
				return err
			}
			written += len(keys)
		}
		return nil
	})
	return written, err
}

// ensureTable creates the table of a schema and its child tables, or adds the
// columns they lack, once per schema per process, and returns how to write
// them. Concurrent workers (and processes) serialize on an advisory lock,
// since concurrent CREATE TABLE IF NOT EXISTS can collide.
func (a *applier) ensureTable(ctx context.Context, s *schemas.Schema) (*tablePlan, error) {
	a.mu.Lock()
	plan := a.ensured[s.Fingerprint]
	a.mu.Unlock()
	if plan != nil {
		return plan, nil
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
		return nil, fmt.Errorf("creating table %s: %w", s.Table.Name, err)
	}
	plan = &tablePlan{root: newLayout(s.Table), children: newChildSet(s.Table)}
	a.mu.Lock()
	a.ensured[s.Fingerprint] = plan
	a.tables[s.Table.Name] = struct{}{}
	a.mu.Unlock()
	return plan, nil
}

// tableNames returns the tables this process has written to.
func (a *applier) tableNames() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.tables))
	for t := range a.tables {
		out = append(out, t)
	}
	return out
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/topic"
)

// orphanPoll is how often the planning process looks for workers that left
// the group with a transaction open.
const orphanPoll = 2 * time.Second

// orphanReaper ends the transactions that workers of a process killed for
// good leave open. Such a transaction holds the state topic (and the
// records topics) back from every read-committed reader until its timeout
// (--txn-timeout, a minute): no process sees the chunks done after it,
// and the run cannot complete. A process restarted with the same worker id
// ends its own workers' transactions as it starts; for one that does not
// come back, the planning process watches the workers' group and, once a
// worker it has seen is no longer a member (its session timed out) and
// its transaction is still open, takes over its transactional id (its
// instance id), which aborts that transaction. A worker that is still
// alive after losing its membership is a zombie: its chunk would be
// aborted anyway, and taking over its id makes it fail with ErrFenced
// instead of writing.
type orphanReaper struct {
	admin  *kadm.Client
	group  string
	topics topic.Config
	log    *slog.Logger
	seen   map[string]bool // instance ids of the workers seen in the group
}

func newOrphanReaper(cl *kgo.Client, tc topic.Config, log *slog.Logger) *orphanReaper {
	return &orphanReaper{admin: kadm.NewClient(cl), group: tc.SnapshotGroup(), topics: tc, log: log, seen: map[string]bool{}}
}

// run checks every orphanPoll until ctx is done.
func (o *orphanReaper) run(ctx context.Context) {
	tick := time.NewTicker(orphanPoll)
	defer tick.Stop()
	for {
		if err := o.check(ctx); err != nil && ctx.Err() == nil {
			o.log.Debug("looking for transactions left open by departed snapshot workers", "err", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// check takes over the transactional ids of the workers seen before that
// are no longer members of the group and have a transaction open.
func (o *orphanReaper) check(ctx context.Context) error {
	dg, err := o.admin.DescribeGroups(ctx, o.group)
	if err != nil {
		return err
	}
	d, ok := dg[o.group]
	if !ok || d.Err != nil {
		return d.Err
	}
	members := make(map[string]bool, len(d.Members))
	for _, m := range d.Members {
		if m.InstanceID != nil {
			members[*m.InstanceID] = true
			o.seen[*m.InstanceID] = true
		}
	}
	var gone []string
	for id := range o.seen {
		if !members[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	txns, err := o.admin.DescribeTransactions(ctx, gone...)
	if err != nil {
		return err
	}
	for _, id := range gone {
		t, ok := txns[id]
		if !ok || t.Err != nil || t.State != "Ongoing" {
			// Ended, or never begun: nothing to do unless it comes back.
			delete(o.seen, id)
			continue
		}
		// Said first: the abort lets the run complete, and this process
		// may be stopping by the time the takeover returns.
		o.log.Info("a snapshot worker left the group with its transaction open; aborting it, its chunk will be read again",
			"worker", id, "open_seconds", time.Since(time.UnixMilli(t.StartTimestamp)).Seconds())
		if err := o.takeOver(ctx, id); err != nil {
			if ctx.Err() == nil {
				o.log.Warn("could not abort the open transaction of a departed snapshot worker; it ends at its timeout",
					"worker", id, "timeout_seconds", t.TimeoutMillis/1000, "err", err)
			}
			return err
		}
		delete(o.seen, id)
	}
	return nil
}

// takeOver registers id as this process's transactional id for a moment:
// the broker aborts the transaction the id's last holder left open.
func (o *orphanReaper) takeOver(ctx context.Context, id string) error {
	cl, err := topic.NewClient(ctx, o.topics, o.log, kgo.TransactionalID(id))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := topic.TakeTransactionalID(ctx, cl); err != nil {
		return fmt.Errorf("taking over the transactional id %s: %w", id, err)
	}
	return nil
}

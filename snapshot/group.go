package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// settleMax bounds the wait for the workers' group to settle before the
// first chunk: past it, workers read anyway (a rebalance then costs the
// chunks it aborts, nothing more). It is the workers' session timeout: a
// broker delays the first rebalance of a new group (3 s by default, its
// group.initial.rebalance.delay.ms), and a member silent for longer than
// the session timeout is not waited for by the group either.
const settleMax = WorkerSessionTimeout

// settlePoll is how often the group is described while it forms.
const settlePoll = 25 * time.Millisecond

// groupSettler tells when the snapshot workers' consumer group has settled:
// it is stable, every worker of this process is a member, and every task
// partition is assigned. A chunk read while the group still forms is
// aborted by the rebalance that completes it and read again (measured: a
// new group of four workers joining in two generations aborted three of the
// ten chunks of a 200k-document collection), so workers wait for it before
// their first task, a chunk to read or a task to skip. It is watched from
// the moment the workers join, while the collections are planned.
type groupSettler struct {
	admin   *kadm.Client
	group   string
	topic   string          // the task topic
	members func() []string // the member ids of this process's workers ("" before joining)
	log     *slog.Logger

	max     time.Duration // the longest wait (settleMax)
	done    chan struct{} // closed by run
	settled bool          // whether it did, once done is closed
	size    int           // the members of the settled group (of every process)
}

func newGroupSettler(cl *kgo.Client, group, topic string, members func() []string, log *slog.Logger) *groupSettler {
	return &groupSettler{admin: kadm.NewClient(cl), group: group, topic: topic, members: members, log: log,
		max: settleMax, done: make(chan struct{})}
}

// wait returns once the group has settled or run has given up on it, or
// with ctx.Err() when ctx is done first.
func (g *groupSettler) wait(ctx context.Context) error {
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run describes the group until it has settled, settleMax has passed or ctx
// is done, and then releases every wait.
func (g *groupSettler) run(ctx context.Context) {
	defer close(g.done)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, g.max)
	defer cancel()
	partitions := 0
	var why error // why the last look found the group unsettled, when a request failed
	for {
		if partitions == 0 {
			td, err := g.admin.ListTopics(wctx, g.topic)
			if err == nil {
				err = td.Error()
			}
			partitions, why = len(td[g.topic].Partitions), err
		}
		if partitions > 0 {
			if g.size, why = g.stable(wctx, partitions); g.size > 0 {
				g.settled = true
				g.log.Debug("snapshot workers' group settled", "group", g.group, "members", g.size, "waited_seconds", time.Since(start).Seconds())
				return
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() == nil { // not shutting down: say so, the first chunks may be read twice
				g.log.Info("snapshot workers' group did not settle; reading anyway", "group", g.group,
					"waited_seconds", time.Since(start).Seconds(), "last_error", why)
			}
			return
		case <-time.After(settlePoll):
		}
	}
}

// stable returns the number of members of the group if it is stable with
// every local worker a member and all partitions of the task topic
// assigned, and else 0, with the error that kept it from telling.
func (g *groupSettler) stable(ctx context.Context, partitions int) (int, error) {
	dg, err := g.admin.DescribeGroups(ctx, g.group)
	if err != nil {
		return 0, err
	}
	d, ok := dg[g.group]
	if !ok {
		return 0, nil
	}
	if d.Err != nil {
		return 0, d.Err
	}
	if d.State != "Stable" {
		return 0, nil
	}
	in := make(map[string]bool, len(d.Members))
	for _, m := range d.Members {
		in[m.MemberID] = true
	}
	for _, id := range g.members() {
		if !in[id] {
			return 0, nil
		}
	}
	if len(d.AssignedPartitions()[g.topic]) != partitions {
		return 0, nil
	}
	return len(d.Members), nil
}

// leaveGroup takes the process's stopped workers out of their group. Static
// members send no leave of their own when they close, so that a restart can
// take their places; a process that stops on purpose leaves, so that their
// tasks move to the other processes' workers at once rather than after the
// session timeout.
func leaveGroup(ctx context.Context, admin *kgo.Client, group string, workers []*worker, log *slog.Logger) {
	if len(workers) == 0 {
		return
	}
	ids := make([]string, len(workers))
	for i, w := range workers {
		ids[i] = w.name
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(admin).LeaveGroup(lctx, kadm.LeaveGroup(group).InstanceIDs(ids...).Reason("snapshot process stopped"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.GroupIDNotFound) { // never joined
		log.Warn("the snapshot workers could not leave their group; their tasks move to other workers after the session timeout",
			"group", group, "session_timeout", WorkerSessionTimeout, "err", err)
	}
}

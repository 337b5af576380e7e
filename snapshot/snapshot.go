package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// Snapshot runs one snapshot process: unless it is a worker only, it plans
// the chunks of every mapped collection and publishes them as tasks; it runs
// cfg.Workers chunk readers; and it waits until every chunk of the run is
// done, reporting progress.
type Snapshot struct {
	cfg      Config
	mapping  *schemas.Mapping
	mongo    *mongo.Client
	topics   topic.Config
	log      *slog.Logger
	reg      prometheus.Registerer
	progress io.Writer

	namespaces []schemas.Namespace // the mapped collections, patterns expanded (set by prepare)
}

// New returns a snapshot process. Metrics are registered on reg (nil: none);
// progress is written to progress (nil: none), redrawn in place when it is a
// terminal and logged every few seconds otherwise.
func New(cfg Config, m *schemas.Mapping, mc *mongo.Client, tc topic.Config, log *slog.Logger,
	reg prometheus.Registerer, progress io.Writer) *Snapshot {
	return &Snapshot{cfg: cfg, mapping: m, mongo: mc, topics: tc, log: log, reg: reg, progress: progress}
}

// CollectionStats is what the current run did for one collection, as
// recorded in the state topic (by every process of the run).
type CollectionStats struct {
	Source    string // database.collection
	Topic     string
	Documents int64
	Chunks    int
	Elapsed   time.Duration // since the run started
}

// Run takes part in the current snapshot run (starting one if there is none,
// if cfg.Restart, or if it started before cfg.RestartBefore) until every
// chunk of it is done. It returns ctx.Err() if
// ctx is cancelled, after its workers have aborted their open transactions;
// the chunks they were reading are read again by the next run of any
// snapshot process. It returns what the run recorded per collection.
func (s *Snapshot) Run(ctx context.Context) ([]CollectionStats, error) {
	if s.cfg.GCPercent > 0 && os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(s.cfg.GCPercent))
	}
	admin, err := topic.NewClient(ctx, s.topics, s.log)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	tasks := func(ctx context.Context, cl *kgo.Client, tc topic.Config) error {
		return topic.EnsureSnapshotTasks(ctx, cl, tc, s.cfg.TaskPartitions)
	}
	if err := topic.EnsureAll(ctx, admin, s.topics, topic.EnsureSchemas, topic.EnsureState, tasks, topic.EnsureDLQ); err != nil {
		return nil, err
	}

	f, err := newFollower(ctx, s.topics, s.log)
	if err != nil {
		return nil, err
	}
	defer f.close()
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	go f.run(fctx)

	m, err := newMetrics(s.reg, f)
	if err != nil {
		return nil, fmt.Errorf("registering snapshot metrics: %w", err)
	}
	registry, err := schemas.OpenRegistry(admin, s.topics.Schemas(), s.topics.RegistryURLs())
	if err != nil {
		return nil, err
	}
	sh := &shared{cfg: s.cfg, mapping: s.mapping, mongo: s.mongo, topics: s.topics,
		registry: registry, follower: f, metrics: m, log: s.log,
		conflicts: schemas.NewConflictReporter(s.log, s.reg),
		schemas:   map[string]*schemas.Schema{}, run: make(chan struct{})}
	if s.cfg.WorkerOnly {
		close(sh.run)
	}

	// The workers join their group while the collections are planned: a
	// task waits in handle until the follower has read its run, so a worker
	// never reads ahead of the recorded state, and until the group has
	// settled (see groupSettler), which is watched from the moment the
	// workers join. Made at once, the workers join at once: a member
	// joining a moment after the group formed costs it another rebalance.
	workers, err := newWorkers(ctx, sh)
	if err != nil {
		return nil, err
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	werr := make(chan error, s.cfg.Workers)
	defer func() {
		stopWorkers()
		wg.Wait()
		leaveGroup(ctx, admin, s.topics.SnapshotGroup(), workers, s.log)
	}()
	sh.group = newGroupSettler(admin, s.topics.SnapshotGroup(), s.topics.SnapshotTasks(), func() []string {
		ids := make([]string, len(workers))
		for i, w := range workers {
			ids[i] = w.memberID()
		}
		return ids
	}, s.log)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(wctx); err != nil && wctx.Err() == nil {
				werr <- err
			}
		}()
	}
	if len(workers) > 0 { // --workers 0 plans and watches: no group to wait for
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.group.run(wctx)
		}()
	}
	if !s.cfg.WorkerOnly {
		reaper := newOrphanReaper(admin, s.topics, s.log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			reaper.run(wctx)
		}()
	}

	var planner *kgo.Client
	if !s.cfg.WorkerOnly {
		planner, err = topic.NewClient(ctx, s.topics, s.log,
			kgo.TransactionalID(fmt.Sprintf("%s-snapshot-%s-plan", s.topics.Prefix, s.cfg.WorkerID)),
			kgo.TransactionTimeout(s.cfg.TxnTimeout),
			// Every record it writes names its partition: the state topic's
			// only one, tasks spread evenly, fences one per partition.
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return nil, err
		}
		defer planner.Close()
		if err := topic.TakeTransactionalID(ctx, planner); err != nil {
			return nil, fmt.Errorf("snapshot planner: %w", err)
		}
		if err := s.prepare(ctx, sh, planner); err != nil {
			return nil, err
		}
	}

	st, err := s.watch(ctx, f, planner, werr)
	if err != nil {
		return nil, err
	}
	return stats(st), nil
}

// prepare makes sure the current run exists and every mapped collection is
// planned in it: a collection's plan and its tasks are written in one
// transaction, so a crash leaves either both or neither.
func (s *Snapshot) prepare(ctx context.Context, sh *shared, planner *kgo.Client) error {
	st, err := sh.follower.sync(ctx)
	if err != nil {
		return err
	}
	nss, err := s.mapping.Namespaces(ctx, s.mongo, nil)
	if err != nil {
		return err
	}
	s.namespaces = nss
	newRun := s.cfg.Restart || st.Run == 0 || st.StartVersion < s.cfg.RestartBefore
	// The collections without a plan (every one, in a new run) are planned
	// while the run is recorded and their topics and schemas are made ready.
	var todo []*schemas.Collection
	for _, n := range nss {
		if c := s.mapping.Lookup(n); newRun || st.Plans[c.Source.String()] == nil {
			todo = append(todo, c)
		}
	}
	pctx, stopPlanning := context.WithCancel(ctx)
	defer stopPlanning()
	ahead := s.planAhead(pctx, todo)
	if newRun {
		run := st.Run + 1
		s.enablePreImages(ctx, nss)
		start, err := source.ClusterTimeAfter(ctx, s.mongo, time.Now())
		if err != nil {
			return fmt.Errorf("starting snapshot run %d: %w", run, err)
		}
		b, _ := jsonMarshal(runRecord{Run: run, Started: time.Now().UTC(), StartVersion: schemas.Version(start)})
		if err := transact(ctx, planner, &kgo.Record{Topic: s.topics.State(), Key: runKey(), Value: b}); err != nil {
			return fmt.Errorf("recording snapshot run %d: %w", run, err)
		}
		s.log.Info("snapshot run started", "run", run, "restart", s.cfg.Restart)
		if st, err = sh.follower.waitFor(ctx, func(st *State) bool { return st.Run == run }); err != nil {
			return err
		}
	} else {
		s.log.Info("resuming snapshot run", "run", st.Run, "chunks_done", len(st.Done))
	}
	close(sh.run)
	// Every records topic in one request: made one at a time, each costs a
	// round of the controller (about 40 ms), seconds for many collections.
	recTopics := make([]string, len(nss))
	for i, n := range nss {
		recTopics[i] = s.topics.Records(n.Database, n.Collection)
	}
	if err := topic.EnsureRecords(ctx, planner, s.topics, recTopics...); err != nil {
		return err
	}
	taskParts, err := partitionCount(ctx, planner, s.topics.SnapshotTasks())
	if err != nil {
		return err
	}
	// The plans ready at the same moment go out in one transaction (a
	// collection's plan always with its tasks): one transaction each costs
	// about 15 ms, seconds for many small collections.
	var (
		pending []*kgo.Record // the plans' and their tasks' records
		plans   []Plan        // the plans in pending
		dealt   int           // the run's tasks published so far, to spread the next ones
		cycle   int           // the task partitions they are dealt over (dealCycle)
	)
	publish := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := transact(ctx, planner, pending...); err != nil {
			names := make([]string, len(plans))
			for i, p := range plans {
				names[i] = p.Namespace
			}
			return fmt.Errorf("publishing the plans of %s: %w", strings.Join(names, ", "), err)
		}
		for _, p := range plans {
			s.log.Info("planned", "collection", p.Namespace, "documents", p.Documents, "chunks", len(p.Chunks), "run", p.Run)
		}
		pending, plans = nil, nil
		return nil
	}
	for i, n := range nss {
		c := s.mapping.Lookup(n)
		ns := c.Source.String()
		recTopic := recTopics[i]
		if _, err := sh.schema(ctx, c); err != nil {
			return err
		}
		if _, ok := st.Plans[ns]; ok {
			continue
		}
		var outcome plannedCollection // in todo: a new run has no plans, a resumed one the same as then
		select {
		case outcome = <-ahead[ns]:
		default: // still being planned: publish what is ready meanwhile
			if err := publish(); err != nil {
				return err
			}
			select {
			case outcome = <-ahead[ns]:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		count, size, chunks := outcome.count, outcome.size, outcome.chunks
		if outcome.err != nil {
			return outcome.err
		}
		p := Plan{Run: st.Run, Namespace: ns, Topic: recTopic, Documents: count, Bytes: size,
			Chunks: chunks, PlannedAt: time.Now().UTC()}
		b, err := jsonMarshal(p)
		if err != nil {
			return fmt.Errorf("recording the plan of %s: %w", ns, err)
		}
		if cycle == 0 {
			if cycle, err = s.dealCycle(ctx, sh, taskParts); err != nil {
				return err
			}
		}
		pending = append(pending, &kgo.Record{Topic: s.topics.State(), Key: planKey(st.Run, ns), Value: b})
		if !st.Complete.IsZero() { // a collection joins a finished run: reopen it
			pending = append(pending, &kgo.Record{Topic: s.topics.State(), Key: completeKey(st.Run)})
			st.Complete = time.Time{}
		}
		for i, ch := range chunks {
			tb, err := jsonMarshal(task{Run: st.Run, Chunk: ch})
			if err != nil {
				return fmt.Errorf("publishing the tasks of %s: %w", ns, err)
			}
			// Dealt to the workers in turn (see spreadBalancer), across
			// collections too: many one-chunk collections reach every worker.
			pending = append(pending, &kgo.Record{Topic: s.topics.SnapshotTasks(), Key: []byte(ch.ID()), Value: tb,
				Partition: int32((dealt + i) % cycle)})
		}
		dealt += len(chunks)
		plans = append(plans, p)
		if len(pending) >= maxPlanRecords {
			if err := publish(); err != nil {
				return err
			}
		}
	}
	if err := publish(); err != nil {
		return err
	}
	_, err = sh.follower.waitFor(ctx, s.allPlanned)
	return err
}

// dealCycle returns over how many task partitions, from the first, the
// planner deals a run's tasks: partition p goes to the (p mod n)-th of the n
// workers of the group (see spreadBalancer), so the largest multiple of n
// gives each worker as many tasks as the next, give or take one. A process
// with workers waits for their group to settle (its workers wait for it
// before their first task anyway) and counts its members, of every process;
// without workers, or with more workers than partitions, it is every
// partition.
func (s *Snapshot) dealCycle(ctx context.Context, sh *shared, partitions int) (int, error) {
	if s.cfg.Workers == 0 {
		return partitions, nil
	}
	if err := sh.group.wait(ctx); err != nil {
		return 0, err
	}
	return cycleFor(partitions, sh.group.size), nil
}

// cycleFor is the largest multiple of the members that is at most the
// partitions (every partition when the members are unknown or more).
func cycleFor(partitions, members int) int {
	if members > 0 && members <= partitions {
		return partitions / members * members
	}
	return partitions
}

// maxPlanRecords bounds the plan and task records of one transaction
// (several collections' plans; a larger collection's alone).
const maxPlanRecords = 10000

// plannedCollection is the outcome of plan for one collection.
type plannedCollection struct {
	count, size int64
	chunks      []Chunk
	err         error
}

// planAhead plans the collections one after another in the background,
// and returns where each outcome will be: a channel per collection, keyed
// by its source, that receives its one outcome.
func (s *Snapshot) planAhead(ctx context.Context, colls []*schemas.Collection) map[string]chan plannedCollection {
	out := make(map[string]chan plannedCollection, len(colls))
	for _, c := range colls {
		out[c.Source.String()] = make(chan plannedCollection, 1)
	}
	go func() {
		for _, c := range colls {
			var p plannedCollection
			coll := s.mongo.Database(c.Source.Database).Collection(c.Source.Collection)
			p.count, p.size, p.chunks, p.err = plan(ctx, coll, c.Source.String(), s.cfg)
			out[c.Source.String()] <- p
			if p.err != nil || ctx.Err() != nil {
				return
			}
		}
	}()
	return out
}

// partitionCount returns the number of partitions of a topic.
func partitionCount(ctx context.Context, cl *kgo.Client, name string) (int, error) {
	td, err := kadm.NewClient(cl).ListTopics(ctx, name)
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("reading the partitions of %s: %w", name, err)
	}
	return len(td[name].Partitions), nil
}

// fences returns the fence records of a complete run: one per partition of
// every records topic of the run, after every record of the run. A sink that
// has read them all marks deleted the rows the run did not see (see
// schemas.Fence).
func (s *Snapshot) fences(ctx context.Context, cl *kgo.Client, st *State) ([]*kgo.Record, error) {
	if st.StartVersion == 0 {
		return nil, nil // a run recorded without its start: nothing to fence with
	}
	var out []*kgo.Record
	for ns, p := range st.Plans {
		n, err := schemas.ParseNamespace(ns)
		if err != nil {
			return nil, err
		}
		c := s.mapping.Lookup(n)
		if c == nil {
			continue
		}
		parts, err := partitionCount(ctx, cl, p.Topic)
		if err != nil {
			return nil, err
		}
		t := c.TargetTable()
		f := schemas.Fence{Source: ns, Table: t.Name, Version: st.StartVersion, Run: st.Run}
		for _, ch := range t.All()[1:] {
			f.Children = append(f.Children, ch.Name)
		}
		recs, err := schemas.FenceRecords(p.Topic, parts, f)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// enablePreImages turns on pre-images for the collections whose tenant is a
// document field, before the run's start is taken: every delete after the
// start then carries its document, whose tenant the change-stream producer
// needs. Without the privilege it warns; the producer reports such deletes.
func (s *Snapshot) enablePreImages(ctx context.Context, nss []schemas.Namespace) {
	for _, ns := range nss {
		if c := s.mapping.Lookup(ns); c == nil || c.Tenant.Field == "" {
			continue
		}
		if err := source.EnablePreImages(ctx, s.mongo, ns.Database, ns.Collection); err != nil {
			s.log.Warn("could not enable pre-images; deletes need them to find their tenant", "err", err)
		}
	}
}

// transact writes recs in one transaction of the transactional client cl.
func transact(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	err := cl.ProduceSync(ctx, recs...).FirstErr()
	commit := kgo.TransactionEndTry(err == nil)
	if eerr := cl.EndTransaction(context.WithoutCancel(ctx), commit); eerr != nil && err == nil {
		err = eerr
	}
	return err
}

// watch waits until the run is complete, a worker fails or ctx is done, and
// reports progress meanwhile. The planning process (planner != nil) records
// the run's completion; a worker-only process waits for that record.
func (s *Snapshot) watch(ctx context.Context, f *follower, planner *kgo.Client, werr <-chan error) (*State, error) {
	interval := s.cfg.Progress
	term := s.progress != nil && IsTerminal(s.progress)
	if !term {
		interval = max(interval, 10*time.Second)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var r rates
	drawn := 0
	report := func(st *State) {
		if s.progress == nil || st.Run == 0 {
			return
		}
		now := time.Now()
		ps := st.Progress()
		if term {
			var b strings.Builder
			if drawn > 0 {
				fmt.Fprintf(&b, "\x1b[%dA", drawn)
			}
			for _, p := range ps {
				fmt.Fprintf(&b, "\r\x1b[K%s\n", progressLine(p, r.rate(now, p)))
			}
			drawn = len(ps)
			_, _ = io.WriteString(s.progress, b.String())
			return
		}
		for _, p := range ps {
			s.log.Info("snapshot progress", "progress", progressLine(p, r.rate(now, p)))
		}
	}
	for {
		st, changed, err := f.snapshot()
		if err != nil {
			return nil, err
		}
		if st.Run > 0 && st.AllDone() && (planner == nil || s.allPlanned(st)) {
			if planner != nil && st.Complete.IsZero() {
				b, _ := jsonMarshal(completeRecord{Run: st.Run, At: time.Now().UTC()})
				fences, err := s.fences(ctx, planner, st)
				if err != nil {
					return nil, err
				}
				recs := append([]*kgo.Record{{Topic: s.topics.State(), Key: completeKey(st.Run), Value: b}}, fences...)
				if err := transact(ctx, planner, recs...); err != nil {
					return nil, fmt.Errorf("recording the completion of run %d: %w", st.Run, err)
				}
				run := st.Run
				if st, err = f.waitFor(ctx, func(st *State) bool { return st.Run != run || !st.Complete.IsZero() }); err != nil {
					return nil, err
				}
			}
			if !st.Complete.IsZero() {
				if term {
					report(st)
				}
				return st, nil
			}
		}
		select {
		case <-changed:
		case <-tick.C:
			report(st)
		case err := <-werr:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// allPlanned reports whether every mapped collection has a plan in st.
func (s *Snapshot) allPlanned(st *State) bool {
	for _, ns := range s.namespaces {
		if _, ok := st.Plans[ns.String()]; !ok {
			return false
		}
	}
	return true
}

func stats(st *State) []CollectionStats {
	var out []CollectionStats
	for _, p := range st.Progress() {
		out = append(out, CollectionStats{Source: p.Namespace, Topic: p.Topic, Documents: p.DocumentsDone,
			Chunks: p.Chunks, Elapsed: st.Complete.Sub(st.Started)})
	}
	return out
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errors.Join(ErrBadState, err)
	}
	return b, nil
}

package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// TestGroupSettler forms a group on the real broker over several
// rebalances (members joining 200ms apart) and checks that the settler
// releases its waiters only once the group is stable with every member in
// it and every partition assigned, and that it gives up after its longest
// wait when a member never joins.
func TestGroupSettler(t *testing.T) {
	tcfg, admin := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	const partitions = 8
	if err := topic.EnsureSnapshotTasks(ctx, admin, tcfg, partitions); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var members []*kgo.Client
	ids := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, cl := range members {
			id, _ := cl.GroupMetadata()
			out = append(out, id)
		}
		return out
	}
	for i := range 3 {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		cl, err := topic.NewClient(ctx, tcfg, nil, kgo.ConsumerGroup(tcfg.SnapshotGroup()),
			kgo.ConsumeTopics(tcfg.SnapshotTasks()), kgo.Balancers(kgo.CooperativeStickyBalancer()),
			kgo.HeartbeatInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		mu.Lock()
		members = append(members, cl)
		mu.Unlock()
	}
	quiet := quietTestLog()
	s := newGroupSettler(admin, tcfg.SnapshotGroup(), tcfg.SnapshotTasks(), ids, quiet)
	go s.run(ctx)
	if err := s.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.settled {
		t.Fatalf("the group of 3 members did not settle within %s", s.max)
	}
	dg, err := kadm.NewClient(admin).DescribeGroups(ctx, tcfg.SnapshotGroup())
	if err != nil {
		t.Fatal(err)
	}
	d := dg[tcfg.SnapshotGroup()]
	var assigned []string
	for _, m := range d.Members {
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range c.Topics {
				assigned = append(assigned, fmt.Sprintf("%s:%d", m.MemberID, len(tp.Partitions)))
			}
		}
	}
	if d.State != "Stable" || len(d.Members) != 3 || len(d.AssignedPartitions()[tcfg.SnapshotTasks()]) != partitions {
		t.Fatalf("released while the group was %s with %d members, assigned %v; want Stable, 3 members, all %d partitions",
			d.State, len(d.Members), assigned, partitions)
	}

	// A member that never joins: the settler gives up after its longest wait.
	s = newGroupSettler(admin, tcfg.SnapshotGroup(), tcfg.SnapshotTasks(),
		func() []string { return append(ids(), "no-such-member") }, quiet)
	s.max = 300 * time.Millisecond
	start := time.Now()
	go s.run(ctx)
	if err := s.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s.settled {
		t.Fatal("settled without one of its members")
	}
	if waited := time.Since(start); waited < s.max || waited > 10*s.max {
		t.Fatalf("gave up after %s, want about %s", waited, s.max)
	}
}

// TestFormingGroupReadsEachChunkOnce runs three snapshot runs on the real
// services, each with a new group of four workers that join 100ms apart (so
// the group forms over several rebalances, with tasks already published),
// and checks from this process's counters that no chunk was read twice: a
// chunk read while the group still formed used to be aborted by the
// rebalance that completed it and read again. From the recorded state it
// checks that the ten chunks were dealt evenly, 2 or 3 to each worker: the
// sticky balancer, keeping what each member took while the group formed,
// left one worker 4 and another 1.
func TestFormingGroupReadsEachChunkOnce(t *testing.T) {
	const n = 20_000
	r := newOrdersRig(t, n)
	cfg := r.config(4)
	cfg.joinStagger = 100 * time.Millisecond
	for run := range 3 {
		cfg.Restart = run > 0
		reg := prometheus.NewRegistry()
		if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), reg, nil).Run(r.ctx); err != nil {
			t.Fatal(err)
		}
		read, aborted := counter(t, reg, "docshift_snapshot_documents_read_total"), counter(t, reg, "docshift_snapshot_chunks_aborted_total")
		if read != n || aborted != 0 {
			t.Errorf("run %d: read %v documents of %d, aborted %v chunk transactions; want every chunk read once", run+1, read, n, aborted)
		}
		st, err := ReadState(r.ctx, r.topics, nil)
		if err != nil {
			t.Fatal(err)
		}
		byWorker := map[string]int{}
		for _, d := range st.Done {
			byWorker[d.Worker]++
		}
		for w, k := range byWorker {
			if k < 2 || k > 3 || len(byWorker) != cfg.Workers {
				t.Errorf("run %d: chunks read per worker %v (worker %s: %d); want 2 or 3 of the 10 for each of the %d workers", run+1, byWorker, w, k, cfg.Workers)
				break
			}
		}
	}
}

// TestGivenBackTasksAreRead starts every worker as if a rebalance had just
// taken partitions from it, so that each gives its first task back unread
// (an abort with no transaction open, on the real broker): the tasks come
// again and every chunk is read once, nothing lost.
func TestGivenBackTasksAreRead(t *testing.T) {
	const n = 20_000
	r := newOrdersRig(t, n)
	cfg := r.config(4)
	cfg.revokedAtStart = true
	var logs services.SyncBuffer
	reg := prometheus.NewRegistry()
	log := debugLog(&logs)
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, log, reg, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	if given := strings.Count(logs.String(), "giving this one back"); given == 0 {
		t.Fatal("no task was given back")
	}
	read, aborted := counter(t, reg, "docshift_snapshot_documents_read_total"), counter(t, reg, "docshift_snapshot_chunks_aborted_total")
	if read != n || aborted != 0 {
		t.Errorf("read %v documents of %d, aborted %v chunk transactions; want every chunk read once", read, n, aborted)
	}
	r.checkComplete(t, 0)
}

// documentsDone sums the documents recorded done in the current run.
func documentsDone(st *State) int64 {
	var n int64
	for _, p := range st.Progress() {
		n += p.DocumentsDone
	}
	return n
}

// TestPlannerWithoutWorkers: a process with --workers 0 plans and watches
// while a --worker process reads every chunk; both finish with the run.
func TestPlannerWithoutWorkers(t *testing.T) {
	const n = 20_000
	r := newOrdersRig(t, n)
	planner, worker := r.config(0), r.config(2)
	planner.WorkerID += "-planner"
	worker.WorkerID += "-worker"
	worker.WorkerOnly = true
	errs := make(chan error, 2)
	for _, cfg := range []Config{worker, planner} {
		go func() {
			_, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, d := range st.Done {
		if !strings.Contains(d.Worker, worker.WorkerID) {
			t.Errorf("chunk %s was read by %s, not by the worker process", id, d.Worker)
		}
	}
	docs := documentsDone(st)
	if docs != n || st.Complete.IsZero() {
		t.Fatalf("the run recorded %d documents (complete: %v), want %d", docs, !st.Complete.IsZero(), n)
	}
}

// ordersRig is a collection of n orders on the real MongoDB wire server,
// its mapping, and a topic prefix of the test's own on the real broker.
type ordersRig struct {
	ctx     context.Context
	mongo   *mongo.Client
	topics  topic.Config
	mapping *schemas.Mapping
	db      string
	n       int
}

func newOrdersRig(t *testing.T, n int) *ordersRig {
	_, mc := services.Mongo(t)
	return ordersRigOn(t, mc, n)
}

// ordersRigOn is newOrdersRig on the MongoDB server mc connects to.
func ordersRigOn(t *testing.T, mc *mongo.Client, n int) *ordersRig {
	tcfg, _ := services.Kafka(t)
	r := &ordersRig{ctx: services.Context(t, 3*time.Minute), mongo: mc, topics: tcfg, db: services.Unique(t), n: n}
	coll := mc.Database(r.db).Collection("orders")
	t.Cleanup(func() { _ = coll.Database().Drop(context.Background()) })
	docs := make([]any, 0, n)
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: int64(i)}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%d", i%5)},
			{Key: "n", Value: int64(i)}})
	}
	if _, err := coll.InsertMany(r.ctx, docs); err != nil {
		t.Fatal(err)
	}
	m, err := schemas.ParseMapping("m.yaml", fmt.Appendf(nil,
		"collections:\n  - source: %s.orders\n    tenant: {field: tenant_id}\n    columns:\n      - {path: n, type: bigint}\n", r.db))
	if err != nil {
		t.Fatal(err)
	}
	r.mapping = m
	return r
}

// config is the snapshot config of one process with the given workers, in
// chunks of a tenth of the collection.
func (r *ordersRig) config(workers int) Config {
	cfg := DefaultConfig()
	cfg.WorkerID = r.db
	cfg.Workers = workers
	cfg.ChunkDocs = r.n / 10
	return cfg
}

// checkComplete fails the test unless the recorded state has a complete
// run (run, unless 0) with every document of the rig's collection done.
func (r *ordersRig) checkComplete(t *testing.T, run int64) {
	t.Helper()
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	if (run != 0 && st.Run != run) || st.Complete.IsZero() || documentsDone(st) != int64(r.n) {
		t.Fatalf("state: run %d complete %v with %d documents, want run %d complete with %d", st.Run, !st.Complete.IsZero(), documentsDone(st), run, r.n)
	}
}

// debugLog is a debug-level text log written to w.
func debugLog(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func quietTestLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// counter sums the values of a counter family in reg (0 when it has none).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestRestartReadsNoTaskOfTheOldRun stops a run part-way (its unfinished
// tasks stay in the task topic) and starts a new one with Restart on the
// real services: the new run reads each of its chunks once and no chunk of
// the old run, and records every document.
func TestRestartReadsNoTaskOfTheOldRun(t *testing.T) {
	const n = 100_000
	r := newOrdersRig(t, n)
	cfg := r.config(4)
	cfg.ChunkDocs = n / 20

	reg := prometheus.NewRegistry()
	ctx, stop := context.WithCancel(r.ctx)
	defer stop()
	go func() {
		for ctx.Err() == nil && counter(t, reg, "docshift_snapshot_documents_read_total") < float64(2*cfg.ChunkDocs) {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
	}()
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), reg, nil).Run(ctx); err == nil {
		t.Fatal("the first run completed before it was stopped; nothing is left for the restart to skip")
	}

	cfg.Restart = true
	reg = prometheus.NewRegistry()
	var log services.SyncBuffer
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, debugLog(&log), reg, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	if read := counter(t, reg, "docshift_snapshot_documents_read_total"); read != n {
		t.Errorf("the restarted run read %v documents, want %d: each of its chunks once, none of the old run", read, n)
	}
	// The old run's tasks are skipped in the transactions of the chunks
	// read after them, or a few at a time: none of them is aborted for
	// following the previous transaction too closely, and no chunk is.
	skipped, abortedSkips := strings.Count(log.String(), "skipping a task of another run"), strings.Count(log.String(), "skipped tasks was aborted")
	if aborted := counter(t, reg, "docshift_snapshot_chunks_aborted_total"); skipped == 0 || abortedSkips > 0 || aborted > 0 {
		t.Errorf("the restarted run skipped %d tasks of the old run, aborted %d transactions of skipped tasks and %v of chunks; want some skipped, none aborted",
			skipped, abortedSkips, aborted)
		// What the group and the transactions did, to tell why.
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "CONCURRENT") || strings.Contains(l, "abort") || strings.Contains(l, "skipped tasks") ||
				strings.Contains(l, "settled") || strings.Contains(l, "synced") || strings.Contains(l, "revoke") {
				t.Log(l)
			}
		}
	}
	r.checkComplete(t, 2)
}

// TestRestartAbortsTheKilledWorkersTransaction: a worker killed in the
// middle of committing leaves its transaction open, with its chunk's done
// mark in the state topic and its task's offset pending in the group. A
// restarted process with the same worker id aborts that transaction as its
// workers start, so it does not wait for the transaction timeout (ten
// minutes here) before the state topic and the task offsets can be read.
func TestRestartAbortsTheKilledWorkersTransaction(t *testing.T) {
	const n = 2000
	r := newOrdersRig(t, n)
	cfg := r.config(2)
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}

	// The killed worker 0: a transaction holding a state record and a task
	// offset, never ended.
	killed := r.openTransaction(t, fmt.Sprintf("%s-snapshot-%s-0", r.topics.Prefix, cfg.WorkerID))
	pid, epoch, err := killed.ProducerID(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = fmt.Sprintf("%s-snapshot-%s-0", r.topics.Prefix, cfg.WorkerID), pid, epoch, r.topics.SnapshotGroup()
	addResp, err := add.RequestWith(r.ctx, killed)
	if err == nil {
		err = kerr.ErrorForCode(addResp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("adding the group's offsets to the open transaction: %v", err)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = add.TransactionalID, add.Group, pid, epoch, -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = r.topics.SnapshotTasks()
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 0
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	commitResp, err := commit.RequestWith(r.ctx, killed)
	if err == nil {
		for _, rt := range commitResp.Topics {
			for _, rp := range rt.Partitions {
				if perr := kerr.ErrorForCode(rp.ErrorCode); perr != nil && err == nil {
					err = perr
				}
			}
		}
	}
	if err != nil {
		t.Fatalf("committing a task offset in the open transaction: %v", err)
	}
	killed.Close() // no EndTxn: as if killed

	cfg.Restart = true
	ctx, cancel := context.WithTimeout(r.ctx, 90*time.Second)
	defer cancel()
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(ctx); err != nil {
		t.Fatalf("the restarted process, with a transaction of its killed worker open: %v", err)
	}
	r.checkComplete(t, 2)
}

// planUnread records a run of the rig's collection in chunks of chunkDocs
// documents by a planner without workers, on a task topic of one partition
// (in order: the old run's tasks before the next run's), and stops it once
// the plan is recorded: every task is left unread, for the next run to skip.
func (r *ordersRig) planUnread(t *testing.T, chunkDocs int) Config {
	t.Helper()
	cfg := r.config(0)
	cfg.ChunkDocs = chunkDocs
	cfg.TaskPartitions = 1
	ctx, stop := context.WithCancel(r.ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(ctx)
		done <- err
	}()
	for {
		st, err := ReadState(r.ctx, r.topics, nil)
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) { // not made yet: wait
			t.Fatal(err)
		}
		if err == nil && len(st.Plans) == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the planner stopped before its plan was recorded: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	<-done
	return cfg
}

// TestSkipsCommitAtMostMaxSkipsEach restarts a run whose 2,600 tasks were
// never read, with one worker on one task partition: it skips every one of
// them, committing at most maxSkips per transaction (and the rest with the
// new run's chunk), aborts nothing and reads the collection once.
func TestSkipsCommitAtMostMaxSkipsEach(t *testing.T) {
	const n = 2600
	r := newOrdersRig(t, n)
	cfg := r.planUnread(t, 1)
	cfg.Workers, cfg.ChunkDocs, cfg.Restart = 1, n, true
	var logs services.SyncBuffer
	reg := prometheus.NewRegistry()
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, debugLog(&logs), reg, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if skipped := strings.Count(out, "skipping a task of another run"); skipped != n {
		t.Errorf("skipped %d tasks of the old run, want all %d", skipped, n)
	}
	full, commits := 0, regexp.MustCompile(`skipped tasks committed" tasks=(\d+)`).FindAllStringSubmatch(out, -1)
	for _, m := range commits {
		k, _ := strconv.Atoi(m[1])
		if k > maxSkips {
			t.Errorf("one transaction committed %d skipped tasks, more than %d", k, maxSkips)
		}
		if k == maxSkips {
			full++
		}
	}
	if full == 0 {
		t.Errorf("no transaction of %d skipped tasks (%d transactions of them): the cap was never reached", maxSkips, len(commits))
	}
	read, aborted := counter(t, reg, "docshift_snapshot_documents_read_total"), counter(t, reg, "docshift_snapshot_chunks_aborted_total")
	if abortedSkips := strings.Count(out, "skipped tasks was aborted"); read != n || aborted != 0 || abortedSkips != 0 {
		t.Errorf("read %v documents of %d, aborted %v chunks and %d transactions of skipped tasks; want every document read once, nothing aborted",
			read, n, aborted, abortedSkips)
	}
	r.checkComplete(t, 2)
}

// TestGivenBackSkippedTasksComeAgain: a rebalance that takes partitions
// from a worker while skipped tasks wait in its open transaction makes it
// give them back with the task in hand; they come again and are skipped
// again, and the run reads everything once.
func TestGivenBackSkippedTasksComeAgain(t *testing.T) {
	const n, old = 1000, 50
	r := newOrdersRig(t, n)
	cfg := r.planUnread(t, n/old)
	cfg.Workers, cfg.ChunkDocs, cfg.Restart = 1, n/2, true
	cfg.revokedAfterSkips = 10
	var logs services.SyncBuffer
	reg := prometheus.NewRegistry()
	if _, err := New(cfg, r.mapping, r.mongo, r.topics, debugLog(&logs), reg, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	given, skipped := strings.Count(out, "giving this one back"), strings.Count(out, "skipping a task of another run")
	if given != 1 || skipped != old+10 {
		t.Errorf("gave back %d times and skipped %d tasks of the old run; want once, and its %d tasks with the 10 given back skipped twice (%d)",
			given, skipped, old, old+10)
	}
	if read := counter(t, reg, "docshift_snapshot_documents_read_total"); read != n {
		t.Errorf("read %v documents, want %d: each chunk of the new run once", read, n)
	}
	r.checkComplete(t, 2)
}

// openTransaction begins a transaction of transactional id txnID, as a
// worker's, with a record in the state topic, and returns its client: a
// client closed without ending it leaves it open, as a killed worker does,
// for ten minutes.
func (r *ordersRig) openTransaction(t *testing.T, txnID string) *kgo.Client {
	t.Helper()
	cl, err := topic.NewClient(r.ctx, r.topics, nil, kgo.TransactionalID(txnID), kgo.TransactionTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(r.ctx, &kgo.Record{Topic: r.topics.State(), Key: []byte("left-open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestPlannerAbortsTheTransactionOfAWorkerGoneForGood: a worker of another
// process, a member of the workers' group, leaves a transaction open with a
// state record in it (10-minute timeout) and is never seen again, as if its
// machine died. Every read-committed reader of the state topic is held back
// by that transaction; once the worker's session in the group has expired,
// the planning process takes over its transactional id, which aborts the
// transaction, and the run completes (it would not for ten minutes).
func TestPlannerAbortsTheTransactionOfAWorkerGoneForGood(t *testing.T) {
	const n = 2000
	r := newOrdersRig(t, n)
	cfg := r.config(1)
	gone := fmt.Sprintf("%s-snapshot-%s-gone-0", r.topics.Prefix, cfg.WorkerID)

	// The other process's worker, a member first (it takes half the task
	// partitions and reads nothing).
	member, err := topic.NewClient(r.ctx, r.topics, nil, kgo.ConsumerGroup(r.topics.SnapshotGroup()),
		kgo.ConsumeTopics(r.topics.SnapshotTasks()), kgo.InstanceID(gone), kgo.Balancers(newSpreadBalancer()),
		kgo.SessionTimeout(WorkerSessionTimeout), kgo.HeartbeatInterval(100*time.Millisecond), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := topic.NewClient(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := topic.EnsureSnapshotTasks(r.ctx, admin, r.topics, cfg.TaskPartitions); err != nil {
		t.Fatal(err)
	}
	for joined := false; !joined; time.Sleep(20 * time.Millisecond) {
		go member.PollFetches(r.ctx)
		dg, err := kadm.NewClient(admin).DescribeGroups(r.ctx, r.topics.SnapshotGroup())
		if err != nil {
			t.Fatal(err)
		}
		joined = len(dg[r.topics.SnapshotGroup()].Members) == 1
	}

	var logs services.SyncBuffer
	ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := New(cfg, r.mapping, r.mongo, r.topics, debugLog(&logs), nil, nil).Run(ctx)
		done <- err
	}()
	for planned := false; !planned; time.Sleep(20 * time.Millisecond) {
		st, err := ReadState(r.ctx, r.topics, nil)
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatal(err)
		}
		planned = err == nil && len(st.Plans) == 1
	}

	// Its transaction, left open; then it is gone (a static member sends
	// no leave).
	r.openTransaction(t, gone).Close()
	member.Close()

	if err := <-done; err != nil {
		t.Fatalf("the planning process, with a transaction of a departed worker open: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "a snapshot worker left the group with its transaction open; aborting it") {
		t.Errorf("the run completed without aborting the departed worker's transaction:\n%s", logs.String())
	}
	r.checkComplete(t, 0)
}

// TestChunkSlowerThanItsTransaction: a chunk that cannot be read within
// the transaction timeout (here: its batches come slowly, as from a
// MongoDB that stalls) fails the process with an error that says so and
// names the flags that help, instead of writing into a transaction the
// broker has aborted; nothing of it is published.
func TestChunkSlowerThanItsTransaction(t *testing.T) {
	const n = 1000
	r := newOrdersRig(t, n)
	cfg := r.config(1)
	cfg.ChunkDocs, cfg.BatchSize, cfg.TxnTimeout = n, 100, 2*time.Second
	cfg.slowBatches = 500 * time.Millisecond // ten batches: 5 s, the broker aborts after 2-3 s
	_, err := New(cfg, r.mapping, r.mongo, r.topics, quietTestLog(), nil, nil).Run(r.ctx)
	if err == nil || !strings.Contains(err.Error(), "--txn-timeout") || !strings.Contains(err.Error(), "--chunk-docs") {
		t.Fatalf("err = %v, want one that names --txn-timeout and --chunk-docs", err)
	}
	t.Logf("error: %v", err)
	st, err := ReadState(r.ctx, r.topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Done) != 0 {
		t.Fatalf("%d chunks recorded done, want none", len(st.Done))
	}
	if recs := len(services.ReadCommitted(r.ctx, t, r.topics, r.topics.Records(r.db, "orders"))); recs != 0 {
		t.Fatalf("%d records of the chunk published, want none", recs)
	}
}

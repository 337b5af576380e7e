package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/topic"
)

// scaleDocs is the collection size of the multi-process snapshot test:
// DOCSHIFT_SNAPSHOT_DOCS, or the 200000 (about 20 s here).
func scaleDocs(t *testing.T) int {
	if v := os.Getenv("DOCSHIFT_SNAPSHOT_DOCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("DOCSHIFT_SNAPSHOT_DOCS=%q: want a number of at least 100", v)
		}
		return n
	}
	return 200000
}

// buildDocshift builds the docshift binary into a temporary directory.
func buildDocshift(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "docshift")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// mixedCollection seeds n documents with mixed _id types and writes their
// mapping; it returns the mapping file and the target table.
func mixedCollection(ctx context.Context, t *testing.T, mc *mongo.Client, n int) (coll *mongo.Collection, mappingFile, table string) {
	t.Helper()
	name := services.Unique(t)
	coll = mc.Database(name).Collection("items")
	t.Cleanup(func() {
		_ = coll.Database().Drop(context.Background())
		// The test server keeps every write in its in-memory oplog: let go
		// of this large load (a real MongoDB has no such command and says so).
		_ = mc.Database("admin").RunCommand(context.Background(), bson.D{{Key: "docshiftTruncateOplog", Value: 1}}).Err()
	})
	start := time.Now()
	batch := make([]any, 0, 10000)
	for i := range n {
		batch = append(batch, bson.D{{Key: "_id", Value: services.MixedID(i)}, {Key: "tenant_id", Value: fmt.Sprintf("tenant-%d", i%5)},
			{Key: "n", Value: int64(i)}, {Key: "note", Value: "document " + strconv.Itoa(i)}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	t.Logf("inserted %d documents in %s", n, time.Since(start).Round(time.Millisecond))
	table = name + "_items"
	mappingFile = filepath.Join(t.TempDir(), "mapping.yaml")
	m := fmt.Sprintf("collections:\n  - source: %s.items\n    tenant: {field: tenant_id}\n    table: %s\n    columns:\n      - {path: n, type: bigint}\n", name, table)
	if err := os.WriteFile(mappingFile, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return coll, mappingFile, table
}

// snapshotCmd starts a docshift snapshot process.
func snapshotCmd(ctx context.Context, bin string, args ...string) (*exec.Cmd, *strings.Builder) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"snapshot"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// checkExactlyOnce reads the records topic (read committed) and checks that
// every source document appears exactly once as a snapshot record.
func checkExactlyOnce(ctx context.Context, t *testing.T, tcfg topic.Config, coll *mongo.Collection) {
	t.Helper()
	src := readSource(ctx, t, coll)
	recs := readTopic(ctx, t, tcfg, tcfg.Records(coll.Database().Name(), coll.Name()))
	seen := map[string]int{}
	for _, r := range recs {
		_, id, err := schemas.ParseKey(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := src[id]; !ok {
			t.Fatalf("record key %s is no source document", r.Key)
		}
		seen[id]++
	}
	dups := 0
	for id, c := range seen {
		if c != 1 {
			dups++
			if dups < 5 {
				t.Errorf("document %s has %d snapshot records, want 1", id, c)
			}
		}
	}
	if len(seen) != len(src) || dups > 0 {
		t.Fatalf("%d of %d documents have records, %d more than once (%d records)", len(seen), len(src), dups, len(recs))
	}
}

// checkTarget applies the topic to PostgreSQL with `docshift consume
// --stop-at-end` and checks that the table equals the source.
func checkTarget(ctx context.Context, t *testing.T, tcfg topic.Config, coll *mongo.Collection, table string) {
	t.Helper()
	pcfg, pool := services.Postgres(t)
	code, _, stderr := docshift(ctx, t, "consume", "--pg-url", pcfg.URL, "--group", tcfg.Prefix+"-sink", "--stop-at-end",
		"--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix, "--monitor-addr", "")
	if code != 0 {
		t.Fatalf("consume exited %d: %s", code, stderr)
	}
	src := readSource(ctx, t, coll)
	rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT _tenant, _id, n FROM %s WHERE NOT _deleted`, schemas.QuoteIdent(table)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var tenant, id string
		var n int64
		if err := rows.Scan(&tenant, &id, &n); err != nil {
			t.Fatal(err)
		}
		doc, ok := src[id]
		if !ok {
			t.Fatalf("row %s has no source document", id)
		}
		if doc.Lookup("n").Int64() != n || doc.Lookup("tenant_id").StringValue() != tenant {
			t.Fatalf("row %s: tenant %s n %d, source %s", id, tenant, n, doc)
		}
		got++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got != len(src) {
		t.Fatalf("target has %d rows, source %d documents", got, len(src))
	}
}

// TestSnapshotTwoProcesses snapshots a collection with mixed _id types with
// two docshift processes of four workers each: the planning process and a
// --worker. Every document is published exactly once, both processes read
// chunks, and the consumer's table equals the source.
func TestSnapshotTwoProcesses(t *testing.T) {
	mcfg, mc := services.Mongo(t)
	tcfg, _ := services.Kafka(t)
	ctx := services.Context(t, 8*time.Minute)
	bin := buildDocshift(t)
	n := scaleDocs(t)
	coll, mappingFile, table := mixedCollection(ctx, t, mc, n)

	common := []string{"--mapping", mappingFile, "--mongo-uri", mcfg.URI, "--kafka-seeds", tcfg.Seeds,
		"--topic-prefix", tcfg.Prefix, "--topic-partitions", "4", "--task-partitions", "16", "--workers", "4",
		"--chunk-docs", strconv.Itoa(max(100, n/40))}
	start := time.Now()
	a, aout := snapshotCmd(ctx, bin, append(common, "--worker-id", "a")...)
	b, bout := snapshotCmd(ctx, bin, append(common, "--worker-id", "b", "--worker")...)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Process.Kill() }() // if the planner fails, the worker would wait for its run
	if err := a.Wait(); err != nil {
		t.Fatalf("planning process: %v\n%s", err, aout)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("worker process: %v\n%s", err, bout)
	}
	t.Logf("snapshot of %d documents by 2 processes x 4 workers: %s", n, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(aout.String(), fmt.Sprintf(": %d documents in", n)) {
		t.Errorf("planning process does not report %d documents:\n%s", n, aout)
	}

	st, err := snapshot.ReadState(ctx, tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	byWorker := map[string]int{}
	for _, d := range st.Done {
		byWorker[strings.Split(strings.TrimPrefix(d.Worker, tcfg.Prefix+"-snapshot-"), "-")[0]]++
	}
	if byWorker["a"] == 0 || byWorker["b"] == 0 {
		t.Errorf("chunks done per process %v: both processes should have read chunks", byWorker)
	}
	checkExactlyOnce(ctx, t, tcfg, coll)
	checkTarget(ctx, t, tcfg, coll, table)
}

// TestSnapshotWorkerProcessKilledForGood: a --worker process is killed with
// SIGKILL in the middle of the run and not started again. Its workers are
// static group members: the planning process's workers take their tasks
// once their sessions expire, the run completes, and every document is
// published exactly once.
func TestSnapshotWorkerProcessKilledForGood(t *testing.T) {
	const n = 20000
	ctx, r := newKillRig(t, n)
	a, aout, b, bout := r.startWithWorkerProcess(ctx, t, "gone")
	killWhen(ctx, t, r.tcfg, b, bout, doneBy("gone", 2))
	if err := a.Wait(); err != nil {
		t.Fatalf("planning process after the worker process was killed: %v\n%s", err, aout)
	}
	r.checkRunCompleteOnce(ctx, t)
}

// TestSnapshotResumesAfterKill kills a snapshot process with SIGKILL in the
// middle of its run and starts it again: the chunks recorded as done before
// the kill are not read again (each chunk has exactly one done record in the
// state topic's history, and every document exactly one committed record),
// and the target equals the source. `docshift status` reports the run.
func TestSnapshotResumesAfterKill(t *testing.T) {
	const n = 20000
	ctx, r := newKillRig(t, n)
	tcfg, cl, bin, coll, table, args := r.tcfg, r.cl, r.bin, r.coll, r.table, r.args

	killed, before, killedAt := killMidRun(ctx, t, bin, tcfg, args)
	t.Logf("killed with %d chunks done (%d seen before the kill)", len(killed.Done), len(before.Done))

	second, out2 := snapshotCmd(ctx, bin, args...)
	if err := second.Run(); err != nil {
		t.Fatalf("restarted snapshot: %v\n%s", err, out2)
	}
	// A clean exit takes the workers out of their group: the group holds no
	// member waiting out its session.
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, tcfg.SnapshotGroup())
	if err != nil || groups.Error() != nil {
		t.Fatalf("describing the workers' group: %v %v", err, groups.Error())
	}
	if g := groups[tcfg.SnapshotGroup()]; len(g.Members) != 0 {
		t.Errorf("after the restarted process exited, the workers' group has %d members (state %s), want none", len(g.Members), g.State)
	}
	after, err := snapshot.ReadState(ctx, tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var first time.Time // the restarted process's first chunk read
	for id, d := range after.Done {
		if k, ok := killed.Done[id]; ok {
			if k != d {
				t.Errorf("chunk %s done before the kill was read again: %+v then %+v", id, k, d)
			}
		} else if first.IsZero() || d.At.Before(first) {
			first = d.At
		}
	}
	// Restarted with the same --worker-id, the workers take the killed
	// ones' places in the group: they read before the killed members'
	// sessions would have expired (all but the last heartbeat's interval).
	if wait := first.Sub(killedAt); wait >= snapshot.WorkerSessionTimeout-time.Second {
		t.Errorf("the restarted process read its first chunk %s after the kill: its workers waited out the killed workers' sessions (%s)",
			wait.Round(time.Millisecond), snapshot.WorkerSessionTimeout)
	} else {
		t.Logf("the restarted process read its first chunk %s after the kill", wait.Round(time.Millisecond))
	}
	// Every committed done mark in the state topic's history: one per chunk.
	marks := map[string]int{}
	for _, r := range readTopic(ctx, t, tcfg, tcfg.State()) {
		if strings.HasPrefix(string(r.Key), "done/") {
			marks[string(r.Key)]++
		}
	}
	total := chunksPlanned(after)
	if len(marks) != total {
		t.Errorf("%d chunks have done marks, the plan has %d", len(marks), total)
	}
	for k, c := range marks {
		if c != 1 {
			t.Errorf("%s recorded %d times: the chunk was read more than once", k, c)
		}
	}
	checkExactlyOnce(ctx, t, tcfg, coll)
	checkTarget(ctx, t, tcfg, coll, table)

	code, stdout, stderr := docshift(ctx, t, "status", "--kafka-seeds", tcfg.Seeds, "--topic-prefix", tcfg.Prefix)
	if code != 0 || !strings.Contains(stdout, "snapshot complete") || !strings.Contains(stdout, strconv.Itoa(n)) {
		t.Errorf("status exited %d:\n%s%s", code, stdout, stderr)
	}
}

// killRig is a collection of n documents with mixed _ids on the real
// services and the arguments of a snapshot of it by one process of two
// workers in chunks of 200 documents (small enough to be killed mid-run).
type killRig struct {
	tcfg  topic.Config
	cl    *kgo.Client
	bin   string
	coll  *mongo.Collection
	table string
	args  []string
}

func newKillRig(t *testing.T, n int) (context.Context, *killRig) {
	mcfg, mc := services.Mongo(t)
	tcfg, cl := services.Kafka(t)
	ctx := services.Context(t, 6*time.Minute)
	r := &killRig{tcfg: tcfg, cl: cl, bin: buildDocshift(t)}
	var mappingFile string
	r.coll, mappingFile, r.table = mixedCollection(ctx, t, mc, n)
	r.args = []string{"--mapping", mappingFile, "--mongo-uri", mcfg.URI, "--kafka-seeds", tcfg.Seeds,
		"--topic-prefix", tcfg.Prefix, "--topic-partitions", "4", "--workers", "2", "--worker-id", "k",
		"--chunk-docs", "200"}
	return ctx, r
}

// startWithWorkerProcess starts the rig's snapshot as a planning process
// and a --worker process with the given worker id (both killed when the
// test ends), and returns them with their output.
func (r *killRig) startWithWorkerProcess(ctx context.Context, t *testing.T, workerID string) (a *exec.Cmd, aout *strings.Builder, b *exec.Cmd, bout *strings.Builder) {
	t.Helper()
	a, aout = snapshotCmd(ctx, r.bin, r.args...)
	b, bout = snapshotCmd(ctx, r.bin, append(slices.Clone(r.args), "--worker", "--worker-id", workerID)...)
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill() })
	}
	return a, aout, b, bout
}

// doneBy holds once the workers of the process with workerID have recorded
// n chunks done.
func doneBy(workerID string, n int) func(*snapshot.State) bool {
	return func(st *snapshot.State) bool {
		done := 0
		for _, d := range st.Done {
			if strings.Contains(d.Worker, "-snapshot-"+workerID+"-") {
				done++
			}
		}
		return done >= n
	}
}

// checkRunCompleteOnce checks that the recorded run is complete with every
// planned chunk done, that every document was published exactly once, and
// that the target equals the source.
func (r *killRig) checkRunCompleteOnce(ctx context.Context, t *testing.T) {
	t.Helper()
	st, err := snapshot.ReadState(ctx, r.tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Complete.IsZero() || len(st.Done) != chunksPlanned(st) {
		t.Fatalf("run %d: %d of %d chunks done, complete %v", st.Run, len(st.Done), chunksPlanned(st), !st.Complete.IsZero())
	}
	checkExactlyOnce(ctx, t, r.tcfg, r.coll)
	checkTarget(ctx, t, r.tcfg, r.coll, r.table)
}

// chunksPlanned counts the chunks of every plan of the current run.
func chunksPlanned(st *snapshot.State) int {
	total := 0
	for _, p := range st.Progress() {
		total += p.Chunks
	}
	return total
}

// killMidRun starts a snapshot with args, kill -9s it once at least 5
// chunks are done, and returns the state recorded by then (killed), the
// state seen just before the kill and when it was killed. It fails the test
// if the run completed first.
func killMidRun(ctx context.Context, t *testing.T, bin string, tcfg topic.Config, args []string) (killed, before *snapshot.State, at time.Time) {
	t.Helper()
	first, out := snapshotCmd(ctx, bin, args...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	before, at = killWhen(ctx, t, tcfg, first, out, func(st *snapshot.State) bool { return len(st.Done) >= 5 })
	// What was recorded by the time the process died (at least what we saw).
	killed, err := snapshot.ReadState(ctx, tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !killed.Complete.IsZero() {
		t.Fatalf("the run completed before the kill (%d chunks done): make chunks smaller", len(killed.Done))
	}
	return killed, before, at
}

// killWhen kill -9s the started snapshot process cmd (its output in out)
// once the recorded state satisfies cond, and returns that state and when
// it was killed. It fails the test if the process ends, or the run
// completes, first.
func killWhen(ctx context.Context, t *testing.T, tcfg topic.Config, cmd *exec.Cmd, out *strings.Builder, cond func(*snapshot.State) bool) (*snapshot.State, time.Time) {
	t.Helper()
	st, at, exited := signalWhen(ctx, t, tcfg, cmd, out, syscall.SIGKILL, cond)
	<-exited
	return st, at
}

// signalWhen sends sig to the started snapshot process cmd (its output in
// out) once the recorded state satisfies cond, and returns that state, when
// it was sent, and where cmd's exit (it waits for cmd in the background)
// will be. It fails the test if the process ends, or the run completes,
// first.
func signalWhen(ctx context.Context, t *testing.T, tcfg topic.Config, cmd *exec.Cmd, out *strings.Builder, sig syscall.Signal,
	cond func(*snapshot.State) bool) (*snapshot.State, time.Time, <-chan error) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			t.Fatalf("the snapshot process ended (%v) before it could be signalled:\n%s", err, out)
		default:
		}
		st, err := snapshot.ReadState(ctx, tcfg, nil)
		if err == nil && !st.Complete.IsZero() {
			t.Fatalf("the run completed before the snapshot process could be signalled (%d chunks done):\n%s", len(st.Done), out)
		}
		if err == nil && cond(st) {
			at := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			return st, at, exited
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSnapshotWorkerProcessPausedPastItsSession stops a --worker process
// (SIGSTOP) in the middle of the run for longer than its workers' session:
// the planning process's workers take its tasks, and a transaction it had
// open is aborted, so the run completes without it. Resumed (SIGCONT), the
// process either finds the run complete and exits, or, if its transaction
// was taken over, is fenced and exits with an error saying so; either way
// every document is published exactly once (a zombie writes nothing).
func TestSnapshotWorkerProcessPausedPastItsSession(t *testing.T) {
	const n = 20000
	ctx, r := newKillRig(t, n)
	a, aout, b, bout := r.startWithWorkerProcess(ctx, t, "paused")
	t.Cleanup(func() { _ = b.Process.Signal(syscall.SIGCONT) }) // before its kill (cleanups run last first)
	_, pausedAt, exited := signalWhen(ctx, t, r.tcfg, b, bout, syscall.SIGSTOP, doneBy("paused", 2))
	if err := a.Wait(); err != nil {
		t.Fatalf("planning process while the worker process was stopped: %v\n%s", err, aout)
	}
	t.Logf("the run completed %s after the worker process was stopped", time.Since(pausedAt).Round(time.Millisecond))
	if err := b.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil && !strings.Contains(bout.String(), "fenced") {
			t.Fatalf("the resumed worker process failed (%v) for another reason than being fenced:\n%s", err, bout)
		}
		lines := strings.Split(strings.TrimSpace(bout.String()), "\n")
		t.Logf("the resumed worker process exited: %v (transaction taken over: %v); its last line: %s", err,
			strings.Contains(aout.String(), "left the group with its transaction open"), lines[len(lines)-1])
	case <-time.After(60 * time.Second):
		t.Fatalf("the resumed worker process did not exit:\n%s", bout)
	}
	r.checkRunCompleteOnce(ctx, t)
}

// TestSnapshotRestartAfterKill: a run killed mid-way and started over with
// --restart (the killed run's unfinished tasks are still in the task topic;
// the new process's workers skip them as tasks of another run) completes a
// new run that covers every chunk, and the target equals the source,
// without the documents deleted between the runs: the new run's fences mark
// them deleted (no resurrection).
func TestSnapshotRestartAfterKill(t *testing.T) {
	const n = 20000
	ctx, r := newKillRig(t, n)
	tcfg, bin, coll, table, args := r.tcfg, r.bin, r.coll, r.table, r.args
	killed, _, _ := killMidRun(ctx, t, bin, tcfg, args)

	// Documents the killed run may already have published go away before
	// the new run.
	var gone []any
	for i := 0; i < n; i += 100 {
		gone = append(gone, int64(i))
	}
	if res, err := coll.DeleteMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$in", Value: gone}}}}); err != nil || res.DeletedCount != int64(len(gone)) {
		t.Fatalf("deleting %d documents: %v (%+v)", len(gone), err, res)
	}

	restarted, out := snapshotCmd(ctx, bin, append(args, "--restart")...)
	if err := restarted.Run(); err != nil {
		t.Fatalf("snapshot --restart: %v\n%s", err, out)
	}
	after, err := snapshot.ReadState(ctx, tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after.Run != killed.Run+1 || after.Complete.IsZero() {
		t.Fatalf("after --restart: run %d (complete %v), want run %d complete", after.Run, !after.Complete.IsZero(), killed.Run+1)
	}
	total := chunksPlanned(after)
	if len(after.Done) != total {
		t.Fatalf("run %d: %d of %d chunks done", after.Run, len(after.Done), total)
	}
	checkTarget(ctx, t, tcfg, coll, table)
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/target"
	"github.com/docshift/docshift/topic"
)

// groupRig is a records topic, its target table with an audit trigger, and
// consumer processes of the real docshift binary in one group.
type groupRig struct {
	t      *testing.T
	bin    string
	tcfg   topic.Config
	kc     *kgo.Client
	pcfg   target.Config
	pool   *pgxpool.Pool
	schema *schemas.Schema
	topic  string
	table  string
	group  string
	part   map[string]int32 // key id -> partition
}

// newGroupRig builds the binary, creates the topic and the table, and puts a
// BEFORE INSERT trigger on the table. PostgreSQL fires it for every row an
// INSERT .. ON CONFLICT proposes, before the version guard decides, so the
// audit table sees every attempted write: the key, the version attempted and
// the version stored at that moment, the consumer process
// (application_name), the transaction and the time.
func newGroupRig(t *testing.T, partitions int, rowDelay time.Duration) *groupRig {
	t.Helper()
	tcfg, kc := services.Kafka(t)
	pcfg, pool := services.Postgres(t)
	ctx := services.Context(t, 2*time.Minute)
	name := services.Unique(t)
	tcfg.Partitions = partitions
	r := &groupRig{t: t, tcfg: tcfg, kc: kc, pcfg: pcfg, pool: pool, table: name + "_items",
		group: name + "-sink", part: map[string]int32{}}

	r.bin = filepath.Join(t.TempDir(), "docshift")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", r.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	coll := schemas.Collection{Table: r.table, Columns: []schemas.Column{
		{Name: "name", Type: schemas.Text}, {Name: "qty", Type: schemas.BigInt}}}
	ns := schemas.Namespace{Database: name, Collection: "items"}
	var err error
	if r.schema, err = schemas.NewSchema(ns, coll.TargetTable()); err != nil {
		t.Fatal(err)
	}
	r.topic = tcfg.Records(ns.Database, ns.Collection)
	if err := topic.EnsureSchemas(ctx, kc, tcfg); err != nil {
		t.Fatal(err)
	}
	if err := topic.EnsureRecords(ctx, kc, tcfg, r.topic); err != nil {
		t.Fatal(err)
	}
	if err := schemas.NewRegistry(kc, tcfg.Schemas()).Register(ctx, r.schema); err != nil {
		t.Fatal(err)
	}
	tbl, audit := schemas.QuoteIdent(r.table), schemas.QuoteIdent(r.table+"_audit")
	fn := schemas.QuoteIdent(r.table + "_audit_fn")
	stmts := append(r.schema.Table.DDL(),
		fmt.Sprintf(`CREATE TABLE %s (seq bigserial, key text, attempted bigint, stored bigint, app text, tx bigint, at timestamptz)`, audit),
		fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE stored bigint;
BEGIN
  SELECT _version INTO stored FROM %s WHERE _tenant = NEW._tenant AND _id = NEW._id;
  INSERT INTO %s (key, attempted, stored, app, tx, at)
    VALUES (NEW._id, NEW._version, stored, current_setting('application_name'), txid_current(), clock_timestamp());
  PERFORM pg_sleep(%f);
  RETURN NEW;
END $$`, fn, tbl, audit, rowDelay.Seconds()),
		fmt.Sprintf(`CREATE TRIGGER audit BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s()`, tbl, fn))
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		for _, s := range []string{"DROP TABLE IF EXISTS " + tbl, "DROP TABLE IF EXISTS " + audit, "DROP FUNCTION IF EXISTS " + fn} {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	return r
}

// produceRound writes version v of every key, in shuffled key order.
func (r *groupRig) produceRound(ctx context.Context, keys int, v int64) {
	r.t.Helper()
	order := rand.Perm(keys)
	recs := make([]*kgo.Record, 0, keys)
	for _, k := range order {
		id := fmt.Sprintf(`"k%04d"`, k)
		e := &schemas.Envelope{Op: schemas.OpUpdate, Version: v, Tenant: "acme", ID: id,
			Row: map[string]any{"name": fmt.Sprintf("v%d", v), "qty": v}}
		val, err := r.schema.Encode(nil, e)
		if err != nil {
			r.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: r.topic, Key: schemas.Key("acme", id), Value: val})
	}
	res := r.kc.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	for _, p := range res {
		id := strings.TrimSuffix(strings.TrimPrefix(string(p.Record.Key), `["acme",`), "]")
		r.part[id] = p.Record.Partition
	}
}

// instance is one `docshift consume` process.
type instance struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// start starts a consumer process named name (its application_name in
// PostgreSQL).
func (r *groupRig) start(ctx context.Context, name string, extra ...string) *instance {
	r.t.Helper()
	sep := "?"
	if strings.Contains(r.pcfg.URL, "?") {
		sep = "&"
	}
	args := append([]string{"consume", "--kafka-seeds", r.tcfg.Seeds, "--topic-prefix", r.tcfg.Prefix,
		"--topics", r.topic, "--group", r.group, "--pg-url", r.pcfg.URL + sep + "application_name=" + name,
		"--monitor-addr", "127.0.0.1:0", "--max-batch", "100", "--batch-wait", "10ms", "--session-timeout", "6s"}, extra...)
	in := &instance{name: name, log: filepath.Join(r.t.TempDir(), name+".log"), done: make(chan error, 1)}
	f, err := os.Create(in.log)
	if err != nil {
		r.t.Fatal(err)
	}
	in.cmd = exec.CommandContext(ctx, r.bin, args...)
	in.cmd.Stdout, in.cmd.Stderr = f, f
	in.cmd.Env = append(os.Environ(), "DOCSHIFT_LOG_LEVEL=info")
	if err := in.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { in.done <- in.cmd.Wait(); f.Close() }()
	r.t.Cleanup(func() {
		_ = in.cmd.Process.Kill()
		<-in.done
		if r.t.Failed() {
			b, _ := os.ReadFile(in.log)
			r.t.Logf("%s log:\n%s", name, lastLines(string(b), 30))
		}
	})
	return in
}

// stop sends SIGTERM and waits: the process finishes its batches, commits
// and exits with 130 (interrupted).
// waitAssigned waits until the instance owns at least one partition.
func (in *instance) waitAssigned(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(in.log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `msg="partitions assigned"`) && !strings.Contains(line, "partitions=map[]") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s was assigned no partition within %s", in.name, within)
}

func (in *instance) stop(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		if code := in.cmd.ProcessState.ExitCode(); code != 130 {
			t.Fatalf("%s exited %d after SIGTERM (%v), want 130", in.name, code, err)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop within 40s of SIGTERM", in.name)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitVersion waits until every one of keys rows has version v.
func (r *groupRig) waitVersion(ctx context.Context, keys int, v int64) {
	r.t.Helper()
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE _version = $1 AND name = $2 AND qty = $1 AND NOT _deleted", schemas.QuoteIdent(r.table))
	for {
		var n int
		err := r.pool.QueryRow(ctx, q, v, fmt.Sprintf("v%d", v)).Scan(&n)
		if err == nil && n == keys {
			return
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("%d of %d rows reached version %d (err %v)", n, keys, v, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attempt is one audited write attempt.
type attempt struct {
	key               string
	attempted, stored int64
	app               string
	tx                int64
	at                time.Time
}

func (r *groupRig) audit(ctx context.Context) []attempt {
	r.t.Helper()
	rows, err := r.pool.Query(ctx, fmt.Sprintf("SELECT key, attempted, coalesce(stored, 0), app, tx, at FROM %s ORDER BY at, seq",
		schemas.QuoteIdent(r.table+"_audit")))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []attempt
	var a attempt
	if _, err := pgx.ForEachRow(rows, []any{&a.key, &a.attempted, &a.stored, &a.app, &a.tx, &a.at}, func() error {
		out = append(out, a)
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestConsumeGroupScaleOut runs three consumer processes in one group over a
// 12-partition topic while versions are produced; mid-load one is stopped
// (SIGTERM) and another started. Every key ends at its last version; the
// audit trigger proves that no write was ever attempted with a version not
// newer than the stored one (no record applied out of order, none twice),
// and that the transactions applying one partition never overlapped in time
// (one worker at a time per partition, across processes).
func TestConsumeGroupScaleOut(t *testing.T) {
	r := newGroupRig(t, 12, 0)
	ctx := services.Context(t, 4*time.Minute)
	const keys, rounds = 240, 30

	a := r.start(ctx, "inst-a")
	b := r.start(ctx, "inst-b")
	c := r.start(ctx, "inst-c")
	var d *instance
	for v := int64(1); v <= rounds; v++ {
		r.produceRound(ctx, keys, v)
		switch v {
		case 10:
			a.stop(t)
		case 15:
			d = r.start(ctx, "inst-d")
			d.waitAssigned(t, time.Minute) // the rest of the load is then shared with it
		}
		time.Sleep(150 * time.Millisecond)
	}
	r.waitVersion(ctx, keys, rounds)
	for _, in := range []*instance{b, c, d} {
		in.stop(t)
	}

	att := r.audit(ctx)
	apps := map[string]int{}
	for _, x := range att {
		apps[x.app]++
		if x.attempted <= x.stored {
			t.Errorf("%s attempted version %d of %s over stored %d: applied out of order or twice", x.app, x.attempted, x.key, x.stored)
		}
	}
	for _, name := range []string{"inst-a", "inst-b", "inst-c", "inst-d"} {
		if apps[name] == 0 {
			t.Errorf("%s applied nothing (%v): the load did not spread over the group", name, apps)
		}
	}

	// Per partition, the transactions that applied it, in time order, must
	// not overlap.
	type span struct {
		app      string
		tx       int64
		from, to time.Time
	}
	spans := map[int32]map[int64]*span{}
	for _, x := range att {
		p := r.part[x.key]
		if spans[p] == nil {
			spans[p] = map[int64]*span{}
		}
		s := spans[p][x.tx]
		if s == nil {
			s = &span{app: x.app, tx: x.tx, from: x.at}
			spans[p][x.tx] = s
		}
		s.to = x.at
	}
	for p, byTx := range spans {
		list := make([]*span, 0, len(byTx))
		for _, s := range byTx {
			list = append(list, s)
		}
		slices.SortFunc(list, func(x, y *span) int { return x.from.Compare(y.from) })
		for i := 1; i < len(list); i++ {
			if prev, cur := list[i-1], list[i]; !cur.from.After(prev.to) {
				t.Errorf("partition %d: tx %d of %s (%s..%s) overlaps tx %d of %s (%s..%s)", p,
					prev.tx, prev.app, prev.from.Format(time.StampMicro), prev.to.Format(time.StampMicro),
					cur.tx, cur.app, cur.from.Format(time.StampMicro), cur.to.Format(time.StampMicro))
			}
		}
	}
	t.Logf("%d write attempts by %v over %d partitions", len(att), apps, len(spans))
}

// TestConsumeKill9 kills a consumer process with SIGKILL while it applies
// (each row is slowed down so batches are in flight) and starts another: the
// table ends exactly at every key's last version. Records applied but not
// committed before the kill are applied again, which the version guard makes
// a no-op.
func TestConsumeKill9(t *testing.T) {
	r := newGroupRig(t, 4, 200*time.Microsecond)
	ctx := services.Context(t, 4*time.Minute)
	const keys, rounds = 200, 20
	for v := int64(1); v <= rounds; v++ {
		r.produceRound(ctx, keys, v)
	}
	first := r.start(ctx, "first", "--max-batch", "50")
	for {
		var n int
		if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM "+schemas.QuoteIdent(r.table+"_audit")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= 1000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil
	att := len(r.audit(ctx))

	second := r.start(ctx, "second", "--max-batch", "50")
	r.waitVersion(ctx, keys, rounds)
	second.stop(t)
	var rows int
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM "+schemas.QuoteIdent(r.table)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != keys {
		t.Fatalf("table has %d rows, want %d", rows, keys)
	}
	if att >= keys*rounds {
		t.Fatalf("the first process attempted all %d writes before the kill: the test did not kill mid-load", att)
	}
	dups := 0
	for _, x := range r.audit(ctx) {
		if x.app == "second" && x.attempted <= x.stored {
			dups++
		}
	}
	t.Logf("killed after %d write attempts; the second process re-applied %d already applied records", att, dups)
}

package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// resnapshotStream is a stream of the bench mapping's collection whose
// checkpoint (committed to the real broker) asks for a snapshot after a
// lost history since cluster time 4, and a producer whose Resnapshot is
// hook.
func resnapshotStream(t *testing.T, policy string, hook func(context.Context, []schemas.Namespace, bson.Timestamp) error) (*stream, topic.Config) {
	t.Helper()
	tcfg, kc := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	m, err := schemas.ParseMapping("bench", []byte(benchMapping))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.OnHistoryLost = policy
	p, err := New(cfg, m, nil, kc, tcfg, discardLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Resnapshot = hook
	if err := topic.EnsureStreams(ctx, kc, tcfg); err != nil {
		t.Fatal(err)
	}
	ns := schemas.Namespace{Database: "shop", Collection: "orders"}
	st := &stream{p: p, id: "collection:shop.orders", db: "shop", coll: "orders", covers: []schemas.Namespace{ns}, warned: map[string]bool{}}
	if err := st.open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.stopResnapshot(); st.kc.Close() })
	st.ctx = ctx
	st.cp = &Checkpoint{Stream: st.id, HistoryLost: "lost", ResnapshotSince: 4}
	token := bson.Raw(bsonDoc(t, bson.D{{Key: "_data", Value: "00ff"}}))
	if err := st.commit(ctx, nil, 0, token, 5, false); err != nil {
		t.Fatal(err)
	}
	return st, tcfg
}

func bsonDoc(t *testing.T, d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quiet is a change stream with no events until end is closed.
type quiet struct{ end chan struct{} }

var errQuietEnd = errors.New("end of the quiet stream")

func (q quiet) TryNext(context.Context) bool { time.Sleep(5 * time.Millisecond); return false }
func (q quiet) Event() bson.Raw              { return nil }
func (q quiet) ResumeToken() bson.Raw        { return nil }
func (q quiet) Err() error {
	select {
	case <-q.end:
		return errQuietEnd
	default:
		return nil
	}
}

func readCheckpoint(t *testing.T, tcfg topic.Config, id string) *Checkpoint {
	t.Helper()
	cps, err := ReadCheckpoints(context.Background(), tcfg)
	if err != nil {
		t.Fatal(err)
	}
	if cps[id] == nil {
		t.Fatalf("no checkpoint of %s", id)
	}
	return cps[id]
}

// TestResnapshotCompleteClearsTheCheckpoint: once the snapshot after a lost
// history completes, a quiet stream commits a checkpoint that no longer
// asks for it, at the same place in the stream.
func TestResnapshotCompleteClearsTheCheckpoint(t *testing.T) {
	release := make(chan struct{})
	var since bson.Timestamp
	st, tcfg := resnapshotStream(t, HistoryLostResnapshot, func(_ context.Context, _ []schemas.Namespace, s bson.Timestamp) error {
		since = s
		<-release
		return nil
	})
	ctx := services.Context(t, time.Minute)
	before := readCheckpoint(t, tcfg, st.id)
	if err := st.startResnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	q := quiet{end: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- st.loop(ctx, q) }()

	time.Sleep(200 * time.Millisecond)
	if cp := readCheckpoint(t, tcfg, st.id); cp.ResnapshotSince != 4 {
		t.Fatalf("the checkpoint stopped asking for the snapshot before it completed: %+v", cp)
	}
	close(release)
	var cp *Checkpoint
	for cp = readCheckpoint(t, tcfg, st.id); cp.ResnapshotSince != 0 && ctx.Err() == nil; cp = readCheckpoint(t, tcfg, st.id) {
		time.Sleep(20 * time.Millisecond)
	}
	close(q.end)
	if err := <-errc; !errors.Is(err, errQuietEnd) {
		t.Fatal(err)
	}
	if cp.ResnapshotSince != 0 {
		t.Fatalf("the checkpoint still asks for the completed snapshot: %+v", cp)
	}
	if string(cp.Token) != string(before.Token) || cp.ClusterTime != before.ClusterTime || cp.HistoryLost != "lost" {
		t.Fatalf("checkpoint after the snapshot %+v, want the place of %+v", cp, before)
	}
	if since != schemas.TimestampOf(4) {
		t.Fatalf("snapshot asked for since %v, want the checkpoint's %v", since, schemas.TimestampOf(4))
	}
}

// TestResnapshotFailureStopsTheStream: a failed snapshot after a lost
// history stops the stream with ErrResnapshot, and the checkpoint still asks
// for it.
func TestResnapshotFailureStopsTheStream(t *testing.T) {
	st, tcfg := resnapshotStream(t, HistoryLostResnapshot, func(context.Context, []schemas.Namespace, bson.Timestamp) error {
		return errors.New("the source is gone")
	})
	ctx := services.Context(t, time.Minute)
	if err := st.startResnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	err := st.loop(ctx, quiet{end: make(chan struct{})})
	if !errors.Is(err, ErrResnapshot) || !strings.Contains(err.Error(), "the source is gone") {
		t.Fatalf("stream ended with %v, want ErrResnapshot with its cause", err)
	}
	if cp := readCheckpoint(t, tcfg, st.id); cp.ResnapshotSince != 4 {
		t.Fatalf("the checkpoint no longer asks for the failed snapshot: %+v", cp)
	}
}

// TestResnapshotPendingWithoutThePolicy: a checkpoint asking for a snapshot
// after a lost history stops a producer without
// --on-history-lost=resnapshot with an error that says what to do.
func TestResnapshotPendingWithoutThePolicy(t *testing.T) {
	called := false
	st, _ := resnapshotStream(t, HistoryLostFail, func(context.Context, []schemas.Namespace, bson.Timestamp) error {
		called = true
		return nil
	})
	err := st.startResnapshot(services.Context(t, time.Minute))
	if !errors.Is(err, ErrHistoryLost) || !strings.Contains(err.Error(), "unfinished") || !strings.Contains(err.Error(), "--on-history-lost=resnapshot") {
		t.Fatalf("got %v, want ErrHistoryLost naming the unfinished snapshot and the flag", err)
	}
	if called || st.resnap != nil {
		t.Fatal("the snapshot started without the policy")
	}
}

// TestResnapshotStartsOverAfterASecondLoss: a history lost again while the
// snapshot after the first loss runs (a newer since) stops that snapshot and
// starts one for the second loss; the same since again starts nothing.
func TestResnapshotStartsOverAfterASecondLoss(t *testing.T) {
	var mu sync.Mutex
	var calls []bson.Timestamp
	var stopped int
	st, _ := resnapshotStream(t, HistoryLostResnapshot, func(ctx context.Context, _ []schemas.Namespace, since bson.Timestamp) error {
		mu.Lock()
		calls = append(calls, since)
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		stopped++
		mu.Unlock()
		return ctx.Err()
	})
	ctx := services.Context(t, time.Minute)
	started := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			got := len(calls)
			mu.Unlock()
			if got >= n || ctx.Err() != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := st.startResnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	started(1)
	if err := st.startResnapshot(ctx); err != nil { // the same loss: still running
		t.Fatal(err)
	}
	st.cp.ResnapshotSince = 9
	if err := st.startResnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	started(2)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0] != schemas.TimestampOf(4) || calls[1] != schemas.TimestampOf(9) || stopped != 1 {
		t.Fatalf("snapshots asked for %v, %d stopped; want since 4, then 9 with the first stopped", calls, stopped)
	}
}

// TestLostHistoryBackoff: the first lost history restarts at once; one soon
// after the last restart waits 1 s, then twice as long each time up to 30 s;
// one long after the last restart restarts at once again.
func TestLostHistoryBackoff(t *testing.T) {
	var l lostHistory
	now := time.Unix(1_700_000_000, 0)
	var got []time.Duration
	for range 8 {
		w := l.next(now)
		got = append(got, w)
		now = now.Add(w)
		l.restarted(now)
		now = now.Add(100 * time.Millisecond) // lost again soon after
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	now = now.Add(lostAgainWithin)
	if w := l.next(now); w != 0 {
		t.Fatalf("a loss %s after the last restart waits %s, want none", lostAgainWithin, w)
	}
	l.restarted(now)
	if w := l.next(now.Add(time.Second)); w != time.Second {
		t.Fatalf("the next loss soon after waits %s, want 1s: the backoff starts over", w)
	}
}

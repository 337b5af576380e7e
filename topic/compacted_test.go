package topic_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/topic"
)

// TestReadLog writes a committed transaction, an aborted one and a plain
// record to a state topic on the real broker, and reads it back: the
// committed records in order, nothing of the aborted transaction, no
// transaction marker, and an end reached although the log ends with a
// marker. An error from apply stops the read and names the record's offset.
func TestReadLog(t *testing.T) {
	cfg, admin := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	if err := topic.EnsureState(ctx, admin, cfg); err != nil {
		t.Fatal(err)
	}
	name := cfg.State()
	txn, err := topic.NewClient(ctx, cfg, nil, kgo.TransactionalID(cfg.Prefix+"-readlog"), kgo.DefaultProduceTopic(name))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	write := func(commit bool, keys ...string) {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := txn.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: []byte("v-" + k)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: name, Key: []byte("plain"), Value: []byte("v-plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	write(true, "a", "b")
	write(false, "aborted")
	write(true, "c") // the log ends with this transaction's marker
	waitMarkers(ctx, t, admin, name)

	var got []string
	var offsets []int64
	if err := topic.ReadLog(ctx, cfg, name, nil, func(r *kgo.Record) error {
		if string(r.Value) != "v-"+string(r.Key) {
			return fmt.Errorf("record %s has value %q", r.Key, r.Value)
		}
		got = append(got, string(r.Key))
		offsets = append(offsets, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "plain,a,b,c" {
		t.Fatalf("read %v, want plain,a,b,c", got)
	}

	bad := errors.New("not a record of this topic")
	err = topic.ReadLog(ctx, cfg, name, nil, func(r *kgo.Record) error {
		if string(r.Key) == "b" {
			return bad
		}
		return nil
	})
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", offsets[2])) {
		t.Fatalf("ReadLog with a failing apply: %v, want the error at offset %d", err, offsets[2])
	}

	// A topic with nothing committed is read at once.
	empty := cfg
	empty.Prefix += "-empty"
	if err := topic.EnsureState(ctx, admin, empty); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := topic.ReadLog(rctx, empty, empty.State(), nil, func(*kgo.Record) error { return errors.New("no record expected") }); err != nil {
		t.Fatal(err)
	}
}

// waitMarkers waits until every transaction of the one partition of name is
// complete in its log. EndTransaction returns once the commit is decided; the
// broker writes the marker that makes it readable a moment later, and until
// then the committed end stops before it.
func waitMarkers(ctx context.Context, t *testing.T, cl *kgo.Client, name string) {
	t.Helper()
	adm := kadm.NewClient(cl)
	for {
		ends, err := adm.ListEndOffsets(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		end, _ := ends.Lookup(name, 0)
		committed, err := topic.CommittedEnd(ctx, cl, name)
		if err != nil {
			t.Fatal(err)
		}
		if committed == end.Offset {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the committed end of %s stays at %d, before the end %d", name, committed, end.Offset)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

package services

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestOplogCap: the test server caps its oplog as MongoDB does. A server of
// its own, capped at 40 entries, takes 100 inserts: the oldest entries go
// (three quarters of the cap remain after each cut), the newest stay, and a
// change stream opened before the inserts and not read since has lost its
// history, as on a MongoDB whose oplog rolled over.
func TestOplogCap(t *testing.T) {
	const maxEntries, keep = 40, 30
	m := StartMongo(t, "--oplog-max-entries", fmt.Sprint(maxEntries))
	cl := m.Client
	ctx := Context(t, 2*time.Minute)

	coll := cl.Database("capped").Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(context.Background())
	for i := range 100 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}

	// The cut runs in the background: wait for it to finish.
	oplog := cl.Database("local").Collection("oplog.rs")
	var ids []int32
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := oplog.Find(ctx, bson.D{{Key: "ns", Value: "capped.c"}, {Key: "op", Value: "i"}},
			options.Find().SetSort(bson.D{{Key: "ts", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var entries []struct {
			O struct {
				ID int32 `bson:"_id"`
			} `bson:"o"`
		}
		if err := cur.All(ctx, &entries); err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, e := range entries {
			ids = append(ids, e.O.ID)
		}
		total, err := oplog.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if total <= maxEntries {
			if total < keep-1 { // the entry that creates the collection is one of them
				t.Fatalf("the oplog holds %d entries after its cut, want at least %d", total, keep-1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the oplog still holds %d entries, more than its cap of %d\n%s", total, maxEntries, m.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(ids) == 0 || ids[len(ids)-1] != 99 {
		t.Fatalf("the oplog's inserts are of _ids %v: want the newest, up to 99", ids)
	}
	for i, id := range ids {
		if want := 99 - int32(len(ids)-1-i); id != want {
			t.Fatalf("the oplog's inserts are of _ids %v: want the newest %d in order", ids, len(ids))
		}
	}
	if !strings.Contains(m.Log(), "more than its cap of 40") {
		t.Errorf("the launcher did not say it cut the oplog:\n%s", m.Log())
	}

	cs.Next(ctx)
	var ce mongo.CommandError
	if !errors.As(cs.Err(), &ce) || ce.Code != 286 {
		t.Fatalf("a change stream opened before the cut and not read since: %v, want ChangeStreamHistoryLost (286)", cs.Err())
	}
}

package snapshot

import (
	"context"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/internal/services"
)

// TestChunksReadFromThePrimary: with a MongoDB URI that prefers secondaries,
// the plan's scan of the _ids follows the URI but every chunk is read from
// the primary, the only member sure to hold every write up to the cluster
// time a chunk's rows carry as their version. The test server of its own
// reports itself as a replica set's primary, so that the driver sends read
// preferences (it sends none to a standalone); on a direct connection it
// sends a primary read as primaryPreferred.
func TestChunksReadFromThePrimary(t *testing.T) {
	m := services.StartMongo(t, "--replica-set", "rs0")
	r := ordersRigOn(t, m.Client, 1_000)
	var mu sync.Mutex
	modes := map[string][]string{} // "plan" or "chunk" -> the $readPreference modes of its finds
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "find" || e.DatabaseName != r.db {
			return
		}
		kind := "chunk"
		if _, err := e.Command.LookupErr("projection"); err == nil {
			kind = "plan"
		}
		mode, _ := e.Command.Lookup("$readPreference", "mode").StringValueOK()
		mu.Lock()
		modes[kind] = append(modes[kind], mode)
		mu.Unlock()
	}}
	mc, err := mongo.Connect(options.Client().ApplyURI(m.URI + "&readPreference=secondaryPreferred").SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()

	if _, err := New(r.config(2), r.mapping, mc, r.topics, quietTestLog(), nil, nil).Run(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.checkComplete(t, 1)

	mu.Lock()
	defer mu.Unlock()
	if len(modes["plan"]) == 0 || len(modes["chunk"]) < 10 {
		t.Fatalf("saw %d plan and %d chunk finds, want a plan's scan and the 10 chunks' reads", len(modes["plan"]), len(modes["chunk"]))
	}
	for _, mode := range modes["plan"] {
		if mode != "secondaryPreferred" {
			t.Fatalf("the plan's scan was sent with read preference %q, want the URI's secondaryPreferred", mode)
		}
	}
	for _, mode := range modes["chunk"] {
		if mode != "primaryPreferred" {
			t.Fatalf("a chunk was read with read preference %q, want the primary (primaryPreferred on a direct connection)", mode)
		}
	}
}

// Package services hands integration tests the real servers that `make test`
// starts (Apache Kafka, PostgreSQL, mongo-java-server), found through the
// KAFKA_SEEDS, PG_URL and MONGO_URI environment variables.
//
// Its promises: with a variable unset, the test is skipped with a message that
// names `make test`; with it set, a server that does not answer fails the test
// (it is never skipped); every test gets names of its own (topic prefix,
// database, table) so tests do not see each other's data.
package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/target"
	"github.com/docshift/docshift/topic"
)

func require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: this integration test needs the real services; run `make test`, which starts them", name)
	}
	return v
}

// Unique returns a short name unique to this test run, e.g. "t3f9a0c1e".
func Unique(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b)
}

// Context returns a context cancelled at the end of the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Kafka returns a topic config with a topic prefix of the test's own and a
// connected plain client.
func Kafka(t testing.TB) (topic.Config, *kgo.Client) {
	t.Helper()
	cfg := topic.DefaultConfig()
	cfg.Seeds = require(t, "KAFKA_SEEDS")
	cfg.Prefix = Unique(t)
	cfg.Partitions = 4
	cl, err := topic.NewClient(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("KAFKA_SEEDS is set but Kafka does not answer: %v", err)
	}
	t.Cleanup(cl.Close)
	return cfg, cl
}

// Postgres returns a target config and a connected pool.
func Postgres(t testing.TB) (target.Config, *pgxpool.Pool) {
	t.Helper()
	cfg := target.DefaultConfig()
	cfg.URL = require(t, "PG_URL")
	pool, err := target.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatalf("PG_URL is set but PostgreSQL does not answer: %v", err)
	}
	t.Cleanup(pool.Close)
	return cfg, pool
}

// Mongo returns a source config and a connected client.
func Mongo(t testing.TB) (source.Config, *mongo.Client) {
	t.Helper()
	cfg := source.DefaultConfig()
	cfg.URI = require(t, "MONGO_URI")
	cl, err := source.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatalf("MONGO_URI is set but MongoDB does not answer: %v", err)
	}
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cfg, cl
}

package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mapping returns the mapping file of a data set made by Seed with cfg.
func Mapping(cfg Config) string {
	return fmt.Sprintf(mappingTemplate, cfg.Database, cfg.Collection, cfg.Table)
}

const mappingTemplate = `# The demo data set: one orders collection shared by several tenants.
collections:
  - source: %s.%s
    tenant: {field: tenant_id}
    table: %s
    columns:
      - {path: customer, type: text}
      - {path: status, type: text}
      - {path: total, type: double}
      - {path: items, type: integer}
      - {path: paid, type: boolean}
      - {path: created_at, type: timestamptz}
`

// Config sizes the data set.
type Config struct {
	Database   string
	Collection string
	Table      string // target table in the mapping
	Tenants    int
	Documents  int // per tenant
	Seed       uint64
}

// DefaultConfig returns the data set `make demo` uses.
func DefaultConfig() Config {
	return Config{Database: "demo", Collection: "orders", Table: "orders", Tenants: 4, Documents: 250, Seed: 1}
}

var statuses = []string{"new", "paid", "shipped", "delivered", "cancelled"}

// objectID draws an ObjectID from rng, so that a data set is the same on every
// run with the same seed.
func objectID(rng *rand.Rand) bson.ObjectID {
	var id bson.ObjectID
	for i := range id {
		id[i] = byte(rng.UintN(256))
	}
	return id
}

// Seed drops the collection and inserts the data set. Each tenant has a
// different number of documents (Documents, Documents+1, ...), so per-tenant
// counts tell tenants apart. It returns the number of documents per tenant.
func Seed(ctx context.Context, mc *mongo.Client, cfg Config) (map[string]int, error) {
	coll := mc.Database(cfg.Database).Collection(cfg.Collection)
	if err := coll.Drop(ctx); err != nil {
		return nil, fmt.Errorf("dropping %s.%s: %w", cfg.Database, cfg.Collection, err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	counts := map[string]int{}
	for t := 0; t < cfg.Tenants; t++ {
		tenant := fmt.Sprintf("tenant-%02d", t+1)
		n := cfg.Documents + t
		docs := make([]any, 0, n)
		for i := 0; i < n; i++ {
			docs = append(docs, bson.D{
				{Key: "_id", Value: objectID(rng)},
				{Key: "tenant_id", Value: tenant},
				{Key: "customer", Value: fmt.Sprintf("customer-%d", rng.IntN(1000))},
				{Key: "status", Value: statuses[rng.IntN(len(statuses))]},
				{Key: "total", Value: float64(rng.IntN(100000)) / 100},
				{Key: "items", Value: int32(1 + rng.IntN(9))},
				{Key: "paid", Value: rng.IntN(2) == 0},
				{Key: "created_at", Value: bson.NewDateTimeFromTime(base.Add(time.Duration(rng.IntN(365*24)) * time.Hour))},
				{Key: "note", Value: fmt.Sprintf("unmapped field %d", i)}, // lands in _extra
			})
		}
		if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			return nil, fmt.Errorf("inserting into %s.%s: %w", cfg.Database, cfg.Collection, err)
		}
		counts[tenant] = n
	}
	return counts, nil
}

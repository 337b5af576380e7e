package schemas

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Namespaces lists the concrete collections the mapping maps, in mapping
// order: named collections as they are, patterns expanded by listing the
// deployment's databases and collections. keep, when not nil, filters them
// (for --include/--exclude).
func (m *Mapping) Namespaces(ctx context.Context, mc *mongo.Client, keep func(Namespace) bool) ([]Namespace, error) {
	seen := map[Namespace]bool{}
	var out []Namespace
	add := func(ns Namespace) {
		if !seen[ns] && (keep == nil || keep(ns)) && m.Lookup(ns) != nil {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	var dbs []string
	for _, c := range m.Collections {
		if !c.Source.IsPattern() {
			add(c.Source)
			continue
		}
		if dbs == nil {
			var err error
			if dbs, err = mc.ListDatabaseNames(ctx, bson.D{}); err != nil {
				return nil, fmt.Errorf("listing databases: %w", err)
			}
		}
		for _, db := range dbs {
			if c.Source.Database != "*" && c.Source.Database != db {
				continue
			}
			colls, err := mc.Database(db).ListCollectionNames(ctx, bson.D{})
			if err != nil {
				return nil, fmt.Errorf("listing collections of %s: %w", db, err)
			}
			for _, coll := range colls {
				add(Namespace{Database: db, Collection: coll})
			}
		}
	}
	return out, nil
}

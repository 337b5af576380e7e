package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/schemas"
)

// TenantCount is one line of a report.
type TenantCount struct {
	Collection schemas.Namespace
	Table      string
	Tenant     string
	Source     int64
	Target     int64
}

// Report is the outcome of a comparison.
type Report struct {
	Counts []TenantCount
}

// OK reports whether every count matches.
func (r *Report) OK() bool {
	for _, c := range r.Counts {
		if c.Source != c.Target {
			return false
		}
	}
	return true
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLLECTION\tTABLE\tTENANT\tSOURCE\tTARGET\tSTATE")
	for _, c := range r.Counts {
		mark := "ok"
		if c.Source != c.Target {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", c.Collection, c.Table, c.Tenant, c.Source, c.Target, mark)
	}
	return tw.Flush()
}

// Counts compares every mapped collection's per-tenant counts.
func Counts(ctx context.Context, m *schemas.Mapping, mc *mongo.Client, pool *pgxpool.Pool) (*Report, error) {
	r := &Report{}
	for i := range m.Collections {
		c := &m.Collections[i]
		src, err := sourceCounts(ctx, mc, c)
		if err != nil {
			return nil, err
		}
		dst, err := targetCounts(ctx, pool, c.Table)
		if err != nil {
			return nil, err
		}
		tenants := map[string]bool{}
		for t := range src {
			tenants[t] = true
		}
		for t := range dst {
			tenants[t] = true
		}
		var names []string
		for t := range tenants {
			names = append(names, t)
		}
		slices.Sort(names)
		for _, t := range names {
			r.Counts = append(r.Counts, TenantCount{Collection: c.Source, Table: c.Table, Tenant: t, Source: src[t], Target: dst[t]})
		}
	}
	return r, nil
}

func sourceCounts(ctx context.Context, mc *mongo.Client, c *schemas.Collection) (map[string]int64, error) {
	coll := mc.Database(c.Source.Database).Collection(c.Source.Collection)
	out := map[string]int64{}
	if c.Tenant.Field == "" {
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("counting %s: %w", c.Source, err)
		}
		t := c.Tenant.Constant
		if c.Tenant.Database {
			t = c.Source.Database
		}
		if n > 0 {
			out[t] = n
		}
		return out, nil
	}
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + c.Tenant.Field}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("counting %s by tenant: %w", c.Source, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		t, err := schemas.TenantValue(cur.Current.Lookup("_id"))
		if err != nil {
			t = "(no tenant)"
		}
		out[t] += int64(numeric(cur.Current.Lookup("n")))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("counting %s by tenant: %w", c.Source, err)
	}
	return out, nil
}

func numeric(v bson.RawValue) int64 {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDouble:
		return int64(v.Double())
	}
	return 0
}

func targetCounts(ctx context.Context, pool *pgxpool.Pool, table string) (map[string]int64, error) {
	rows, err := pool.Query(ctx, fmt.Sprintf("SELECT %s, count(*) FROM %s WHERE NOT %s GROUP BY 1",
		schemas.QuoteIdent(schemas.ColTenant), schemas.QuoteIdent(table), schemas.QuoteIdent(schemas.ColDeleted)))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: nothing arrived yet
			return map[string]int64{}, nil
		}
		return nil, fmt.Errorf("counting table %s: %w", table, err)
	}
	out := map[string]int64{}
	var t string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&t, &n}, func() error { out[t] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("counting table %s: %w", table, err)
	}
	return out, nil
}

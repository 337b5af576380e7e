package snapshot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Plan is the recorded chunk plan of one collection in one run.
type Plan struct {
	Run       int64     `json:"run"`
	Namespace string    `json:"ns"`
	Topic     string    `json:"topic"`
	Documents int64     `json:"documents"` // estimated when planned
	Bytes     int64     `json:"bytes"`     // estimated when planned
	Chunks    []Chunk   `json:"chunks"`
	PlannedAt time.Time `json:"planned_at"`
}

// plan splits a collection into chunks of about cfg.ChunkDocs documents and
// at most about cfg.ChunkBytes bytes. A collection that fits one chunk gets
// one chunk without a filter. A larger one is sampled (by a scan of its _ids
// up to scanSampleMax documents, with $sample beyond), the sample sorted in
// BSON order, and every k-th sampled _id becomes a boundary; the type brackets its _ids use are found with one
// indexed probe per bracket, so _ids of a type the sample missed still
// belong to a chunk.
func plan(ctx context.Context, coll *mongo.Collection, ns string, cfg Config) (count, size int64, chunks []Chunk, err error) {
	count, size, err = collectionSize(ctx, coll)
	if err != nil {
		return 0, 0, nil, err
	}
	perChunk := int64(cfg.ChunkDocs)
	if size > 0 && count > 0 {
		avg := size / count
		if avg > 0 && int64(cfg.ChunkBytes)/avg < perChunk {
			perChunk = max(1, int64(cfg.ChunkBytes)/avg)
		}
	}
	if count <= perChunk {
		return count, size, wholeCollection(ns), nil
	}
	present := make([]bool, len(brackets))
	types := make([][]int32, len(brackets))
	n := (count + perChunk - 1) / perChunk
	sampleSize := min(count, n*int64(cfg.SamplesPerChunk))
	var samples []bson.RawValue
	if count <= scanSampleMax {
		// The scan reads every _id anyway: a larger reservoir costs
		// nothing more and makes the chunks even (a chunk's size varies by
		// about 1/sqrt(samples per chunk)), so no worker is left reading a
		// long chunk alone at the end. The reservoir's memory stays bounded
		// for tiny chunks.
		sampleSize = max(sampleSize, min(count, n*scanSamplesPerChunk, scanReservoirMax))
		// The scan sees every _id, so it tells which type brackets occur;
		// only brackets of several types are probed, for the $type codes the
		// server knows.
		var seen map[bson.Type]bool
		if samples, seen, err = scanSampleIDs(ctx, coll, sampleSize); err != nil {
			return 0, 0, nil, fmt.Errorf("planning %s: %w", ns, err)
		}
		for t := range seen {
			if i := bracketIndex(t); i >= 0 {
				present[i] = true
			}
		}
		for i, b := range brackets {
			if present[i] && len(b.types) > 1 {
				if _, types[i], err = probe(ctx, coll, b); err != nil {
					return 0, 0, nil, fmt.Errorf("planning %s: probing _ids of type %s: %w", ns, b.name, err)
				}
			}
		}
	} else {
		for i, b := range brackets {
			if present[i], types[i], err = probe(ctx, coll, b); err != nil {
				return 0, 0, nil, fmt.Errorf("planning %s: probing _ids of type %s: %w", ns, b.name, err)
			}
		}
		if samples, err = sampleIDs(ctx, coll, sampleSize); err != nil {
			// $sample can fail where a scan cannot (mongo-java-server's
			// random sort sometimes does): fall back to the scan.
			samples, _, err = scanSampleIDs(ctx, coll, sampleSize)
		}
		if err != nil {
			return 0, 0, nil, fmt.Errorf("planning %s: %w", ns, err)
		}
	}
	every := max(1, len(samples)/int(n))
	return count, size, splitPoints(ns, present, types, samples, every), nil
}

// probe reports whether some _id has a type of bracket b. A server that
// refuses a $type code it does not know (mongo-java-server has no undefined)
// cannot hold such values: probe then asks per type and returns the codes
// the server knows, which the bracket's chunks then query.
func probe(ctx context.Context, coll *mongo.Collection, b bracket) (bool, []int32, error) {
	find := func(codes bson.A) (bool, error) {
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: codes}}}},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil
		}
		return err == nil, err
	}
	all := b.typeCodes()
	found, err := find(all)
	if err == nil || len(all) == 1 {
		return found, nil, err
	}
	var known []int32
	for _, c := range all {
		f, cerr := find(bson.A{c})
		if cerr != nil {
			continue
		}
		found = found || f
		known = append(known, c.(int32))
	}
	if len(known) == 0 {
		// The server knows none of the bracket's types, or does not answer
		// at all: a string probe tells which.
		if _, serr := find(bson.A{int32(bson.TypeString)}); serr != nil {
			return false, nil, err
		}
	}
	return found, known, nil
}

// collectionSize returns the collection's document count and data size from
// collStats (estimates, as cheap on a large collection as on a small one).
func collectionSize(ctx context.Context, coll *mongo.Collection) (count, size int64, err error) {
	raw, err := coll.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: coll.Name()}}).Raw()
	if err != nil {
		// A missing collection has no stats on some servers: it is empty.
		if n, cerr := coll.EstimatedDocumentCount(ctx); cerr == nil {
			return n, 0, nil
		}
		return 0, 0, fmt.Errorf("reading the size of %s: %w", coll.Name(), err)
	}
	return number(raw.Lookup("count")), number(raw.Lookup("size")), nil
}

func number(v bson.RawValue) int64 {
	if n, ok := v.AsInt64OK(); ok {
		return n
	}
	if f, ok := v.DoubleOK(); ok {
		return int64(f)
	}
	return 0
}

// scanSampleMax is the largest collection sampled by scanning its _ids: a
// covered scan of the _id index (seconds for 10M keys) is cheap next to
// reading the collection, and its reservoir sample is exactly uniform, so
// chunks come out even. Beyond it, $sample reads only the sample.
const scanSampleMax = 10_000_000

// scanSamplesPerChunk is the fewest _ids per chunk a scan keeps: chunks
// within about 5% of each other.
const scanSamplesPerChunk = 400

// scanReservoirMax bounds the scan's reservoir (about 50 bytes an _id) when
// chunks are small enough that 400 per chunk would be more.
const scanReservoirMax = 500_000

// scanSampleIDs reads every _id (only the _id) and keeps a uniform random
// sample of n of them (reservoir sampling: memory bounded by n), sorted in
// BSON order.
func scanSampleIDs(ctx context.Context, coll *mongo.Collection, n int64) ([]bson.RawValue, map[bson.Type]bool, error) {
	// The hint makes MongoDB walk the _id index and answer from it alone
	// (a covered scan): no document is read from storage. A collection
	// without that index (a clustered one) is scanned without the hint.
	find := func(hint bool) (*mongo.Cursor, error) {
		opts := options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(10000)
		if hint {
			opts.SetHint(bson.D{{Key: "_id", Value: 1}})
		}
		return coll.Find(ctx, bson.D{}, opts)
	}
	cur, err := find(true)
	if err != nil {
		cur, err = find(false)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("scanning _ids: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	out := make([]bson.RawValue, 0, n)
	var seen int64
	types := map[bson.Type]bool{}
	for cur.Next(ctx) {
		v, err := cur.Current.LookupErr("_id")
		if err != nil {
			return nil, nil, fmt.Errorf("scanning _ids: a document has no _id")
		}
		seen++
		types[v.Type] = true
		slot := int64(len(out))
		if slot >= n {
			if slot = rng.Int64N(seen); slot >= n {
				continue
			}
		}
		id := bson.RawValue{Type: v.Type, Value: append([]byte(nil), v.Value...)}
		if slot == int64(len(out)) {
			out = append(out, id)
		} else {
			out[slot] = id
		}
	}
	if err := cur.Err(); err != nil {
		return nil, nil, fmt.Errorf("scanning _ids: %w", err)
	}
	slices.SortStableFunc(out, compareValues)
	return out, types, nil
}

// sampleIDs returns n random _ids sorted in BSON order (sorted here: a
// server-side $sort of mixed types fails on mongo-java-server).
func sampleIDs(ctx context.Context, coll *mongo.Collection, n int64) ([]bson.RawValue, error) {
	pipeline := bson.A{
		bson.D{{Key: "$sample", Value: bson.D{{Key: "size", Value: n}}}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}},
	}
	cur, err := coll.Aggregate(ctx, pipeline, options.Aggregate().SetAllowDiskUse(true))
	if err != nil {
		return nil, fmt.Errorf("sampling _ids: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	out := make([]bson.RawValue, 0, n)
	for cur.Next(ctx) {
		v, err := cur.Current.LookupErr("_id")
		if err != nil {
			return nil, fmt.Errorf("sampling _ids: a sampled document has no _id")
		}
		out = append(out, bson.RawValue{Type: v.Type, Value: append([]byte(nil), v.Value...)})
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("sampling _ids: %w", err)
	}
	slices.SortStableFunc(out, compareValues)
	return out, nil
}

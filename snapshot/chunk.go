package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/schemas"
)

// Chunk is one unit of snapshot work: the documents of one collection whose
// _id lies in one BSON type bracket and in [Min, Max). A chunk with no
// bracket covers the whole collection (a small collection's only chunk).
// Chunks are planned once per run and recorded, so every process and every
// restart reads exactly the same ranges.
type Chunk struct {
	Namespace string  `json:"ns"`                // database.collection
	Seq       int     `json:"seq"`               // position in the collection's plan
	Bracket   string  `json:"bracket,omitempty"` // "" = every _id
	Types     []int32 `json:"types,omitempty"`   // $type codes of the bracket the server knows; empty: all
	Min       *Bound  `json:"min,omitempty"`     // inclusive; nil = the bracket's start
	Max       *Bound  `json:"max,omitempty"`     // exclusive; nil = the bracket's end
}

// ID names the chunk within its run, e.g. "shop.orders/7".
func (c *Chunk) ID() string { return fmt.Sprintf("%s/%d", c.Namespace, c.Seq) }

// Filter returns the find filter of the chunk's documents. Besides the range
// it always names the bracket's types with $type, so a bound never matches
// across brackets even on a server that compares values of different types.
func (c *Chunk) Filter() (bson.D, error) {
	if c.Bracket == "" {
		if c.Min != nil || c.Max != nil {
			return nil, fmt.Errorf("%w: chunk %s has bounds but no type bracket", ErrBadState, c.ID())
		}
		return bson.D{}, nil
	}
	i := bracketByName(c.Bracket)
	if i < 0 {
		return nil, fmt.Errorf("%w: chunk %s has unknown type bracket %q", ErrBadState, c.ID(), c.Bracket)
	}
	codes := brackets[i].typeCodes()
	if len(c.Types) > 0 {
		codes = make(bson.A, len(c.Types))
		for j, t := range c.Types {
			codes[j] = t
		}
	}
	cond := bson.D{{Key: "$type", Value: codes}}
	if c.Min != nil {
		cond = append(cond, bson.E{Key: "$gte", Value: c.Min.Value})
	}
	if c.Max != nil {
		cond = append(cond, bson.E{Key: "$lt", Value: c.Max.Value})
	}
	return bson.D{{Key: "_id", Value: cond}}, nil
}

// Bound is one _id value bounding a chunk. It is recorded in canonical
// Extended JSON, which keeps its BSON type.
type Bound struct{ Value bson.RawValue }

// MarshalJSON writes the bound as canonical Extended JSON.
func (b *Bound) MarshalJSON() ([]byte, error) {
	out, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: b.Value}}, true, false)
	if err != nil {
		return nil, fmt.Errorf("encoding chunk bound: %w", err)
	}
	return out, nil
}

// UnmarshalJSON reads a bound written by MarshalJSON.
func (b *Bound) UnmarshalJSON(data []byte) error {
	var doc bson.Raw
	if err := bson.UnmarshalExtJSON(data, true, &doc); err != nil {
		return fmt.Errorf("%w: chunk bound %s: %v", ErrBadState, data, err)
	}
	v, err := doc.LookupErr("v")
	if err != nil || len(doc) == 0 {
		return fmt.Errorf("%w: chunk bound %s has no value", ErrBadState, data)
	}
	if bracketIndex(v.Type) < 0 {
		return fmt.Errorf("%w: chunk bound %s has BSON type %d", ErrBadState, data, v.Type)
	}
	b.Value = bson.RawValue{Type: v.Type, Value: append([]byte(nil), v.Value...)}
	return nil
}

func (b *Bound) String() string {
	s, err := schemas.CanonicalID(b.Value)
	if err != nil {
		return "?"
	}
	return s
}

// splitPoints cuts a collection into chunks. present holds the indexes (into
// brackets) of the type brackets the collection's _ids use; samples are
// sampled _ids sorted in BSON order (as the server sorts them); every k-th
// sample becomes a chunk boundary. types[b], when not nil, holds the $type
// codes of bracket b that the server knows. Every present bracket gets at least one
// chunk, open at both ends, so together the chunks cover every _id of those
// types whatever the sample missed. The result is deterministic.
func splitPoints(ns string, present []bool, types [][]int32, samples []bson.RawValue, every int) []Chunk {
	if every < 1 {
		every = 1
	}
	points := make([][]bson.RawValue, len(brackets))
	for _, v := range samples {
		if b := bracketIndex(v.Type); b >= 0 {
			present[b] = true
		}
	}
	for i := every; i < len(samples); i += every {
		v := samples[i]
		b := bracketIndex(v.Type)
		if b < 0 {
			continue
		}
		ps := points[b]
		if len(ps) > 0 && equalValue(ps[len(ps)-1], v) {
			continue
		}
		points[b] = append(ps, v)
	}
	var chunks []Chunk
	for b := range brackets {
		if !present[b] {
			continue
		}
		var lo *Bound
		for _, p := range points[b] {
			hi := &Bound{Value: p}
			chunks = append(chunks, Chunk{Namespace: ns, Seq: len(chunks), Bracket: brackets[b].name, Types: types[b], Min: lo, Max: hi})
			lo = hi
		}
		chunks = append(chunks, Chunk{Namespace: ns, Seq: len(chunks), Bracket: brackets[b].name, Types: types[b], Min: lo})
	}
	return chunks
}

func equalValue(a, b bson.RawValue) bool {
	return a.Type == b.Type && bytes.Equal(a.Value, b.Value)
}

// wholeCollection is the plan of a small collection: one chunk, no filter.
func wholeCollection(ns string) []Chunk {
	return []Chunk{{Namespace: ns}}
}

// task is a chunk to read in a run: the value of a task topic record.
type task struct {
	Run   int64 `json:"run"`
	Chunk Chunk `json:"chunk"`
}

func decodeTask(b []byte) (task, error) {
	var t task
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("%w: task %q: %v", ErrBadState, truncate(b), err)
	}
	if t.Run < 1 || t.Chunk.Namespace == "" {
		return t, fmt.Errorf("%w: task %q names no run or collection", ErrBadState, truncate(b))
	}
	if _, err := t.Chunk.Filter(); err != nil {
		return t, err
	}
	return t, nil
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

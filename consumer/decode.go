package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
)

// change is one decoded record, ready to apply.
type change struct {
	env    *schemas.Envelope
	schema *schemas.Schema
	rec    *kgo.Record
}

// decode reads one record's value. A value that can never decode (not a
// docshift envelope, a schema fingerprint the schema topic does not hold, a
// datum that does not match its schema, an envelope without an id)
// returns an error wrapping ErrPoison; any other error (the schema topic could
// not be read) is transient.
//
// The datum is decoded with hamba/avro, from the writer schema the registry
// holds: it decodes a record in about half the time and allocations of
// goavro's generic decoder, which was the consumer's largest CPU cost.
func decode(ctx context.Context, reg *schemas.Registry, dec *decoders, r *kgo.Record) (change, error) {
	s, datum, err := reg.SchemaOf(ctx, r.Value) // either framing: single-object or Confluent
	switch {
	case errors.Is(err, schemas.ErrNotDocshiftRecord), errors.Is(err, schemas.ErrUnknownSchema):
		return change{}, fmt.Errorf("%w: %w", ErrPoison, err)
	case err != nil:
		return change{}, err
	}
	env, err := dec.decode(s, datum)
	if err != nil { // the schema is known; the datum does not match it
		return change{}, fmt.Errorf("%w: %w", ErrPoison, err)
	}
	if env.ID == "" {
		return change{}, fmt.Errorf("%w: envelope of table %s has no id", ErrPoison, s.Table.Name)
	}
	return change{env: env, schema: s, rec: r}, nil
}

// decoders holds the hamba/avro form of each writer schema seen, by
// fingerprint (as many as the schema topic holds, no more).
type decoders struct {
	mu sync.Mutex
	m  map[uint64]avro.Schema
}

func newDecoders() *decoders { return &decoders{m: map[uint64]avro.Schema{}} }

// envelopeDatum is the envelope record as hamba decodes it.
type envelopeDatum struct {
	Op      string         `avro:"op"`
	Version int64          `avro:"version"`
	Source  sourceDatum    `avro:"source"`
	Tenant  string         `avro:"tenant"`
	ID      string         `avro:"id"`
	Row     map[string]any `avro:"row"` // {the row record's full name: the row}; nil for a delete
}

type sourceDatum struct {
	DB          string `avro:"db"`
	Collection  string `avro:"collection"`
	ClusterTime int64  `avro:"cluster_time"`
	Snapshot    bool   `avro:"snapshot"`
}

// decode reads one envelope datum written with s. Row values are as goavro's
// decoder gives them, except that Avro ints are Go ints.
func (d *decoders) decode(s *schemas.Schema, datum []byte) (*schemas.Envelope, error) {
	d.mu.Lock()
	hs, ok := d.m[s.Fingerprint]
	d.mu.Unlock()
	if !ok {
		var err error
		if hs, err = avro.Parse(s.JSON); err != nil {
			return nil, fmt.Errorf("parsing the schema of %s: %w", s.Table.Name, err)
		}
		d.mu.Lock()
		d.m[s.Fingerprint] = hs
		d.mu.Unlock()
	}
	var e envelopeDatum
	if err := avro.Unmarshal(hs, datum, &e); err != nil {
		return nil, fmt.Errorf("decoding %s record: %w", s.Table.Name, err)
	}
	var row map[string]any
	for _, v := range e.Row { // the union's one branch
		if row, ok = v.(map[string]any); !ok {
			return nil, fmt.Errorf("decoding %s record: row is %T", s.Table.Name, v)
		}
	}
	return &schemas.Envelope{Op: schemas.Op(e.Op), Version: e.Version, Tenant: e.Tenant, ID: e.ID, Row: row,
		Source: schemas.Source{Database: e.Source.DB, Collection: e.Source.Collection,
			ClusterTime: e.Source.ClusterTime, Snapshot: e.Source.Snapshot}}, nil
}

// collapse keeps, per table and key, only the change with the highest version
// (the later offset on a tie), in first-seen order. Within one batch the
// database then sees each row once.
func collapse(changes []change) []change {
	type key struct{ table, tenant, id string }
	idx := make(map[key]int, len(changes))
	kept := make([]change, 0, len(changes))
	for _, c := range changes {
		k := key{c.schema.Table.Name, c.env.Tenant, c.env.ID}
		if i, ok := idx[k]; ok {
			if c.env.Version >= kept[i].env.Version {
				kept[i] = c
			}
			continue
		}
		idx[k] = len(kept)
		kept = append(kept, c)
	}
	return kept
}

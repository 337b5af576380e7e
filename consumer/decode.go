package consumer

import (
	"context"
	"errors"
	"fmt"

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
func decode(ctx context.Context, reg *schemas.Registry, r *kgo.Record) (change, error) {
	env, s, err := reg.Decode(ctx, r.Value) // either framing: single-object or Confluent
	switch {
	case err != nil && s != nil: // the schema is known; the datum does not match it
		return change{}, fmt.Errorf("%w: %w", ErrPoison, err)
	case errors.Is(err, schemas.ErrNotDocshiftRecord), errors.Is(err, schemas.ErrUnknownSchema):
		return change{}, fmt.Errorf("%w: %w", ErrPoison, err)
	case err != nil:
		return change{}, err
	}
	if env.ID == "" {
		return change{}, fmt.Errorf("%w: envelope of table %s has no id", ErrPoison, s.Table.Name)
	}
	return change{env: env, schema: s, rec: r}, nil
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

package schemas

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Registry publishes envelope schemas to a compacted Kafka topic and resolves
// the fingerprint of a single-object encoded record to its schema, so that a
// Kafka cluster alone is enough to decode every docshift record.
//
// The schema topic's records have the fingerprint (16 hex digits) as key and
// the schema JSON as value.
type Registry struct {
	client *kgo.Client
	topic  string

	mu   sync.Mutex
	byFP map[uint64]*Schema

	// refreshing serializes reads of the schema topic: they share the
	// client's consumer, so two at once would take each other's records.
	refreshing sync.Mutex
}

// NewRegistry returns a registry on the given schema topic. The client is used
// to produce schemas and to read the topic; it must not be a group consumer.
func NewRegistry(client *kgo.Client, topic string) *Registry {
	return &Registry{client: client, topic: topic, byFP: map[uint64]*Schema{}}
}

// Topic returns the schema topic's name.
func (r *Registry) Topic() string { return r.topic }

func fingerprintKey(fp uint64) []byte {
	return []byte(fmt.Sprintf("%016x", fp))
}

// Register makes s resolvable by its fingerprint: it is written to the schema
// topic (synchronously, before any record that uses it) unless it is already
// known.
func (r *Registry) Register(ctx context.Context, s *Schema) error {
	r.mu.Lock()
	_, known := r.byFP[s.Fingerprint]
	r.mu.Unlock()
	if known {
		return nil
	}
	rec := &kgo.Record{Topic: r.topic, Key: fingerprintKey(s.Fingerprint), Value: []byte(s.JSON)}
	if err := r.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("publishing schema of table %s to %s: %w", s.Table.Name, r.topic, err)
	}
	r.mu.Lock()
	r.byFP[s.Fingerprint] = s
	r.mu.Unlock()
	return nil
}

// Lookup returns the schema with fingerprint fp, reading the schema topic again
// if it is not known yet.
func (r *Registry) Lookup(ctx context.Context, fp uint64) (*Schema, error) {
	r.mu.Lock()
	s, ok := r.byFP[fp]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	r.refreshing.Lock()
	defer r.refreshing.Unlock()
	r.mu.Lock()
	s, ok = r.byFP[fp]
	r.mu.Unlock()
	if ok { // another caller's refresh found it meanwhile
		return s, nil
	}
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.byFP[fp]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w %016x (not in schema topic %s)", ErrUnknownSchema, fp, r.topic)
}

// Decode decodes a single-object encoded docshift record with its schema.
func (r *Registry) Decode(ctx context.Context, value []byte) (*Envelope, *Schema, error) {
	fp, err := Fingerprint(value)
	if err != nil {
		return nil, nil, err
	}
	s, err := r.Lookup(ctx, fp)
	if err != nil {
		return nil, nil, err
	}
	e, err := s.Decode(value)
	return e, s, err
}

// Refresh reads the schema topic from its start to its current end.
func (r *Registry) Refresh(ctx context.Context) error {
	r.refreshing.Lock()
	defer r.refreshing.Unlock()
	return r.refresh(ctx)
}

func (r *Registry) refresh(ctx context.Context) error {
	adm := kadm.NewClient(r.client)
	ends, err := adm.ListEndOffsets(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("reading schema topic %s: %w", r.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("reading schema topic %s: %w", r.topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("reading schema topic %s: %w", r.topic, err)
	}
	offsets := map[string]map[int32]kgo.Offset{r.topic: {}}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > start.Offset {
			want[o.Partition] = o.Offset
			offsets[r.topic][o.Partition] = kgo.NewOffset().At(start.Offset)
		}
	})
	if len(want) == 0 {
		return nil
	}
	r.client.AddConsumePartitions(offsets)
	defer r.client.RemoveConsumePartitions(map[string][]int32{r.topic: keys(want)})
	for len(want) > 0 {
		fetches := r.client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading schema topic %s: %w", r.topic, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if t == r.topic {
				ferr = fmt.Errorf("reading schema topic %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var perr error
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Topic != r.topic {
				return
			}
			if rec.Offset+1 >= want[rec.Partition] {
				delete(want, rec.Partition)
			}
			if rec.Value == nil || perr != nil {
				return
			}
			s, err := ParseSchema(string(rec.Value))
			if err != nil {
				perr = fmt.Errorf("schema topic %s offset %d: %w", r.topic, rec.Offset, err)
				return
			}
			if want, _ := strconv.ParseUint(string(rec.Key), 16, 64); want != s.Fingerprint {
				perr = fmt.Errorf("schema topic %s offset %d: key %s does not match the schema's fingerprint %016x",
					r.topic, rec.Offset, rec.Key, s.Fingerprint)
				return
			}
			r.mu.Lock()
			r.byFP[s.Fingerprint] = s
			r.mu.Unlock()
		})
		if perr != nil {
			return perr
		}
	}
	return nil
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

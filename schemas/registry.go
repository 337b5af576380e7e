package schemas

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/docshift/docshift/topic"
)

// Registry makes every record's schema findable by its readers, in one of two
// framings:
//
//   - Without a schema registry, envelope schemas go to a compacted Kafka
//     topic (key: the fingerprint as 16 hex digits, value: the schema JSON)
//     and records use Avro single-object encoding (C3 01, the 8-byte
//     fingerprint, the datum): a Kafka cluster alone is enough.
//   - With a schema registry (Confluent, Apicurio in its Confluent API,
//     Redpanda, Karapace), schemas are registered under the subject
//     "<envelope full name>" (the record name strategy) and records use the
//     Confluent wire format (0x00, the 4-byte schema id, the datum), which
//     Kafka Connect, Flink, Spark and ksqlDB read.
//
// Decode reads both framings, whichever the registry was made for.
type Registry struct {
	client *kgo.Client // schema topic; nil in registry-only mode
	topic  string
	sr     *sr.Client // nil without a schema registry

	mu   sync.Mutex
	byFP map[uint64]*Schema
	byID map[int]*Schema

	// refreshing serializes reads of the schema topic: they share the
	// client's consumer, so two at once would take each other's records.
	refreshing sync.Mutex
}

// NewRegistry returns a registry on the given schema topic. The client is used
// to produce schemas and to read the topic; it must not be a group consumer.
func NewRegistry(client *kgo.Client, topic string) *Registry {
	return &Registry{client: client, topic: topic, byFP: map[uint64]*Schema{}, byID: map[int]*Schema{}}
}

// NewConfluentRegistry returns a registry that registers schemas with a
// schema registry at urls (Confluent wire format). client and topic, when
// given, still let Decode read single-object encoded records.
func NewConfluentRegistry(urls []string, client *kgo.Client, topic string) (*Registry, error) {
	c, err := sr.NewClient(sr.URLs(urls...))
	if err != nil {
		return nil, fmt.Errorf("schema registry at %v: %w", urls, err)
	}
	r := NewRegistry(client, topic)
	r.sr = c
	return r, nil
}

// OpenRegistry returns the registry a process uses: a schema registry when
// registryURLs are given, else the schema topic.
func OpenRegistry(client *kgo.Client, schemaTopic string, registryURLs []string) (*Registry, error) {
	if len(registryURLs) == 0 {
		return NewRegistry(client, schemaTopic), nil
	}
	return NewConfluentRegistry(registryURLs, client, schemaTopic)
}

// Subject is the schema registry subject of a schema (record name strategy).
func (s *Schema) Subject() string { return s.fullName }

// Topic returns the schema topic's name.
func (r *Registry) Topic() string { return r.topic }

func fingerprintKey(fp uint64) []byte {
	return []byte(fmt.Sprintf("%016x", fp))
}

// Register makes s resolvable by its fingerprint: it is written to the schema
// topic (synchronously, before any record that uses it) unless it is already
// known.
func (r *Registry) Register(ctx context.Context, s *Schema) error {
	if r.sr != nil {
		return r.registerConfluent(ctx, s)
	}
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

// registerConfluent registers s with the schema registry and makes s write
// the Confluent wire format with the id it got.
func (r *Registry) registerConfluent(ctx context.Context, s *Schema) error {
	if s.registryID != 0 {
		return nil
	}
	ss, err := r.sr.CreateSchema(ctx, s.Subject(), sr.Schema{Schema: s.JSON, Type: sr.TypeAvro})
	if err != nil {
		return fmt.Errorf("registering schema of table %s as subject %s: %w", s.Table.Name, s.Subject(), err)
	}
	s.registryID = ss.ID
	r.mu.Lock()
	r.byID[ss.ID] = s
	r.mu.Unlock()
	return nil
}

// lookupID returns the schema with a schema registry id.
func (r *Registry) lookupID(ctx context.Context, id int) (*Schema, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	if r.sr == nil {
		return nil, fmt.Errorf("%w: record names schema registry id %d, but no schema registry is configured", ErrUnknownSchema, id)
	}
	got, err := r.sr.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: schema registry id %d: %w", ErrUnknownSchema, id, err)
	}
	s, err = ParseSchema(got.Schema)
	if err != nil {
		return nil, fmt.Errorf("schema registry id %d: %w", id, err)
	}
	s.registryID = id
	r.mu.Lock()
	r.byID[id] = s
	r.mu.Unlock()
	return s, nil
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

// Decode decodes a docshift record, in either framing, with its schema.
func (r *Registry) Decode(ctx context.Context, value []byte) (*Envelope, *Schema, error) {
	s, _, err := r.SchemaOf(ctx, value)
	if err != nil {
		return nil, nil, err
	}
	e, err := s.Decode(value)
	return e, s, err
}

// SchemaOf returns the writer schema of a docshift record, in either framing,
// and its Avro datum (the value without its framing header), for decoders
// other than Decode's.
func (r *Registry) SchemaOf(ctx context.Context, value []byte) (*Schema, []byte, error) {
	if id, ok := confluentID(value); ok {
		s, err := r.lookupID(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		return s, value[5:], nil
	}
	fp, err := Fingerprint(value)
	if err != nil {
		return nil, nil, err
	}
	if r.client == nil {
		return nil, nil, fmt.Errorf("%w %016x: no schema topic is configured", ErrUnknownSchema, fp)
	}
	s, err := r.Lookup(ctx, fp)
	if err != nil {
		return nil, nil, err
	}
	return s, value[10:], nil
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
			if t == r.topic && ferr == nil && !topic.Transient(err) {
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

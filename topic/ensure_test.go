package topic_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/internal/services"
	"github.com/docshift/docshift/topic"
)

// TestEnsureAll creates docshift's topics on the real broker, each
// with its own partitions and configs; a second call finds them and changes
// nothing; a failing ensurer's error comes back naming its topic.
func TestEnsureAll(t *testing.T) {
	cfg, cl := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	tasks := func(ctx context.Context, cl *kgo.Client, tc topic.Config) error {
		return topic.EnsureSnapshotTasks(ctx, cl, tc, 7)
	}
	for range 2 {
		if err := topic.EnsureAll(ctx, cl, cfg, topic.EnsureSchemas, topic.EnsureState, tasks, topic.EnsureDLQ, topic.EnsureStreams); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, cfg.Schemas(), cfg.State(), cfg.SnapshotTasks(), cfg.DLQ(), cfg.Streams())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{cfg.Schemas(): 1, cfg.State(): 1, cfg.SnapshotTasks(): 7, cfg.DLQ(): 1, cfg.Streams(): 1}
	for name, parts := range want {
		d, ok := details[name]
		if !ok || d.Err != nil {
			t.Fatalf("topic %s: not created (%v)", name, d.Err)
		}
		if len(d.Partitions) != parts {
			t.Errorf("topic %s: %d partitions, want %d", name, len(d.Partitions), parts)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, cfg.State(), cfg.DLQ())
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, r := range rc {
		for _, c := range r.Configs {
			if c.Key == "cleanup.policy" {
				policy[r.Name] = c.MaybeValue()
			}
		}
	}
	if policy[cfg.State()] != "compact" || policy[cfg.DLQ()] != "delete" {
		t.Errorf("cleanup.policy: state %q, dlq %q; want compact, delete", policy[cfg.State()], policy[cfg.DLQ()])
	}

	bad := cfg
	bad.Prefix = cfg.Prefix + "-bad"
	badTasks := func(ctx context.Context, cl *kgo.Client, tc topic.Config) error {
		return topic.EnsureSnapshotTasks(ctx, cl, tc, 0) // no partitions: the broker refuses
	}
	err = topic.EnsureAll(ctx, cl, bad, topic.EnsureSchemas, badTasks)
	if err == nil || !strings.Contains(err.Error(), bad.SnapshotTasks()) {
		t.Fatalf("EnsureAll with a topic the broker refuses: %v, want an error naming %s", err, bad.SnapshotTasks())
	}
	if d, err := adm.ListTopics(ctx, bad.Schemas()); err != nil || d[bad.Schemas()].Err != nil {
		t.Errorf("the other ensurer's topic %s was not created beside the failing one: %v", bad.Schemas(), err)
	}
}

// TestEnsuredTopicsAreUsableAtOnce: when EnsureAll returns, every topic it
// created answers for its offsets on the first try (the controller
// acknowledges a topic before the brokers know it; Ensure waits for that).
func TestEnsuredTopicsAreUsableAtOnce(t *testing.T) {
	base, cl := services.Kafka(t)
	ctx := services.Context(t, 2*time.Minute)
	adm := kadm.NewClient(cl)
	for i := range 15 {
		cfg := base
		cfg.Prefix = fmt.Sprintf("%s-%d", base.Prefix, i)
		tasks := func(ctx context.Context, cl *kgo.Client, tc topic.Config) error {
			return topic.EnsureSnapshotTasks(ctx, cl, tc, 8)
		}
		if err := topic.EnsureAll(ctx, cl, cfg, topic.EnsureSchemas, topic.EnsureState, tasks, topic.EnsureDLQ); err != nil {
			t.Fatal(err)
		}
		names := []string{cfg.Schemas(), cfg.State(), cfg.SnapshotTasks(), cfg.DLQ()}
		ends, err := adm.ListEndOffsets(ctx, names...)
		if err != nil {
			t.Fatalf("round %d: listing end offsets: %v", i, err)
		}
		if err := ends.Error(); err != nil {
			t.Fatalf("round %d: a topic EnsureAll created is not usable yet: %v", i, err)
		}
	}
}

// TestCompressionReachesTheBroker: the batches a docshift client produces
// are stored with the configured codec (the attributes of the batch the
// broker returns), lz4 by default.
func TestCompressionReachesTheBroker(t *testing.T) {
	base, _ := services.Kafka(t)
	ctx := services.Context(t, time.Minute)
	for _, tc := range []struct {
		codec string
		want  int8 // batch attributes & 0x07
	}{{"", 3}, {"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		cfg := base
		if tc.codec != "" {
			cfg.Compression = tc.codec
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cl, err := topic.NewClient(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		name := cfg.Prefix + ".codec." + tc.codec
		if err := topic.EnsureRecords(ctx, cl, cfg, name); err != nil {
			t.Fatal(err)
		}
		recs := make([]*kgo.Record, 50)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: name, Key: []byte("k"), Value: []byte(strings.Repeat("compressible ", 20))}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		rd, err := kgo.NewClient(kgo.SeedBrokers(cfg.SeedList()...), kgo.ConsumeTopics(name),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		var got int8 = -1
		for got < 0 {
			fs := rd.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("codec %q: no batch read back: %v", tc.codec, err)
			}
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				for _, r := range p.Records {
					got = int8(r.Attrs.CompressionType())
				}
			})
		}
		rd.Close()
		if got != tc.want {
			t.Errorf("codec %q: the broker stored batches with compression type %d, want %d", tc.codec, got, tc.want)
		}
	}
}

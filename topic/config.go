package topic

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says how to reach Kafka and how docshift's topics are named and made.
type Config struct {
	Seeds             string        // comma-separated host:port list
	Prefix            string        // topic name prefix
	Partitions        int           // partitions of a new records topic
	ReplicationFactor int           // replication factor of new topics (-1: broker default)
	MinCompactionLag  time.Duration // min.compaction.lag.ms of records topics
	SchemaRegistry    string        // comma-separated schema registry URLs; empty: the schema topic
	Compression       string        // codec of the record batches docshift produces: lz4, zstd, snappy, gzip or none
	DialTimeout       time.Duration
}

// DefaultConfig returns the defaults; KAFKA_SEEDS overrides the seed list.
func DefaultConfig() Config {
	seeds := os.Getenv("KAFKA_SEEDS")
	if seeds == "" {
		seeds = "localhost:9092"
	}
	return Config{
		Seeds:             seeds,
		Prefix:            "docshift",
		Partitions:        12,
		ReplicationFactor: -1,
		MinCompactionLag:  7 * 24 * time.Hour,
		DialTimeout:       10 * time.Second,
		Compression:       "lz4",
		SchemaRegistry:    os.Getenv("DOCSHIFT_SCHEMA_REGISTRY"),
	}
}

// RegisterFlags registers the Kafka flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Seeds, "kafka-seeds", c.Seeds, "Kafka bootstrap servers, comma-separated (env KAFKA_SEEDS)")
	fs.StringVar(&c.Prefix, "topic-prefix", c.Prefix, "prefix of docshift's topic names")
	fs.DurationVar(&c.DialTimeout, "kafka-timeout", c.DialTimeout, "how long to wait for Kafka to answer when connecting")
	fs.IntVar(&c.Partitions, "topic-partitions", c.Partitions, "partitions of a records topic docshift creates")
	fs.IntVar(&c.ReplicationFactor, "topic-replication", c.ReplicationFactor, "replication factor of topics docshift creates (-1: broker default)")
	fs.StringVar(&c.SchemaRegistry, "schema-registry", c.SchemaRegistry, "schema registry URLs, comma-separated (Confluent API: Confluent, Apicurio, Redpanda, Karapace); records then use the Confluent wire format. Empty: schemas go to the <prefix>-schemas topic (env DOCSHIFT_SCHEMA_REGISTRY)")
	fs.StringVar(&c.Compression, "kafka-compression", c.Compression, "codec of the record batches docshift produces: lz4, zstd, snappy, gzip or none (lz4 costs the broker the least CPU per record)")
	fs.DurationVar(&c.MinCompactionLag, "topic-min-compaction-lag", c.MinCompactionLag, "history kept complete before compaction (min.compaction.lag.ms)")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if len(c.SeedList()) == 0 {
		return errors.New("kafka-seeds: empty")
	}
	for _, s := range c.SeedList() {
		if !strings.Contains(s, ":") {
			return fmt.Errorf("kafka-seeds: %q is not host:port", s)
		}
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, " /\\") {
		return fmt.Errorf("topic-prefix: %q is not a valid topic name prefix", c.Prefix)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("topic-partitions: %d, want at least 1", c.Partitions)
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		return fmt.Errorf("topic-replication: %d, want -1 or at least 1", c.ReplicationFactor)
	}
	for _, u := range c.RegistryURLs() {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("schema-registry: %q is not an http(s) URL", u)
		}
	}
	if _, err := c.codec(); err != nil {
		return err
	}
	if c.MinCompactionLag < 0 {
		return fmt.Errorf("topic-min-compaction-lag: %s is negative", c.MinCompactionLag)
	}
	return nil
}

// RegistryURLs returns the schema registry URLs, if any.
func (c *Config) RegistryURLs() []string {
	var out []string
	for _, u := range strings.Split(c.SchemaRegistry, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// SeedList returns the seeds as a list.
func (c *Config) SeedList() []string {
	var out []string
	for _, s := range strings.Split(c.Seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// codec returns the Kafka client's codec for Compression.
func (c *Config) codec() (kgo.CompressionCodec, error) {
	switch strings.ToLower(c.Compression) {
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none", "":
		return kgo.NoCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("kafka-compression: %q, want lz4, zstd, snappy, gzip or none", c.Compression)
}

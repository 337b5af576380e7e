package consumer

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Config holds the consumer's own settings.
type Config struct {
	Group         string        // Kafka consumer group
	Topics        string        // comma-separated topics; empty: every records topic of the prefix
	MaxBatch      int           // largest number of records applied in one transaction
	StopAtEnd     bool          // exit once the group has applied everything that was in the topics at start
	ShutdownGrace time.Duration // time an in-flight batch gets to commit on shutdown
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Group: "docshift-sink", MaxBatch: 5000, ShutdownGrace: 30 * time.Second}
}

// RegisterFlags registers the consumer flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Group, "group", c.Group, "Kafka consumer group of the sink")
	fs.StringVar(&c.Topics, "topics", c.Topics, "topics to consume, comma-separated (default: every records topic of --topic-prefix)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "largest number of records applied in one database transaction")
	fs.BoolVar(&c.StopAtEnd, "stop-at-end", c.StopAtEnd, "exit once everything in the topics at start is applied")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time an in-flight batch gets to commit on shutdown")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Group == "" {
		return errors.New("group: empty")
	}
	if c.MaxBatch < 1 {
		return fmt.Errorf("max-batch: %d, want at least 1", c.MaxBatch)
	}
	if c.ShutdownGrace <= 0 {
		return fmt.Errorf("shutdown-grace: %s, want more than 0", c.ShutdownGrace)
	}
	return nil
}

// TopicList returns the explicit topics, if any.
func (c *Config) TopicList() []string {
	var out []string
	for _, t := range strings.Split(c.Topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

package consumer

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"group", func(c *Config) { c.Group = "" }},
		{"max-batch", func(c *Config) { c.MaxBatch = 0 }},
		{"max-batch-bytes", func(c *Config) { c.MaxBatchBytes = 0 }},
		{"batch-wait", func(c *Config) { c.BatchWait = -time.Second }},
		{"shutdown-grace", func(c *Config) { c.ShutdownGrace = 0 }},
		{"session-timeout", func(c *Config) { c.SessionTimeout = 0 }},
		{"fetch-max-bytes", func(c *Config) { c.FetchMaxBytes = 1000 }},
		{"fetch-max-partition-bytes", func(c *Config) { c.FetchMaxPartitionBytes = 100 }},
		{"max-inflight-bytes", func(c *Config) { c.MaxInflightBytes = 1000 }},
		{"max-concurrent-batches", func(c *Config) { c.MaxConcurrentBatches = 0 }},
		{"memory-limit", func(c *Config) { c.MemoryLimit = -1 }},
		{"max-concurrent-fetches", func(c *Config) { c.MaxConcurrentFetches = -1 }},
		{"partition-buffer", func(c *Config) { c.PartitionBuffer = 0 }},
		{"retry-backoff", func(c *Config) { c.RetryBackoff = 0 }},
		{"retry-backoff-max", func(c *Config) { c.RetryBackoffMax = time.Millisecond }},
		{"tombstone-retention", func(c *Config) { c.TombstoneRetention = -time.Hour }},
		{"tombstone-purge-interval", func(c *Config) { c.PurgeInterval = 0 }},
	} {
		cfg := DefaultConfig()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("defaults do not validate: %v", err)
		}
		tc.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("bad %s: Validate() = %v, want an error naming it", tc.field, err)
		}
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docshift/docshift/topic"
)

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	mapping := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(mapping, []byte("collections:\n  - source: a.b\n    tenant: {feld: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"no command", nil, 2, []string{"Usage: docshift <command>", "snapshot", "consume"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`, "Usage: docshift <command>"}},
		{"unknown flag", []string{"consume", "--bogus"}, 2, []string{"flag provided but not defined: -bogus", "Usage: docshift consume", "-pg-url"}},
		{"stray argument", []string{"snapshot", "extra"}, 2, []string{`unexpected argument "extra"`, "Usage: docshift snapshot"}},
		{"bad flag value", []string{"consume", "--max-batch", "0"}, 2, []string{"max-batch: 0", "Usage: docshift consume"}},
		{"bad seeds", []string{"consume", "--kafka-seeds", "nohostport"}, 2, []string{`kafka-seeds: "nohostport" is not host:port`}},
		{"bad compression", []string{"snapshot", "--kafka-compression", "brotli"}, 2, []string{`kafka-compression: "brotli", want lz4, zstd, snappy, gzip or none`}},
		{"bad snapshot flag value", []string{"snapshot", "--gc-percent", "-1"}, 2, []string{"gc-percent: -1", "Usage: docshift snapshot"}},
		{"bad snapshot oversize", []string{"snapshot", "--oversize", "skip"}, 2, []string{`oversize: "skip" is not fail or dlq`, "Usage: docshift snapshot"}},
		{"help", []string{"snapshot", "-h"}, 0, []string{"Usage: docshift snapshot", "-mongo-uri"}},
		{"no mapping", []string{"snapshot"}, 1, []string{"--mapping is required"}},
		{"bad mapping", []string{"snapshot", "--mapping", mapping}, 1, []string{mapping + ":3: collections.tenant.feld: unknown key"}},
		{"missing mapping", []string{"schemas", "ddl", "--mapping", "/nonexistent.yaml"}, 1, []string{"/nonexistent.yaml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := docshift(ctx, t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, want := range tt.contains {
				if !strings.Contains(stdout+stderr, want) {
					t.Errorf("output lacks %q:\n%s%s", want, stdout, stderr)
				}
			}
		})
	}
}

// TestUnreachableServicesAreNamed checks that a dead address fails fast with
// an error naming the service and the address, never a password.
func TestUnreachableServicesAreNamed(t *testing.T) {
	ctx := context.Background()
	mapping := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(mapping, []byte("collections:\n  - source: a.b\n    tenant: {field: t}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := docshift(ctx, t, "snapshot", "--mapping", mapping,
		"--mongo-uri", "mongodb://user:s3cret@127.0.0.1:1/?directConnection=true", "--mongo-timeout", "1s")
	if code != 1 || !strings.Contains(stderr, "connecting to MongoDB at 127.0.0.1:1") {
		t.Errorf("dead MongoDB: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("the MongoDB password leaked: %q", stderr)
	}

	code, _, stderr = docshift(ctx, t, "consume", "--pg-url", "postgres://user:s3cret@127.0.0.1:1/db", "--pg-timeout", "1s")
	if code != 1 || !strings.Contains(stderr, "connecting to PostgreSQL at 127.0.0.1:1/db") {
		t.Errorf("dead PostgreSQL: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("the PostgreSQL password leaked: %q", stderr)
	}

	cfg := topic.DefaultConfig()
	cfg.Seeds = "127.0.0.1:1"
	cfg.DialTimeout = time.Second
	start := time.Now()
	_, err := topic.NewClient(ctx, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "connecting to Kafka at 127.0.0.1:1") {
		t.Errorf("dead Kafka: err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("dead Kafka took %s to report", time.Since(start))
	}
}

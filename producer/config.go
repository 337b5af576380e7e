package producer

import (
	"errors"
	"flag"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/docshift/docshift/topic"
)

// Scopes of change streams.
const (
	ScopeCollection = "collection" // one stream per mapped collection
	ScopeDatabase   = "database"   // one stream per database of a mapped collection
	ScopeDeployment = "deployment" // one stream for the whole deployment
)

// Policies for a resume token that is no longer in the oplog.
const (
	HistoryLostFail       = "fail"
	HistoryLostResnapshot = "resnapshot"
)

// Policies for an event larger than a Kafka record may be.
const (
	OversizeFail = topic.OversizeFail
	OversizeDLQ  = topic.OversizeDLQ
)

// Config holds the producer's own settings.
type Config struct {
	Scope         string
	Include       string // comma-separated database.collection globs; empty: every mapped collection
	Exclude       string // comma-separated globs excluded after Include
	FullDocument  string // updateLookup, whenAvailable or required
	PreImages     bool   // ask for fullDocumentBeforeChange (a deleted document's tenant)
	MaxBatch      int
	BatchWait     time.Duration
	Heartbeat     time.Duration
	OnHistoryLost string
	Oversize      string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Scope:         ScopeCollection,
		FullDocument:  "updateLookup",
		PreImages:     true,
		MaxBatch:      1000,
		BatchWait:     100 * time.Millisecond,
		Heartbeat:     10 * time.Second,
		OnHistoryLost: HistoryLostFail,
		Oversize:      OversizeFail,
	}
}

// RegisterFlags registers the producer flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Scope, "scope", c.Scope, "change streams: collection (one per mapped collection), database, or deployment")
	fs.StringVar(&c.Include, "include", c.Include, "database.collection globs to follow, comma-separated (default: every mapped collection)")
	fs.StringVar(&c.Exclude, "exclude", c.Exclude, "database.collection globs not to follow, comma-separated")
	fs.StringVar(&c.FullDocument, "full-document", c.FullDocument, "full documents of updates: updateLookup, whenAvailable or required (post-images)")
	fs.BoolVar(&c.PreImages, "pre-images", c.PreImages, "ask for pre-images (fullDocumentBeforeChange): a deleted document's tenant when the tenant is a document field")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "largest number of events in one Kafka transaction")
	fs.DurationVar(&c.BatchWait, "batch-wait", c.BatchWait, "longest wait for more events before a transaction commits")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "checkpoint at least this often, even with no events")
	fs.StringVar(&c.OnHistoryLost, "on-history-lost", c.OnHistoryLost, "when the saved resume token is no longer in the oplog: fail, or resnapshot (start a new stream now and snapshot the affected collections again)")
	fs.StringVar(&c.Oversize, "oversize", c.Oversize, "an event too large for Kafka: fail (stop with an error) or dlq (its key and size go to the dead-letter topic)")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch c.Scope {
	case ScopeCollection, ScopeDatabase, ScopeDeployment:
	default:
		return fmt.Errorf("scope: %q is not collection, database or deployment", c.Scope)
	}
	for _, g := range append(c.includes(), c.excludes()...) {
		if _, err := path.Match(g, "x.y"); err != nil {
			return fmt.Errorf("include/exclude: bad glob %q: %w", g, err)
		}
	}
	switch c.FullDocument {
	case "updateLookup", "whenAvailable", "required":
	default:
		return fmt.Errorf("full-document: %q is not updateLookup, whenAvailable or required", c.FullDocument)
	}
	if c.MaxBatch < 1 {
		return fmt.Errorf("max-batch: %d, want at least 1", c.MaxBatch)
	}
	if c.BatchWait < 0 {
		return fmt.Errorf("batch-wait: %s is negative", c.BatchWait)
	}
	if c.Heartbeat <= 0 {
		return errors.New("heartbeat: want more than 0")
	}
	switch c.OnHistoryLost {
	case HistoryLostFail, HistoryLostResnapshot:
	default:
		return fmt.Errorf("on-history-lost: %q is not fail or resnapshot", c.OnHistoryLost)
	}
	switch c.Oversize {
	case OversizeFail, OversizeDLQ:
	default:
		return fmt.Errorf("oversize: %q is not fail or dlq", c.Oversize)
	}
	return nil
}

func globs(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

func (c *Config) includes() []string { return globs(c.Include) }
func (c *Config) excludes() []string { return globs(c.Exclude) }

// follows reports whether the namespace db.coll passes Include and Exclude.
func (c *Config) follows(ns string) bool {
	inc := c.includes()
	ok := len(inc) == 0
	for _, g := range inc {
		if m, _ := path.Match(g, ns); m {
			ok = true
		}
	}
	for _, g := range c.excludes() {
		if m, _ := path.Match(g, ns); m {
			return false
		}
	}
	return ok
}

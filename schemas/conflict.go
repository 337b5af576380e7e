package schemas

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ConflictReporter counts the values that did not fit their columns, per
// table, column and BSON type, and logs the first one of each kind once, so a
// mapping that needs widening is noticed without a log line per document.
type ConflictReporter struct {
	log   *slog.Logger
	count *prometheus.CounterVec

	mu   sync.Mutex
	seen map[conflictKind]bool
}

type conflictKind struct {
	table, column, got string
}

// NewConflictReporter registers docshift_type_conflicts_total on reg.
func NewConflictReporter(log *slog.Logger, reg prometheus.Registerer) *ConflictReporter {
	r := &ConflictReporter{
		log: log,
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_type_conflicts_total",
			Help: "Values that did not fit their column (kept in _extra or sent to the dead-letter topic).",
		}, []string{"table", "column", "bson_type"}),
		seen: map[conflictKind]bool{},
	}
	if reg != nil {
		reg.MustRegister(r.count)
	}
	return r
}

// Report counts a document's conflicts and logs each new kind once.
func (r *ConflictReporter) Report(d *Document) {
	for _, c := range d.Conflicts {
		k := conflictKind{c.Table, c.Column, c.Got.String()}
		r.count.WithLabelValues(k.table, k.column, k.got).Inc()
		r.mu.Lock()
		first := !r.seen[k]
		r.seen[k] = true
		r.mu.Unlock()
		if first {
			r.log.Warn("value does not fit its column; kept in _extra (logged once per table, column and type)",
				"table", c.Table, "column", c.Column, "want", string(c.Want), "got", k.got, "document", d.ID)
		}
	}
}

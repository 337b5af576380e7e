package snapshot

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the snapshot's Prometheus metrics. The chunk and document
// gauges are read from the recorded state at scrape time, so every process
// (and `docshift status`) reports the same numbers; the counters count what
// this process read.
type metrics struct {
	documents   *prometheus.CounterVec
	aborted     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	state       *stateCollector
}

func newMetrics(reg prometheus.Registerer, f *follower) (*metrics, error) {
	m := &metrics{
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "docshift", Subsystem: "snapshot", Name: "documents_read_total",
			Help: "Documents this process read and produced (including chunks whose transaction later aborted).",
		}, []string{"collection"}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "docshift", Subsystem: "snapshot", Name: "chunks_aborted_total",
			Help: "Chunk transactions this process aborted (a rebalance, the broker still completing the previous transaction, or an error); the chunk is read again.",
		}, []string{"collection"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "docshift", Subsystem: "snapshot", Name: "dead_letters_total",
			Help: "Documents this process sent to the dead-letter topic instead of their rows, by reason (including chunks whose transaction later aborted).",
		}, []string{"collection", "reason"}),
		state: &stateCollector{f: f,
			chunks: prometheus.NewDesc("docshift_snapshot_chunks", "Chunks of the current run, planned and done (recorded state).",
				[]string{"collection", "state"}, nil),
			docs: prometheus.NewDesc("docshift_snapshot_documents", "Documents of the current run: estimated when planned, and done (recorded state).",
				[]string{"collection", "state"}, nil),
			run: prometheus.NewDesc("docshift_snapshot_run", "The current snapshot run, and 1 in complete once it is complete.",
				[]string{"complete"}, nil),
		},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.documents, m.aborted, m.deadLetters, m.state} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type stateCollector struct {
	f                 *follower
	chunks, docs, run *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.chunks
	ch <- c.docs
	ch <- c.run
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st, _, err := c.f.snapshot()
	if err != nil || st.Run == 0 {
		return
	}
	complete := "0"
	if !st.Complete.IsZero() {
		complete = "1"
	}
	ch <- prometheus.MustNewConstMetric(c.run, prometheus.GaugeValue, float64(st.Run), complete)
	for _, p := range st.Progress() {
		ch <- prometheus.MustNewConstMetric(c.chunks, prometheus.GaugeValue, float64(p.Chunks), p.Namespace, "planned")
		ch <- prometheus.MustNewConstMetric(c.chunks, prometheus.GaugeValue, float64(p.ChunksDone), p.Namespace, "done")
		ch <- prometheus.MustNewConstMetric(c.docs, prometheus.GaugeValue, float64(p.Documents), p.Namespace, "planned")
		ch <- prometheus.MustNewConstMetric(c.docs, prometheus.GaugeValue, float64(p.DocumentsDone), p.Namespace, "done")
	}
}

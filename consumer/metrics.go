package consumer

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus metrics. Labels are topic and
// partition names only: never a URL or a credential.
type metrics struct {
	records      *prometheus.CounterVec // records applied (offsets committed), by topic
	rows         *prometheus.CounterVec // rows written (newer than the stored version), by topic
	batchSeconds prometheus.Histogram
	lag          *prometheus.GaugeVec // records behind the high watermark, by topic and partition
	dlq          *prometheus.CounterVec
	retries      prometheus.Counter
	purged       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_consumer_records_total",
			Help: "Records applied and committed (rate() gives records/s).",
		}, []string{"topic"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_consumer_rows_written_total",
			Help: "Target rows written; records not newer than the stored row write none.",
		}, []string{"topic"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "docshift_consumer_batch_seconds",
			Help:    "Time to apply and commit one partition batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "docshift_consumer_lag_records",
			Help: "Records between the last committed offset and the high watermark, per assigned partition.",
		}, []string{"topic", "partition"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_consumer_dead_letters_total",
			Help: "Records that can never apply, sent to the dead-letter topic.",
		}, []string{"topic"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "docshift_consumer_retries_total",
			Help: "Retries after transient errors (database or schema topic).",
		}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_consumer_tombstones_purged_total",
			Help: "Tombstone rows deleted after the tombstone retention.",
		}, []string{"table"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // nobody scrapes: count anyway
	}
	for _, c := range []prometheus.Collector{m.records, m.rows, m.batchSeconds, m.lag, m.dlq, m.retries, m.purged} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering consumer metrics: %w", err)
		}
	}
	return m, nil
}

// batch records one applied batch.
func (m *metrics) batch(topic string, partition int32, records, written int, took time.Duration, lag int64) {
	m.records.WithLabelValues(topic).Add(float64(records))
	m.rows.WithLabelValues(topic).Add(float64(written))
	m.batchSeconds.Observe(took.Seconds())
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
}

// forget drops the lag of a partition this member no longer owns.
func (m *metrics) forget(topic string, partition int32) {
	m.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}

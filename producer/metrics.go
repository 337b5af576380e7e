package producer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events       *prometheus.CounterVec // by stream, op
	skipped      *prometheus.CounterVec // by stream, reason
	transactions *prometheus.CounterVec // by stream
	reconnects   *prometheus.CounterVec // by stream
	lag          *prometheus.GaugeVec   // by stream: now - cluster time of the last event
	checkpoint   *prometheus.GaugeVec   // by stream: unix time of the last committed checkpoint
	deadLetters  *prometheus.CounterVec // by stream, reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_producer_events_total", Help: "Change events published, by stream and operation.",
		}, []string{"stream", "op"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_producer_events_skipped_total", Help: "Change events that needed no record (not followed, update of a since-deleted document), by reason.",
		}, []string{"stream", "reason"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_producer_transactions_total", Help: "Kafka transactions committed (records and checkpoint together).",
		}, []string{"stream"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_producer_reconnects_total", Help: "Times a stream was reopened from its checkpoint after an error.",
		}, []string{"stream"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "docshift_producer_lag_seconds", Help: "Now minus the cluster time of the last event published.",
		}, []string{"stream"}),
		checkpoint: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "docshift_producer_last_checkpoint_timestamp_seconds", Help: "When the stream last committed a checkpoint.",
		}, []string{"stream"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "docshift_producer_dead_letters_total", Help: "Events sent to the dead-letter topic, by reason.",
		}, []string{"stream", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.skipped, m.transactions, m.reconnects, m.lag, m.checkpoint, m.deadLetters)
	}
	return m
}

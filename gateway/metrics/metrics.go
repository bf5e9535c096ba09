// Package metrics holds the gateway's Prometheus metrics (prefix
// dockcast_gateway_) in their own registry, with the Go and process
// collectors. Entry points: New, Metrics.Handler.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's metrics.
type Metrics struct {
	Registry        *prometheus.Registry
	Clients         prometheus.Gauge
	MessagesSent    prometheus.Counter
	BytesSent       prometheus.Counter
	SlowConsumers   prometheus.Counter
	ReplaysInFlight prometheus.Gauge
	ReplayCatchup   prometheus.Histogram
	AuthFailures    *prometheus.CounterVec
	LiveSeq         prometheus.Gauge
}

// New registers the metrics in a new registry.
func New() *Metrics {
	const ns = "dockcast_gateway"
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "clients",
			Help: "WebSocket clients connected."}),
		MessagesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_sent_total",
			Help: "Frames written to WebSocket clients."}),
		BytesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_sent_total",
			Help: "Bytes of frames written to WebSocket clients."}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "slow_consumers_total",
			Help: "Clients disconnected because they fell too far behind."}),
		ReplaysInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "replays_in_flight",
			Help: "Replays reading history from the stream now."}),
		ReplayCatchup: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "replay_catchup_seconds",
			Help:    "Time from the start of a replay to its live frame.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total",
			Help: "Refused /ws requests by reason."}, []string{"reason"}),
		LiveSeq: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "live_seq",
			Help: "Last stream sequence received by the live feed."}),
	}
	m.Registry.MustRegister(m.Clients, m.MessagesSent, m.BytesSent, m.SlowConsumers, m.ReplaysInFlight,
		m.ReplayCatchup, m.AuthFailures, m.LiveSeq,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "dockcast_publisher"

// Metrics are the publisher's counters and gauges. The zero value is not
// usable; call [New].
type Metrics struct {
	Registry *prometheus.Registry

	EventsReceived  prometheus.Counter
	EventsPublished prometheus.Counter
	Duplicates      prometheus.Counter
	PublishErrors   prometheus.Counter
	OrderViolations prometheus.Counter
	Gaps            prometheus.Counter
	QueueOverflows  prometheus.Counter
	Reconnects      *prometheus.CounterVec

	lastEvent atomic.Int64 // unix nanos of the last engine event received
}

// New registers every metric on a fresh registry. queueDepth reports the
// current queue length (may be nil).
func New(queueDepth func() float64) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	m.EventsReceived = c("events_received_total", "Events received from the Docker engine.")
	m.EventsPublished = c("events_published_total", "Events acknowledged by JetStream (not counting duplicates).")
	m.Duplicates = c("duplicates_total", "Publishes JetStream acknowledged as duplicates (already stored).")
	m.PublishErrors = c("publish_errors_total", "Failed or timed-out publishes (each is retried).")
	m.OrderViolations = c("order_violations_total",
		"Events stored after a later event of the same publish window (a retry that landed behind an event already stored).")
	m.Gaps = c("gaps_total", "Possible gaps announced (dockcast.gap events, including the first start).")
	m.QueueOverflows = c("queue_overflows_total", "Docker subscriptions closed because the queue was full.")
	m.Reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "reconnects_total", Help: "Reconnections, by target (docker or nats).",
	}, []string{"target"})
	m.Reconnects.WithLabelValues("docker")
	m.Reconnects.WithLabelValues("nats")
	if queueDepth == nil {
		queueDepth = func() float64 { return 0 }
	}
	m.Registry.MustRegister(
		m.EventsReceived, m.EventsPublished, m.Duplicates, m.PublishErrors, m.OrderViolations, m.Gaps, m.QueueOverflows, m.Reconnects,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth", Help: "Events waiting in the queue to be published.",
		}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_event_age_seconds",
			Help: "Age of the last engine event received (0 before the first one).",
		}, m.lastEventAge),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Received records an engine event with its own time.
func (m *Metrics) Received(t time.Time) {
	m.EventsReceived.Inc()
	m.lastEvent.Store(t.UnixNano())
}

func (m *Metrics) lastEventAge() float64 {
	n := m.lastEvent.Load()
	if n == 0 {
		return 0
	}
	return time.Since(time.Unix(0, n)).Seconds()
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

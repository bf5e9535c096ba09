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
	Batches         prometheus.Counter
	Settled         *prometheus.CounterVec
	Lost            prometheus.Counter
	Gaps            prometheus.Counter
	QueueOverflows  prometheus.Counter
	Reconnects      *prometheus.CounterVec
	// Edge mode: SourceLag is, per node, how many messages of the node's
	// local stream the central stream has not copied yet; LeafConnected is
	// 1 while the leaf link to the hub is up.
	SourceLag     *prometheus.GaugeVec
	LeafConnected prometheus.Gauge

	lastEvent atomic.Int64 // unix nanos of the last engine event received
}

// Queue is what the metrics read from the queue.
type Queue interface {
	Len() int
	Bytes() int64
}

// New registers every metric on a fresh registry; q (may be nil) is the
// queue whose depth they report.
func New(q Queue) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	m.EventsReceived = c("events_received_total", "Events received from the Docker engine.")
	m.EventsPublished = c("events_published_total", "Events acknowledged by JetStream (not counting duplicates).")
	m.Duplicates = c("duplicates_total", "Publishes JetStream acknowledged as duplicates (already stored).")
	m.PublishErrors = c("publish_errors_total", "Batches not acknowledged (refused, failed or timed out); each is settled, then retried.")
	m.Batches = c("batches_total", "Batches the stream acknowledged.")
	m.Settled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "settled_total",
		Help: "Batches whose acknowledgement never came, by what the stream showed: stored, or not_stored (sent again).",
	}, []string{"outcome"})
	m.Settled.WithLabelValues("stored")
	m.Settled.WithLabelValues("not_stored")
	m.Lost = c("lost_total", "Events the stream can never take (too large), stored as dockcast.lost stand-ins.")
	m.Gaps = c("gaps_total", "Possible gaps announced (dockcast.gap events, including the first start).")
	m.QueueOverflows = c("queue_overflows_total", "Docker subscriptions closed because the queue was full.")
	m.Reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "reconnects_total", Help: "Reconnections, by target (docker or nats).",
	}, []string{"target"})
	m.Reconnects.WithLabelValues("docker")
	m.Reconnects.WithLabelValues("nats")
	m.SourceLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "source_lag",
		Help: "Edge mode: messages of the node's local stream the central stream has not copied yet (from the central stream's source info; while the hub is out of reach, counted from its last answer).",
	}, []string{"node"})
	m.LeafConnected = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "leaf_connected", Help: "Edge mode: 1 while the leaf-node link to the hub is up.",
	})
	depth, size := func() float64 { return 0 }, func() float64 { return 0 }
	if q != nil {
		depth, size = func() float64 { return float64(q.Len()) }, func() float64 { return float64(q.Bytes()) }
	}
	m.Registry.MustRegister(
		m.EventsReceived, m.EventsPublished, m.Duplicates, m.PublishErrors, m.Batches, m.Settled, m.Lost, m.Gaps, m.QueueOverflows, m.Reconnects, m.SourceLag, m.LeafConnected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth", Help: "Events waiting in the queue to be published.",
		}, depth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_bytes", Help: "Payload bytes waiting in the queue (bounded by PUBLISHER_QUEUE_MAX_BYTES).",
		}, size),
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

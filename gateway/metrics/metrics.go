// Package metrics holds the gateway's Prometheus metrics (prefix
// dockcast_gateway_) in their own registry, with the Go and process
// collectors, and the engines' activity seen on the live feed
// (dockcast_events_total and the container counters, ObserveEvent).
// Entry points: New, Metrics.Handler, Metrics.ObserveEvent.
package metrics

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dockcast/dockcast/shared/event"
)

// Metrics are the gateway's metrics.
type Metrics struct {
	Registry      *prometheus.Registry
	Clients       prometheus.Gauge
	MessagesSent  prometheus.Counter
	BytesSent     prometheus.Counter
	SlowConsumers prometheus.Counter
	// Lagging counts clients that fell their queue's bound behind and were
	// refilled from the recent messages held in memory (client.Backlog).
	Lagging prometheus.Counter
	// FeedDelay is the time from the stream storing a live message to the
	// live feed offering it to clients; Fanout how long offering one
	// message to every client took.
	FeedDelay, Fanout prometheus.Histogram
	ReplaysInFlight   prometheus.Gauge
	ReplayCatchup     prometheus.Histogram
	AuthFailures      *prometheus.CounterVec
	LiveSeq           prometheus.Gauge
	// InvalidMessages counts stream messages that are not valid events
	// (skipped for every client), each once.
	InvalidMessages prometheus.Counter
	// ReplaysWaiting is the number of replays waiting for a slot.
	ReplaysWaiting prometheus.Gauge
	// ReplayTurns counts the turns replays took in a slot.
	ReplayTurns prometheus.Counter
	// Refused counts connections refused by a limit, by reason.
	Refused *prometheus.CounterVec
	// TokenReloads counts tokens file reloads (SIGHUP), by result.
	TokenReloads *prometheus.CounterVec
	// Revoked counts sessions closed because their token was revoked.
	Revoked prometheus.Counter

	// What the engines do, counted from the live feed (ObserveEvent);
	// labels are low-cardinality: no container names or ids.
	Events             *prometheus.CounterVec // node, type, action
	ContainerOOMs      *prometheus.CounterVec // node
	ContainerExitsBad  *prometheus.CounterVec // node: dies with a non-zero exit code
	ContainerRestarts  *prometheus.CounterVec // node
	HealthStatusChange *prometheus.CounterVec // node, status
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
		FeedDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "feed_delay_seconds",
			Help:    "Time from the stream storing a live message to the gateway offering it to its clients (the NATS server's clock against the gateway's).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		Fanout: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "fanout_seconds",
			Help:    "Time to offer one live message to every client that wants it.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16)}),
		Lagging: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "lagging_total",
			Help: "Times a client fell its queue's bound behind and was refilled from the recent messages the gateway holds instead of being disconnected."}),
		ReplaysInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "replays_in_flight",
			Help: "Replays reading history from the stream now."}),
		ReplayCatchup: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "replay_catchup_seconds",
			Help:    "Time from the start of a replay to its live frame.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total",
			Help: "Refused /ws requests by reason."}, []string{"reason"}),
		LiveSeq: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "live_seq",
			Help: "Last stream sequence received by the live feed."}),
		InvalidMessages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "invalid_messages_total",
			Help: "Stream messages that are not valid events (not UTF-8, not JSON, not payload v1), skipped for every client."}),
		ReplaysWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "replays_waiting",
			Help: "Replays waiting for a replay slot."}),
		ReplayTurns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "replay_turns_total",
			Help: "Turns replays took in a replay slot (each reads at most its budget)."}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refused_total",
			Help: "Connections refused or closed by a limit, by reason."}, []string{"reason"}),
		TokenReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "token_reloads_total",
			Help: "Tokens file reloads on SIGHUP, by result (ok, error)."}, []string{"result"}),
		Revoked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sessions_revoked_total",
			Help: "Sessions closed with token_revoked after a tokens file reload."}),
	}
	m.Events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dockcast_events_total",
		Help: "Events the gateway's live feed received, by node, type and action (Docker's action up to its first ':')."}, []string{"node", "type", "action"})
	m.ContainerOOMs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dockcast_container_ooms_total",
		Help: "Containers killed for running out of memory (oom events), by node."}, []string{"node"})
	m.ContainerExitsBad = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dockcast_container_nonzero_exits_total",
		Help: "Containers that died with a non-zero exit code, by node."}, []string{"node"})
	m.ContainerRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dockcast_container_restarts_total",
		Help: "Container restarts (restart events: docker restart and restart policies), by node."}, []string{"node"})
	m.HealthStatusChange = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dockcast_container_health_status_changes_total",
		Help: "Health status changes of containers (health_status events), by node and new status (healthy, unhealthy, starting, other)."}, []string{"node", "status"})
	m.Registry.MustRegister(m.Events, m.ContainerOOMs, m.ContainerExitsBad, m.ContainerRestarts, m.HealthStatusChange)
	m.Registry.MustRegister(m.Clients, m.MessagesSent, m.BytesSent, m.SlowConsumers, m.Lagging, m.FeedDelay, m.Fanout, m.ReplaysInFlight,
		m.ReplayCatchup, m.AuthFailures, m.LiveSeq, m.InvalidMessages, m.ReplaysWaiting, m.ReplayTurns,
		m.Refused, m.TokenReloads, m.Revoked,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// ObserveEvent counts one event of the live feed.
func (m *Metrics) ObserveEvent(e *event.Event) {
	m.Events.WithLabelValues(e.Node, e.Type, e.Action).Inc()
	if e.Type != "container" {
		return
	}
	switch e.Action {
	case "oom":
		m.ContainerOOMs.WithLabelValues(e.Node).Inc()
	case "die":
		if code := e.Actor.Attributes["exitCode"]; code != "" && code != "0" {
			m.ContainerExitsBad.WithLabelValues(e.Node).Inc()
		}
	case "restart":
		m.ContainerRestarts.WithLabelValues(e.Node).Inc()
	case "health_status":
		status := strings.TrimSpace(e.ActionDetail)
		switch status {
		case "healthy", "unhealthy", "starting":
		default:
			status = "other"
		}
		m.HealthStatusChange.WithLabelValues(e.Node, status).Inc()
	}
}

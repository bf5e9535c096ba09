// Package hub is the gateway's live feed and its client registry. It
// follows the event stream once, with one JetStream ordered consumer, and
// offers every message to the clients whose filters match; it watches the
// DOCKER_STATUS bucket and sends status frames, to each client only for
// the nodes its token may read.
//
// Files, one idea each: hub.go (the Hub, its life and readiness),
// registry.go (joining, leaving, the subject index and fan-out), feed.go
// (the live consumer and the watchdog), epoch.go (the one place a stream
// reset is recognised), status.go (the DOCKER_STATUS watcher), times.go
// (stored times of recent messages, for since gaps), invalid.go (messages
// that are not valid events: skipped, counted, logged once), recent.go
// (the ring of the stream's last messages with their frames, which serves
// resumes from_seq without JetStream: Recent), group.go (clients with the
// same filter and rights, matched once per event).
//
// Clients are indexed by their subject filters in a NATS sublist (gsl),
// so each message is matched only against clients whose subjects can
// match it; client.Wants then decides on the event, decoded once per
// message. Readiness waits for the first load of DOCKER_STATUS, so that
// every client gets one status frame per node before its live frame.
//
// Entry points: New, Hub.Run, Hub.JoinLive, Hub.JoinBuffering, Hub.Leave,
// Hub.Ready, Hub.Serving, Hub.Reconnected, SameStream, Hub.StoredTime,
// Hub.Invalid, Hub.Recent, Message.
package hub

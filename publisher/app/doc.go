// Package app wires the publisher together. [Run] is the whole program
// (main only maps its error to an exit status): it loads the configuration,
// starts the embedded NATS server when no NATS_URL is set, connects to NATS,
// ensures the stream and the status bucket (never lowering what other
// publishers share), serves /healthz, /readyz and /metrics, takes the
// node's lease, and runs its stages under one errgroup: the Docker reader
// (docker.Watcher) fills the queue, the ordered stages relay it (the
// health-check tag, docker.HealthTagger, then [App.Stages]),
// the writer (stream.Writer) stores it, the status key (statuskv.Key)
// writes the node's status and renews the lease. Shutdown goes in reverse:
// stop reading, drain the queue, write the "stopped" status. Run also
// sets the garbage collector for a process whose events are short-lived
// (GOGC 400 under a soft memory limit that grows with the queue's bound),
// unless GOGC or GOMEMLIMIT is set.
// [App] is the same with tunable fields, for tests and benchmarks; its
// Stages and Stored fields are the seams for enrichment and for packages
// that keep state derived from the stored events.
package app

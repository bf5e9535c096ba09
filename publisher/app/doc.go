// Package app wires the publisher together. [Run] is the whole program
// (main only maps its error to an exit status): it loads the configuration,
// starts the embedded NATS server when no NATS_URL is set, connects to NATS,
// ensures the stream and the status bucket, serves /healthz, /readyz and
// /metrics, and runs the Docker watcher and the JetStream writer until the
// context ends, then drains the queue and shuts down in reverse order.
// [App] is the same with tunable fields, for tests and benchmarks.
package app

// Package docker is the Docker side of the publisher: [Watcher.Run] is one
// retryable loop that connects to the engine, resumes from the stream's last
// event of the node, checks for a gap (announcing it with a dockcast.gap
// event and a container.state snapshot), and follows the engine's streaming
// /events API, handing events to the queue without ever waiting on NATS.
package docker

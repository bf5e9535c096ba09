// Package docker is the Docker side of the publisher: [Watcher.Run] is one
// retryable loop that connects to the engine, resumes from the stream's last
// events of the node, checks for a gap (announcing it, all of it or none,
// with a dockcast.gap event and a container.state snapshot), and follows the
// engine's streaming /events API, handing encoded events to the queue
// without ever waiting (the engine is pinged from another goroutine). A
// backwards step of the engine's clock is announced (clock_step), never
// used to drop events. [StateEvent] makes a container's state event.
package docker

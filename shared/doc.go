// Package shared is the root of dockcast's shared module: the pieces that
// the publisher, the gateway and any Go consumer of the event stream agree on.
//
//   - event:    the JSON payload of one Docker event on the bus (Event, FromDocker, Decode)
//   - subject:  subject naming (For, Token, Split) under docker.events.>
//   - filter:   Docker's --filter vocabulary (Parse, Filter.Match, Filter.Subjects)
//   - status:   the DOCKER_STATUS key-value schema
//   - config:   environment parsing and validation helpers, logger setup
//   - natsutil: NATS connection (reconnect forever, fast dead-link detection, TLS), stream and bucket helpers,
//     edge mode's central stream and its sources (one per edge node's local stream)
//   - backoff:  the one retry delay (exponential, jitter, reset after a healthy period)
//   - testkit:  helpers for tests (JetStream servers and clusters, proxies that cut links,
//     a stand-in Docker engine, the Docker probe image, Eventually)
package shared

// Package stream is the JetStream side of the publisher.
//
//   - [Queue]: the bounded queue between the Docker reader and the writer;
//     [Queue.TryPush] never blocks.
//   - [Writer]: drains the queue with asynchronous, acknowledged publishes
//     (Nats-Msg-Id = event id) in a bounded in-flight window, and keeps the
//     stream in the queue's order across failures and reconnects.
//   - [RecentEvents]: the newest events of a node in the stream (the resume point).
//   - [StatusWriter]: writes every status change of the node to its key in
//     the DOCKER_STATUS bucket, in order, retrying while NATS is away.
package stream

// Command scaledemo is dockcast's scale demonstration (`make scale-demo`):
// a 3-node central NATS cluster (JetStream domain hub, R3 DOCKER_EVENTS),
// N publishers in edge mode on stand-in engines, M gateways and many
// WebSocket clients spread over them, every component a real process
// (bin/nats-server, bin/publisher, bin/gateway) on its own 127.0.0.x
// address. It measures
//
//   - events/s into the central stream, by the number of engines sending
//     at once (DEMO_STEPS, e.g. 1,2,4,8): each step emits DEMO_EVENTS events
//     spread over the first n engines as fast as they take them, timed until
//     the central stream holds them all;
//   - end-to-end latency, engine event time to a client's receipt, at
//     DEMO_RATE events/s over every engine, every client following
//     everything (p50, p99, max);
//   - the gateways' CPU meanwhile (user+system of their processes), per
//     1,000 clients;
//   - central storage per million events (the stream's bytes; R3 keeps it
//     on three servers);
//
// and shows failover: one gateway is killed (SIGKILL) during the latency
// phase; its clients resume on another gateway with from_seq and epoch. At
// the end every client must have received every central sequence from its
// first one to the last, exactly once and in order; the demo prints the
// check and exits 1 when it fails.
//
// Variables (defaults): DEMO_PUBLISHERS (4), DEMO_STEPS (1,2,4 up to
// DEMO_PUBLISHERS), DEMO_GATEWAYS (2), DEMO_CLIENTS (1000), DEMO_EVENTS
// (20000), DEMO_RATE (100), DEMO_SECONDS (20, the latency phase).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "scaledemo:", err)
		os.Exit(1)
	}
}

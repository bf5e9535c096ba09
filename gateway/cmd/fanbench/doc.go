// Command fanbench compares dockcast's gateway with the two tools a user
// would try in its place, side by side in one run on one machine: the
// WebSocket listener of nats-server itself (clients speak the NATS protocol
// with core subscriptions) and Centrifugo v6.9.1 (its nats_jetstream
// consumer in publication data mode reads the same stream; clients speak its
// JSON protocol). The same bin/nats-server (JetStream, file store) holds the
// stream DOCKER_EVENTS for all of them; the same events (a docker-compose
// container's start event, 781 bytes of payload) are published into it;
// the same number of clients follow them, from a separate process.
//
// One binary plays four roles:
//
//	fanbench                 the orchestrator: starts the servers and the
//	                         client processes, publishes, measures, reports
//	fanbench client …        a client process (flags in client.go) holding
//	                         many WebSocket clients of one protocol
//	fanbench gateway         the gateway built in-process from its packages
//	                         (gateway/app), with /debug/pprof, CPU profile
//	                         start/stop and a heap breakdown per component on
//	                         FANBENCH_DEBUG_ADDR: profiles and the memory
//	                         breakdown come from it, every other figure
//	                         from bin/gateway
//	fanbench tracestat FILE  reads an execution trace that BENCH_TRACE
//	                         recorded: the feed's hop, the writers' wait
//	                         for a CPU, writes per writer run, the
//	                         fan-out's span, GC mark phases
//
// Measurements per peer: flat-out delivery (every event to every client,
// counts and order verified), publish-to-receipt latency at a steady rate,
// memory per idle client, 10,000 live clients held with a burst; for the
// gateway also the reconnect storm (clients resuming with from_seq at once,
// JetStream API calls and errors from the server's /jsz) and the per
// component heap of an idle client; and the publisher side: raw acknowledged
// async JetStream publishes beside the publisher's whole pipeline.
//
// Run it with `make bench` (after make build; it builds Centrifugo into
// bin/tools when missing). Variables: BENCH_QUICK=1 (short run),
// BENCH_PEERS (comma list of dockcast, dockcast-batch, nats, centrifugo),
// BENCH_SCENARIOS (comma list of idle, flat, latency, held, storm,
// breakdown, publisher), BENCH_PROFILE=<dir> (CPU and allocation profiles
// of the in-process gateway under the flat-out and latency loads),
// BENCH_TRACE=<dir> (execution traces under the latency load of the
// in-process gateway, with the collector's gctrace lines in its log, and
// of Centrifugo when it is among BENCH_PEERS),
// BENCH_GATEWAY=<binary> (the gateway under test instead of bin/gateway,
// to compare two builds), BENCH_SCALE=Field=value,… (override the sizes of scale in
// orchestrate.go, e.g. LatClients=50), BENCH_GATEWAY_LOG (the gateways'
// LOG_LEVEL, default warn), BENCH_KEEP=1 (keep the logs and stores),
// BENCH_PUBLISHER=<binary> (the publisher under test instead of
// bin/publisher, to compare two builds in one run), BENCH_OUT=<file> (where the markdown report goes; a full run writes
// docs/benchmarks-fanout.md).
package main

// Package testkit holds the helpers dockcast's tests share across modules:
// Eventually (poll with a deadline instead of sleeping), Logger (slog into
// t.Log), StartJetStream and NATSProcess (real JetStream servers, embedded
// or as bin/nats-server processes), Docker, ProbeImage and RunProbe (real
// containers from a FROM scratch image built on the fly) and DockerProxy
// (a cuttable proxy in front of the Docker socket).
package testkit

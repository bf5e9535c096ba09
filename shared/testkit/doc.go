// Package testkit holds the helpers dockcast's tests share across modules:
//
//   - Eventually (poll with a deadline instead of sleeping), Logger (slog
//     into t.Log), Unique, FreePort/FreeAddr, RepoRoot, Binary.
//   - StartJetStream (an embedded JetStream server), NATSProcess (a
//     bin/nats-server process a test can stop and start), StartNATSCluster
//     (a JetStream cluster of bin/nats-server processes on 127.0.0.1, with
//     an optional JetStream domain and leaf-node listeners; find and kill a
//     stream's leader), MakeTLSFiles (a private CA with server and client
//     certificates), StartHub and StartLeaf (an embedded server with a
//     JetStream domain and a leaf-node listener, and a leaf node of it with
//     its own domain; WaitLeafConnected).
//   - TCPProxy (a loopback TCP proxy a test can cut, restore, or make lose
//     the server's replies), DockerProxy (the same for the Docker socket).
//   - Docker, EnsureProbeImage, RunProbe, WaitExited (real containers from a
//     FROM scratch image built on the fly) and FakeEngine (a stand-in Docker
//     engine serving /events at thousands of events per second, with the
//     real engine's 256-event memory and slow-subscriber drops).
//   - Process (any bin/<name> as a child process).
package testkit

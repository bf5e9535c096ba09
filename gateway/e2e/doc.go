// Package e2e holds dockcast's end-to-end tests; it has no non-test code.
//
// The tests run the real binaries of `make build` as processes (bin/nats-server,
// bin/publisher, bin/gateway) against the machine's Docker engine and drive
// the gateway's live page in headless Chromium (Debian's /usr/bin/chromium,
// or $CHROMIUM) with chromedp:
//
//   - TestPageFollowsAndFilters: a container run by the test appears on the
//     page; a label filter narrows the list and is kept in the page's URL.
//   - TestPageResumesAcrossGatewayRestart: the gateway restarted while
//     containers run; the page resumes with from_seq and shows each event of
//     the stream exactly once.
//   - TestPageScreenshot: a screenshot (1280x800) with real events, written
//     to docs/page.png (the README's) only when DOCKCAST_SCREENSHOT is set
//     (make bench).
//   - TestPageAsksForToken: with a tokens file the page asks for a token and
//     sends it as the dockcast.token.<base64url> subprotocol, not in the URL.
//   - TestPageStreamResetAndPoison (gateway and NATS only, events published
//     by the test): messages that are not valid events pass without a
//     reconnect; the stream deleted and made again ends a WebSocket client
//     with stream_reset and the page starts over on the new stream.
//   - TestTokenRevokedOnSIGHUP: SIGHUP re-reads the tokens file; a removed
//     token's sessions end with token_revoked and the page asks again.
//   - BenchmarkPage (make bench): page load to first event row, and the
//     event rate the page keeps up with; written to docs/benchmarks-page.md.
//   - TestComposeStack: builds the stack's images (scripts/stack-images.sh),
//     brings docker-compose.yml up under its own project name and port,
//     restarts the publisher and then the nats container while containers
//     run, and checks that a WebSocket client resuming with from_seq gets
//     every event of those containers exactly once; tears it all down,
//     volumes included.
//   - TestEdgeCompose: brings deploy/edge/centre.yml (three nats-server in
//     domain hub, two gateways) and deploy/edge/engine.yml (a publisher in
//     edge mode, reaching the centre's leaf ports, published on docker0,
//     through host.docker.internal) up under their own project names and
//     ports; a container's events reach a WebSocket client of both gateways
//     exactly once with the engine's node, the central stream sources the
//     node's local stream, and dockcast_publisher_leaf_connected is 1. Then
//     the leaf link is cut (the centre's three servers and one gateway
//     stopped) while containers come and go: the source lag grows, and once
//     the centre is back both clients (one resuming with from_seq) get every
//     event exactly once. Both projects are torn down, volumes included.
package e2e

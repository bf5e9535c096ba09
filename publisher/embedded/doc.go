// Package embedded runs the publisher's own NATS JetStream server when no
// NATS_URL is configured: [Start] returns a running server that other
// processes (the gateway, the nats CLI) can connect to; [Server.Shutdown]
// stops it.
//
// Edge mode (PUBLISHER_HUB): [StartEdge] runs it as a leaf node of the
// central NATS with its own JetStream domain (the node), [EnsureLocalStream]
// opens or makes the node's local stream (never under a name used before),
// and [AttachSource] makes the central stream source it (through
// natsutil.Sources).
package embedded

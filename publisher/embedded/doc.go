// Package embedded runs the publisher's own NATS JetStream server when no
// NATS_URL is configured: [Start] returns a running server that other
// processes (the gateway, the nats CLI) can connect to; [Server.Shutdown]
// stops it.
package embedded

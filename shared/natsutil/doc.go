// Package natsutil holds the NATS plumbing both services share: a
// connection that reconnects forever (Connect), the event stream's
// configuration (StreamConfig, EnsureStream) and the status bucket
// (EnsureStatusBucket). EnsureSharedStream never changes what other
// publishers share unless asked to (Explicit).
//
// Edge mode's centre side (central.go): the central stream
// (CentralStreamConfig, EnsureCentralStream) and its sources, one per edge
// node's local stream read through the node's JetStream domain
// (EdgeSource, DomainAPI, ValidEdgeNode); Sources adds and moves them so
// that publishers starting at once converge (Add, Move), and reads each
// one's lag (Lags) and a node's sources (OfNode).
package natsutil

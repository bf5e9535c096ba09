// Package metrics defines the publisher's Prometheus metrics ([New] returns
// them registered on a private registry, with the Go and process collectors)
// and [Metrics.Handler] serving them.
package metrics

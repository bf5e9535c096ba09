package testkit

import (
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartLeaf runs an embedded JetStream server on a free loopback port as a
// leaf node of hub (leaf-node URLs, e.g. ClusterServer.LeafURL or a
// TCPProxy in front of one), with its own JetStream domain and a temporary
// store; it reconnects every 250 ms and is shut down when the test ends.
// The publisher's own leaf (publisher/embedded.StartEdge) adds the
// production settings; this one is for tests of the centre's side.
func StartLeaf(t testing.TB, domain string, hub ...string) *server.Server {
	t.Helper()
	var urls []*url.URL
	for _, h := range hub {
		u, err := url.Parse(h)
		if err != nil {
			t.Fatalf("leaf hub URL %q: %v", h, err)
		}
		urls = append(urls, u)
	}
	return runServer(t, &server.Options{
		ServerName: "leaf-" + domain, Host: "127.0.0.1", Port: -1, NoSigs: true,
		JetStream: true, JetStreamDomain: domain, StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 250 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{{URLs: urls, DenyExports: []string{"docker.events.>"}}},
		},
	})
}

// WaitLeafConnected waits (at most timeout) until ns has a leaf-node link up.
func WaitLeafConnected(t testing.TB, ns *server.Server, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if ns.NumLeafNodes() == 0 {
			return errLeafDown
		}
		return nil
	})
}

var errLeafDown = errors.New("no leaf-node link up")

// HubOptions shape StartHub.
type HubOptions struct {
	Domain string // JetStream domain (default "hub")
	// TLS, if set, makes the leaf-node listener require TLS with its server
	// certificate and verify client certificates against its CA.
	TLS *TLSFiles
}

// StartHub runs an embedded JetStream server with a JetStream domain and a
// leaf-node listener (no_advertise) on free loopback ports, storing in a
// temporary directory; it is shut down when the test ends.
func StartHub(t testing.TB, o HubOptions) *Hub {
	t.Helper()
	if o.Domain == "" {
		o.Domain = "hub"
	}
	opts := &server.Options{
		ServerName: "hub-" + o.Domain, Host: "127.0.0.1", Port: -1, NoSigs: true,
		JetStream: true, JetStreamDomain: o.Domain, StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: FreePort(t), NoAdvertise: true},
	}
	if o.TLS != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: o.TLS.ServerCert, KeyFile: o.TLS.ServerKey, CaFile: o.TLS.CA, Verify: true,
		})
		if err != nil {
			t.Fatalf("hub TLS: %v", err)
		}
		opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = tc, 2
	}
	return &Hub{Server: runServer(t, opts), LeafAddr: fmt.Sprintf("127.0.0.1:%d", opts.LeafNode.Port)}
}

// Hub is a StartHub server.
type Hub struct {
	*server.Server
	LeafAddr string // host:port of the leaf-node listener
}

// LeafURL is the hub's leaf-node URL (nats-leaf://, or tls:// with TLS).
func (h *Hub) LeafURL() string { return "nats-leaf://" + h.LeafAddr }

package embedded

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/subject"
)

// Edge makes the embedded server a leaf node of the central NATS (edge
// mode, contract "Edge mode"): it keeps its own JetStream domain, named
// after the node, so that the node's local stream stays on the engine's
// host, and the central stream sources it across the leaf link.
type Edge struct {
	// Node is the <node> token: the server's JetStream domain and name.
	Node string
	// Hub is the leaf-node URLs of the central servers
	// (nats-leaf://hub-1:7422, …; PUBLISHER_HUB). Give every central
	// server, so that the link moves to another one when its server dies.
	Hub []string
	// Creds is a credentials file for the leaf connection (PUBLISHER_HUB_CREDS).
	Creds string
	// CA, Cert and Key are PEM files for TLS on the leaf connection
	// (PUBLISHER_HUB_CA, _CERT, _KEY); CA alone verifies the hub with a
	// private CA, Cert and Key add a client certificate.
	CA, Cert, Key string
	// Sync is JetStream's sync_interval for the local store: 0 means
	// "always" (fsync after every write; PUBLISHER_EMBEDDED_SYNC's default).
	Sync time.Duration
	// ReconnectInterval is the wait between attempts to reach the hub
	// (default 1 s, nats-server's).
	ReconnectInterval time.Duration
	// PingInterval is how often the server pings a silent connection, the
	// leaf link's too (default DefaultLeafPing); after LeafPingsOut
	// unanswered pings the link is taken for dead and dialled again.
	PingInterval time.Duration
}

// DefaultLeafPing and LeafPingsOut make a silent cut of the leaf link (a
// cable pulled, a NAT mapping dropped: nothing closes the connection)
// noticed within about a minute, not nats-server's 2 min × 2 pings out:
// until then the link looks up (dockcast_publisher_leaf_connected 1) and,
// when the network is back by another way, nothing flows over the dead
// connection. The hub closes its end when the leaf dials again (it takes
// the newer of two connections of the same leaf).
const (
	DefaultLeafPing = 15 * time.Second
	LeafPingsOut    = 3
)

// EdgeSubjects are the subjects the leaf link never carries in either
// direction: an edge node's events reach the centre only by sourcing
// (a plain copy across the link would reach the central stream, which
// listens on docker.events.>, a second time, without its origin), and
// events published at the centre never land in a node's local stream.
var EdgeSubjects = []string{subject.All}

// StartEdge starts the embedded server as a leaf node of the hub, with the
// JetStream domain e.Node and file storage under o.StoreDir. It does not
// wait for the hub: the leaf link comes up (and back) by itself, and until
// then the server serves its local JetStream alone.
func StartEdge(o Options, e Edge) (*Server, error) {
	so, err := edgeOptions(o, e)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: create data dir: %w", err)
	}
	return launch(o, so)
}

// edgeOptions builds the leaf server's options.
func edgeOptions(o Options, e Edge) (*server.Options, error) {
	if err := natsutil.ValidEdgeNode(e.Node, ""); err != nil {
		return nil, fmt.Errorf("embedded nats: edge node %w", err)
	}
	if len(e.Hub) == 0 {
		return nil, errors.New("embedded nats: edge mode needs at least one hub URL")
	}
	var urls []*url.URL
	for _, raw := range e.Hub {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("embedded nats: hub URL %q: want nats-leaf://host:port", raw)
		}
		urls = append(urls, u)
	}
	remote := &server.RemoteLeafOpts{
		URLs:        urls,
		Credentials: e.Creds,
		DenyExports: EdgeSubjects,
		DenyImports: EdgeSubjects,
	}
	if e.CA != "" || e.Cert != "" || strings.HasPrefix(urls[0].Scheme, "tls") {
		tc, err := leafTLS(e)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		remote.TLS, remote.TLSConfig = true, tc
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ping := e.PingInterval
	if ping <= 0 {
		ping = DefaultLeafPing
	}
	return &server.Options{
		ServerName:      "dockcast-" + e.Node,
		Host:            o.Host,
		Port:            port,
		JetStream:       true,
		JetStreamDomain: e.Node,
		StoreDir:        o.StoreDir,
		SyncInterval:    e.Sync,
		SyncAlways:      e.Sync <= 0,
		NoSigs:          true,
		PingInterval:    ping,
		MaxPingsOut:     LeafPingsOut,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: e.ReconnectInterval,
			Remotes:           []*server.RemoteLeafOpts{remote},
		},
	}, nil
}

// leafTLS is the client side of TLS to the hub: the private CA if given
// (else the system's roots) and the client certificate if given.
func leafTLS(e Edge) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CA != "" {
		pem, err := os.ReadFile(e.CA)
		if err != nil {
			return nil, fmt.Errorf("hub CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("hub CA %s holds no PEM certificate", e.CA)
		}
		tc.RootCAs = pool
	}
	if e.Cert != "" || e.Key != "" {
		cert, err := tls.LoadX509KeyPair(e.Cert, e.Key)
		if err != nil {
			return nil, fmt.Errorf("hub client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// LeafConnected reports whether the leaf link to the hub is up.
func (s *Server) LeafConnected() bool { return s.ns.NumLeafNodes() > 0 }

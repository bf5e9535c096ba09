package app_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestNATSTLS: against a NATS server that requires TLS with client
// certificates from a private CA, the gateway connects with NATS_CA,
// NATS_CERT and NATS_KEY and serves events.
func TestNATSTLS(t *testing.T) {
	t.Parallel()
	files := testkit.MakeTLSFiles(t)
	ns := testkit.StartJetStreamTLS(t, files)
	url := "tls://" + ns.Addr().String()
	_, js := testkit.Connect(t, url, nats.RootCAs(files.CA), nats.ClientCert(files.ClientCert, files.ClientKey))
	newStream(t, js, "TLS", 0)
	g := startGateway(t, url, "TLS", map[string]string{"NATS_CA": files.CA, "NATS_CERT": files.ClientCert, "NATS_KEY": files.ClientKey}, app.Options{})
	c := dial(t, g.wsURL(""), nil)
	if f := read(t, c, 30*time.Second); f.Type != "live" {
		t.Fatalf("first frame %+v", f)
	}
	node := testkit.Unique("node")
	seq := publish(t, js, mkEvent(node, "start", nil))
	if f := read(t, c, 30*time.Second); f.Type != "event" || f.Seq != seq {
		t.Fatalf("frame %+v, want event %d", f, seq)
	}
}

package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/shared/testkit"
)

func startEdge(t *testing.T, node string, hub ...string) *embedded.Server {
	t.Helper()
	s, err := embedded.StartEdge(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir(), Logger: testkit.Logger(t)},
		embedded.Edge{Node: node, Hub: hub, ReconnectInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func waitLeaf(t testing.TB, s *embedded.Server) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, func() error {
		if !s.LeafConnected() {
			return errors.New("leaf link not up")
		}
		return nil
	})
}

// The edge server keeps its own JetStream domain (the node) and reaches the
// hub's through $JS.<hub>.API; the link carries no docker.events in either
// direction, everything else in both.
func TestStartEdgeIsALeafWithItsOwnDomainAndNoEventsOnTheLink(t *testing.T) {
	t.Parallel()
	hub := testkit.StartHub(t, testkit.HubOptions{})
	edge := startEdge(t, "n1", hub.LeafURL())
	waitLeaf(t, edge)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	lnc, ljs := testkit.Connect(t, edge.ClientURL())
	if info, err := ljs.AccountInfo(ctx); err != nil || info.Domain != "n1" {
		t.Fatalf("local JetStream: %+v %v", info, err)
	}
	hjs, err := jetstream.NewWithDomain(lnc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		info, err := hjs.AccountInfo(ctx)
		if err != nil {
			return err
		}
		if info.Domain != "hub" {
			return fmt.Errorf("domain %q through the leaf", info.Domain)
		}
		return nil
	})

	hnc, _ := testkit.Connect(t, hub.ClientURL())
	for _, dir := range []struct {
		name     string
		from, to *nats.Conn
	}{{"edge to hub", lnc, hnc}, {"hub to edge", hnc, lnc}} {
		// One subscription for both, so that messages arrive in order.
		got := make(chan string, 64)
		sub, err := dir.to.Subscribe(">", func(m *nats.Msg) {
			if strings.HasPrefix(m.Subject, "docker.") || strings.HasPrefix(m.Subject, "marker.") {
				got <- m.Subject
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := dir.to.Flush(); err != nil {
			t.Fatal(err)
		}
		// Interest crosses the link asynchronously: publish markers until one
		// arrives, then one event and a last marker behind it on the same
		// connection.
		testkit.Eventually(t, 10*time.Second, func() error {
			if err := dir.from.Publish("marker.probe", nil); err != nil {
				return err
			}
			select {
			case <-got:
				return nil
			case <-time.After(100 * time.Millisecond):
				return errors.New("no marker across the link")
			}
		})
		for len(got) > 0 {
			<-got
		}
		if err := dir.from.Publish("docker.events.n1.container.start", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if err := dir.from.Publish("marker.last", nil); err != nil {
			t.Fatal(err)
		}
		for subj := ""; subj != "marker.last"; {
			select {
			case subj = <-got:
				if subj != "marker.last" && subj != "marker.probe" {
					t.Fatalf("%s: %s crossed the leaf link", dir.name, subj)
				}
			case <-ctx.Done():
				t.Fatalf("%s: last marker never arrived", dir.name)
			}
		}
	}
}

func TestStartEdgeOverTLSWithAClientCertificate(t *testing.T) {
	t.Parallel()
	files := testkit.MakeTLSFiles(t)
	hub := testkit.StartHub(t, testkit.HubOptions{TLS: &files})
	s, err := embedded.StartEdge(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir(), Logger: testkit.Logger(t)},
		embedded.Edge{Node: "n1", Hub: []string{"tls://" + hub.LeafAddr}, CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey,
			ReconnectInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	waitLeaf(t, s)
}

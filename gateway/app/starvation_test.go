package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/testkit"
)

// stallingDialer's clients fill their sockets at once when they do not read.
var stallingDialer = websocket.Dialer{NetDial: testkit.DialStalling, ReadBufferSize: 1024}

// TestReplaySlotsNotHeldBySilentClients: 40 clients ask for the last hour
// (more history than their queues hold) and never read. A replay lets its
// slot go while its client's queue is full, so a new client still replays
// and goes live within seconds (with the slots held, it would wait for
// those 40 connections to time out).
func TestReplaySlotsNotHeldBySilentClients(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "STARVE"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	pad := strings.Repeat("p", 1500)
	for i := 0; i < 1500; i++ {
		publish(t, js, mkEvent(node, "start", map[string]string{"pad": pad}))
	}
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{Server: server.Options{
		WS:     ws.Options{WriteWait: 5 * time.Minute, PongWait: 5 * time.Minute},
		Client: client.Options{MaxQueueBytes: 256 << 10},
	}})
	var silent []*websocket.Conn
	for i := 0; i < 40; i++ {
		c, _, err := stallingDialer.Dial(g.wsURL(q("since", "1h")), nil)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			_ = c.Close()
		}
	}()
	// Every silent client's replay has started and found its queue full.
	testkit.Eventually(t, 60*time.Second, func() error {
		if v := metricValue(t, g, "dockcast_gateway_replay_turns_total"); v < 40 {
			return errorString("replays have not all started")
		}
		if v := metricValue(t, g, "dockcast_gateway_replays_in_flight"); v != 0 {
			return errorString("replays hold slots")
		}
		return nil
	})
	// (Its first frame must come within readUntil's deadline; blocked
	// behind held slots it would wait for the silent clients to time out.)
	began := time.Now()
	c := dial(t, g.wsURL(q("since", "1h", "filter", "node="+node)), nil)
	fs := readUntil(t, c, "live")
	if n := len(eventSeqs(fs)); n != 1500 {
		t.Fatalf("the new client got %d events, want 1500", n)
	}
	t.Logf("new client live after %v beside 40 silent replays", time.Since(began))
}

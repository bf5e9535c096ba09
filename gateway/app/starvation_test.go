package app_test

import (
	"net"
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
	pad := strings.Repeat("p", 1000)
	for i := 0; i < 1000; i++ {
		publish(t, js, mkEvent(node, "start", map[string]string{"pad": pad}))
	}
	// The gateway's sockets have small send buffers, so that the kernel
	// does not absorb the history of the clients that do not read.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{Listener: testkit.SmallSendBuffers(ln), Server: server.Options{
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
	// The silent clients' replays have taken every one of the 32 slots
	// (at least once) and filled their queues.
	testkit.Eventually(t, 60*time.Second, func() error {
		if v := metricValue(t, g, "dockcast_gateway_replay_turns_total"); v < 32 {
			return errorString("the silent replays have not taken every slot yet")
		}
		return nil
	})
	// (Its first frame must come within readUntil's deadline; blocked
	// behind held slots it would wait for the silent clients to time out.)
	began := time.Now()
	c := dial(t, g.wsURL(q("since", "1h", "filter", "node="+node)), nil)
	if _, err := tryRead(c, 30*time.Second); err != nil {
		t.Fatalf("the new client's replay got no slot beside 40 silent ones: %v", err)
	}
	fs := readUntil(t, c, "live")
	if n := len(eventSeqs(fs)); n != 1000-1 {
		t.Fatalf("the new client got %d more events, want 999", n)
	}
	t.Logf("new client live after %v beside 40 silent replays", time.Since(began))
}

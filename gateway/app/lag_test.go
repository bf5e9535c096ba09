package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestLaggingClientIsRefilled: a client that stops reading while a burst
// many times its queue's bound goes by is not cut off. Its live frames stop
// being queued; once it reads again, it is refilled from the gateway's ring
// of recent messages, its filter applied (half the burst is another node's),
// and gets every one of its events once, in order, then live events as
// before. The lagging metric shows that it did fall behind its queue; the
// slow-consumer metric stays 0. With batch=1 too: the lines are the same
// frames.
func TestLaggingClientIsRefilled(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			ns := testkit.StartJetStream(t)
			_, js := testkit.Connect(t, ns.ClientURL())
			stream := "LAG"
			newStream(t, js, stream, 0)
			node, other := testkit.Unique("node"), testkit.Unique("other")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// Small socket buffers on both sides: the gateway's queue is
			// what holds a client that does not read.
			g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{Listener: testkit.SmallSendBuffers(ln), Server: server.Options{
				WS:     ws.Options{Buffer: 8},
				Client: client.Options{MaxQueueBytes: 64 << 10},
			}})
			params := []string{"filter", "node=" + node}
			if batch {
				params = append(params, "batch", "1")
			}
			conn, _, err := stallingDialer.Dial(g.wsURL(q(params...)), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			lr := &lineReader{c: conn}
			if f := lr.next(t); f.Type != "live" {
				t.Fatalf("first frame %+v, want live", f)
			}

			// The burst: 2,000 events of 1 KB, every other one the other
			// node's, published while the client does not read, until
			// the client has lagged.
			pad := strings.Repeat("x", 1000)
			var pubs []published
			burst := func(n int) {
				for i := 0; i < n; i++ {
					nd := node
					if i%2 == 1 {
						nd = other
					}
					ev := mkEvent(nd, "start", map[string]string{"pad": pad})
					pubs = append(pubs, published{publish(t, js, ev), ev})
				}
			}
			burst(2000)
			testkit.Eventually(t, 30*time.Second, func() error {
				if v := metricValue(t, g, "dockcast_gateway_lagging_total"); v < 1 {
					return fmt.Errorf("lagging_total = %v, want ≥ 1", v)
				}
				return nil
			})
			burst(200)

			// Now it reads: every event of its node, once, in order.
			all := want(t, pubs, 1, "node="+node)
			var got []uint64
			for len(got) < len(all) {
				f := lr.next(t)
				if f.Type != "event" {
					t.Fatalf("after %d events: frame %+v, want events only", len(got), f)
				}
				if f.Seq != all[len(got)] {
					t.Fatalf("event %d is seq %d, want %d", len(got), f.Seq, all[len(got)])
				}
				checkID(t, pubs, f)
				got = append(got, f.Seq)
			}
			// Then live again: new events arrive as they are published.
			burst(10)
			for _, seq := range want(t, pubs, all[len(all)-1]+1, "node="+node) {
				if f := lr.next(t); f.Type != "event" || f.Seq != seq {
					t.Fatalf("live again: frame %+v, want event %d", f, seq)
				}
			}
			if v := metricValue(t, g, "dockcast_gateway_slow_consumers_total"); v != 0 {
				t.Fatalf("slow_consumers_total = %v, want 0", v)
			}
			t.Logf("%d events of %d, all in order; lagged %v times", len(got), len(pubs), metricValue(t, g, "dockcast_gateway_lagging_total"))
		})
	}
}

// lineReader reads frames from a connection with or without batch=1: a
// text frame holds one JSON object per line.
type lineReader struct {
	c       *websocket.Conn
	pending [][]byte
}

func (r *lineReader) next(t testing.TB) frame {
	t.Helper()
	for len(r.pending) == 0 {
		_ = r.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		typ, data, err := r.c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != websocket.TextMessage {
			t.Fatalf("frame type %d, want text", typ)
		}
		r.pending = bytes.Split(data, []byte("\n"))
	}
	line := r.pending[0]
	r.pending = r.pending[1:]
	var f frame
	if err := json.Unmarshal(line, &f); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return f
}

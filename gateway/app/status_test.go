package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestStatusScope: status frames follow the token's scope. A token
// limited to one node gets that node's status only (on connect and on
// every change), a token for everything and an anonymous client get all
// nodes, and a token narrower than a whole node gets none.
func TestStatusScope(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "STATUSSCOPE"
	newStream(t, js, stream, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodeA, nodeB := testkit.Unique("web-a"), testkit.Unique("web-b")
	put := func(node, version string) {
		t.Helper()
		s := status.Status{Node: node, Docker: status.Connected, Since: time.Now().UTC(), Engine: status.Engine{Version: version, APIVersion: "1.41"}}
		if _, err := kv.Put(ctx, node, s.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	put(nodeA, "1")
	put(nodeB, "1")

	tokens := filepath.Join(t.TempDir(), "tokens")
	body := "all-token-0123456789 docker.events.>\n" +
		"a-token-0123456789 docker.events." + nodeA + ".>\n" +
		"narrow-token-0123456789 docker.events." + nodeA + ".container.>\n"
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, ns.ClientURL(), stream, map[string]string{"GATEWAY_TOKENS_FILE": tokens}, app.Options{})
	anon := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})

	// connect returns a client and the nodes of the status frames before live.
	connect := func(u string) (*websocket.Conn, []string) {
		t.Helper()
		c := dial(t, u, nil)
		var nodes []string
		for {
			f := read(t, c, 30*time.Second)
			if f.Type == "live" {
				return c, nodes
			}
			if f.Type != "status" {
				t.Fatalf("%s: frame %+v before live", u, f)
			}
			s, err := status.Decode(f.Status)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, s.Node)
		}
	}
	// Wait until both gateways' hubs hold both statuses.
	var all, anonConn *websocket.Conn
	for _, gw := range []struct {
		conn **websocket.Conn
		url  string
	}{{&all, g.wsURL(q("token", "all-token-0123456789"))}, {&anonConn, anon.wsURL("")}} {
		testkit.Eventually(t, 30*time.Second, func() error {
			c, nodes := connect(gw.url)
			if !sameNodes(nodes, nodeA, nodeB) {
				_ = c.Close()
				return fmt.Errorf("%s: statuses for %v, want %s and %s", gw.url, nodes, nodeA, nodeB)
			}
			*gw.conn = c
			return nil
		})
	}
	a, nodes := connect(g.wsURL(q("token", "a-token-0123456789", "filter", "node="+nodeA)))
	if !sameNodes(nodes, nodeA) {
		t.Fatalf("token for %s: statuses for %v on connect", nodeA, nodes)
	}
	narrow, nodes := connect(g.wsURL(q("token", "narrow-token-0123456789", "filter", "node="+nodeA, "filter", "type=container")))
	if len(nodes) != 0 {
		t.Fatalf("token for %s containers only: statuses for %v on connect", nodeA, nodes)
	}

	// Changes: B, then A, then B again. Each client sees, in order, the
	// changes of the nodes it may read.
	put(nodeB, "2")
	put(nodeA, "2")
	put(nodeB, "3")
	expect := func(name string, c *websocket.Conn, want ...string) {
		t.Helper()
		for _, w := range want {
			f := read(t, c, 30*time.Second)
			if f.Type != "status" {
				t.Fatalf("%s: frame %+v, want status of %s", name, f, w)
			}
			s, err := status.Decode(f.Status)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Node + "/" + s.Engine.Version; got != w {
				t.Fatalf("%s: status %s, want %s", name, got, w)
			}
		}
	}
	expect("all", all, nodeB+"/2", nodeA+"/2", nodeB+"/3")
	expect("anonymous", anonConn, nodeB+"/2", nodeA+"/2", nodeB+"/3")
	expect("node token", a, nodeA+"/2")
	// Nothing else reaches the limited clients: a last change of A (which
	// the narrow client may not see either) marks the end.
	put(nodeA, "3")
	expect("node token", a, nodeA+"/3")
	expect("all", all, nodeA+"/3")
	// The gateway handled every change above (all got A/3); an event on
	// the narrow client's filter must now be its very next frame.
	ev := mkEvent(nodeA, "start", nil)
	seq := publish(t, js, ev)
	if f := read(t, narrow, 30*time.Second); f.Type != "event" || f.Seq != seq {
		t.Fatalf("narrow token: frame %+v, want event %d (and no status)", f, seq)
	}
}

func sameNodes(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

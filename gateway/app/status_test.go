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

// TestStatusRefreshesAreNotChanges: a publisher rewrites its status every
// few seconds only to say it is alive (`updated`, its lease holder).
// Connected clients get a status frame for a change only, a client that
// joins gets the freshest value, and when the writes stop the clients get
// the value again marked stale, then the fresh one when a write comes.
func TestStatusRefreshesAreNotChanges(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "STATUSREFRESH"
	newStream(t, js, stream, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	node := testkit.Unique("web")
	since := time.Now().UTC().Truncate(time.Second)
	put := func(docker string, updated time.Time) {
		t.Helper()
		s := status.Status{Node: node, Docker: docker, Since: since, Updated: updated.UTC(), Holder: fmt.Sprint(updated.UnixNano()),
			Engine: status.Engine{Version: "20.10", APIVersion: "1.41"}}
		if _, err := kv.Put(ctx, node, s.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	statusOf := func(f frame) status.Status {
		t.Helper()
		if f.Type != "status" {
			t.Fatalf("frame %+v, want a status", f)
		}
		s, err := status.Decode(f.Status)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// frames waits until col holds n frames and returns them.
	frames := func(col *collector, n int, within time.Duration) []frame {
		t.Helper()
		var fs []frame
		testkit.Eventually(t, within, func() error {
			got, err := col.snapshot()
			if err != nil {
				return err
			}
			if len(got) < n {
				return fmt.Errorf("%d frames, want %d: %+v", len(got), n, got)
			}
			fs = got
			return nil
		})
		return fs
	}

	put(status.Connected, time.Now())
	staleAfter := 2 * time.Second
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{StatusStaleAfter: staleAfter})
	col := collect(dial(t, g.wsURL(""), nil))
	fs := frames(col, 2, 10*time.Second)
	if statusOf(fs[0]).Docker != status.Connected || fs[1].Type != "live" {
		t.Fatalf("at connect: %+v", fs)
	}

	// Rewrites that only refresh `updated` and the holder, then a change:
	// the change is the next frame (the rewrites, written before it, would
	// have come first). A client joining after the rewrites gets the last.
	var last time.Time
	for range 5 {
		last = time.Now()
		put(status.Connected, last)
	}
	testkit.Eventually(t, 10*time.Second, func() error { // once the hub has read the last rewrite
		c := dial(t, g.wsURL(""), nil)
		defer c.Close()
		if s := statusOf(read(t, c, 10*time.Second)); !s.Updated.Equal(last.UTC()) {
			return fmt.Errorf("a joining client got updated %v, want the last rewrite's %v", s.Updated, last.UTC())
		}
		return nil
	})
	put(status.Disconnected, time.Now())
	fs = frames(col, 3, 10*time.Second)
	if len(fs) != 3 || statusOf(fs[2]).Docker != status.Disconnected || fs[2].Stale {
		t.Fatalf("want exactly the change after live, got %+v", fs[2:])
	}

	// No write for StaleAfter: the value again, marked stale, to connected
	// and joining clients; then a write makes it fresh again.
	fs = frames(col, 4, 10*staleAfter)
	if !fs[3].Stale || statusOf(fs[3]).Docker != status.Disconnected {
		t.Fatalf("want the last value marked stale, got %+v", fs[3])
	}
	late := collect(dial(t, g.wsURL(""), nil))
	if f := frames(late, 1, 10*time.Second)[0]; !f.Stale {
		t.Fatalf("a client joining a stale node got %+v", f)
	}
	put(status.Disconnected, time.Now())
	fs = frames(col, 5, 10*time.Second)
	if fs[4].Stale || statusOf(fs[4]).Docker != status.Disconnected {
		t.Fatalf("after a new write: %+v", fs[4])
	}
}

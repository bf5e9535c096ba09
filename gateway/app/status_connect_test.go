package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestStatusBeforeLiveAtStart: a client that connects as soon as /readyz
// turns 200 gets one status frame per node of DOCKER_STATUS before its
// live frame, every time: readiness waits for the bucket's first load.
// The bucket holds many nodes, so that loading it takes a while; the
// gateway is started again and again, as a user trying it would.
func TestStatusBeforeLiveAtStart(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "STATUSAT"
	newStream(t, js, stream, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 300
	for i := 0; i < nodes; i++ {
		node := fmt.Sprintf("node-%03d", i)
		s := status.Status{Node: node, Docker: status.Connected, Since: time.Now().UTC()}
		if _, err := kv.Put(ctx, node, s.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	// A key that is not a node's status (as a publisher's lease) is no status frame.
	if _, err := kv.Put(ctx, "lease.node-000", []byte(`{"holder":"x"}`)); err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 6; run++ {
		g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{}) // returns as /readyz turns 200
		c := dial(t, g.wsURL(""), nil)
		statuses := 0
		for {
			f := read(t, c, 30*time.Second)
			if f.Type == "live" {
				break
			}
			if f.Type != "status" {
				t.Fatalf("run %d: frame %+v before live", run, f)
			}
			statuses++
		}
		if statuses != nodes {
			t.Fatalf("run %d: %d status frames before live, want %d", run, statuses, nodes)
		}
		_ = c.Close()
		g.stop(t)
	}
}

package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/statuskv"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Another publisher taking the node (here: its lease overwritten, as a
// publisher that found it expired would) stops this one: Run ends with the
// lease error (exit status 1), although ctx goes on.
func TestLeaseTakenStopsRun(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_HTTP_ADDR": "127.0.0.1:0",
		"PUBLISHER_NODE": "taken", "DOCKER_HOST": e.Host}
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	a := &app.App{Config: cfg, Log: testkit.Logger(t), Getenv: env(vars), StatusRenew: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, why := a.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	other := status.Status{Node: "taken", Docker: status.Connected, Since: time.Now().UTC(), Updated: time.Now().UTC(), Holder: "elsewhere:1:x"}
	if _, err := kv.Put(ctx, "taken", other.Marshal()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var held *statuskv.HeldError
		if !errors.As(err, &held) || held.Node != "taken" {
			t.Fatalf("Run returned %v, want the lease error", err)
		}
		var problems shared.Problems
		if errors.As(err, &problems) {
			t.Fatalf("a lost lease is not a configuration problem (exit 1, not 2): %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run still running 60s after its lease was taken")
	}
}

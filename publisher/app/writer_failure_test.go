package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/stream"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/testkit"
)

// A writer that fails on its own stops the publisher with its error (exit
// status 1), even though ctx goes on and the Docker watcher is still
// retrying an unreachable engine.
func TestWriterFailureStopsRun(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_HTTP_ADDR": "127.0.0.1:0",
		"PUBLISHER_NODE": "writer_fails", "DOCKER_HOST": "unix://" + t.TempDir() + "/none.sock"}
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	a := &app.App{Config: cfg, Log: testkit.Logger(t), Getenv: env(vars),
		DockerBackoffMin: 50 * time.Millisecond, DockerBackoffMax: 200 * time.Millisecond}
	injected := errors.New("injected: jetstream context refused")
	app.SetRunWriter(a, func(context.Context, *stream.Writer) error { return injected })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, injected) || !strings.Contains(err.Error(), "writer") {
			t.Fatalf("Run returned %v, want the writer's error", err)
		}
		var problems shared.Problems
		if errors.As(err, &problems) {
			t.Fatalf("a writer failure is not a configuration problem (exit 1, not 2): %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run still running 60s after its writer failed")
	}
}

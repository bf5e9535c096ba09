package embedded_test

import (
	"context"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/shared/testkit"
)

func TestStartServesJetStream(t *testing.T) {
	t.Parallel()
	s, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir() + "/new/dir", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	_, js := testkit.Connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("jetstream not enabled: %v", err)
	}
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	s, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	port := s.ClientURL()[len("nats://127.0.0.1:"):]
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	if s2, err := embedded.Start(embedded.Options{Host: "127.0.0.1", Port: p, StoreDir: t.TempDir(), ReadyTimeout: 2 * time.Second}); err == nil {
		s2.Shutdown()
		t.Fatal("second server on the same port started")
	}
}

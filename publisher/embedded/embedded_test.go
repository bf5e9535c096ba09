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

// PUBLISHER_EMBEDDED_SYNC reaches the server: "always" by default (an
// acknowledged event survives a power failure), or the interval given
// (issue 7, item 9).
func TestSyncOption(t *testing.T) {
	t.Parallel()
	always, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer always.Shutdown()
	if always.MaxBatch() != embedded.DefaultMaxBatch {
		t.Fatalf("max batch %d", always.MaxBatch())
	}
	if !always.SyncAlways() {
		t.Fatalf("default: sync always %v, interval %v; want always", always.SyncAlways(), always.SyncInterval())
	}
	every, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: t.TempDir(), Sync: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer every.Shutdown()
	if every.SyncAlways() || every.SyncInterval() != 2*time.Minute {
		t.Fatalf("2m: sync always %v, interval %v", every.SyncAlways(), every.SyncInterval())
	}
}

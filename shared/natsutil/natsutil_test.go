package natsutil

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/testkit"
)

func TestEnsureStreamCreatesAndUpdatesKeepingData(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	nc, err := Connect(Options{URL: ns.ClientURL(), Name: "test", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := EnsureStream(ctx, js, StreamConfig("EV", time.Hour, 1<<20, 1), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "docker.events.n.container.start", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s, err = EnsureStream(ctx, js, StreamConfig("EV", 2*time.Hour, 2<<20, 1), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 2*time.Hour || info.Config.MaxBytes != 2<<20 || info.State.Msgs != 1 {
		t.Fatalf("limits not updated or data lost: age %v bytes %d msgs %d", info.Config.MaxAge, info.Config.MaxBytes, info.State.Msgs)
	}
	kv, err := EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStatusBucket(ctx, js, 1); err != nil {
		t.Fatalf("second open: %v", err)
	}
	if kv.Bucket() != "DOCKER_STATUS" {
		t.Fatal(kv.Bucket())
	}
}

func TestNotConnectedIsExplained(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	nc, err := Connect(Options{URL: "nats://" + addr, Name: "test"})
	if err != nil {
		t.Fatalf("Connect must not fail while the server is unreachable: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = EnsureStream(ctx, js, StreamConfig("EV", time.Hour, 1<<20, 1), testkit.Logger(t))
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("want ErrNotConnected, got %v", err)
	}
}

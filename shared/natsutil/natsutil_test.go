package natsutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/config"
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

func TestConnectWithPrivateCAAndClientCertificate(t *testing.T) {
	t.Parallel()
	files := testkit.MakeTLSFiles(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: files.ServerCert, KeyFile: files.ServerKey, CaFile: files.CA, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("tls server not ready")
	}
	t.Cleanup(ns.Shutdown)
	url := fmt.Sprintf("tls://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)

	nc, err := Connect(Options{URL: url, Name: "tls-test", Logger: testkit.Logger(t),
		TLS: config.NATSTLS{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	testkit.Eventually(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not connected over TLS")
		}
		return nil
	})

	// Without the client certificate the server refuses the client: the
	// connection never comes up (it keeps retrying in the background).
	bad, err := Connect(Options{URL: url, Name: "tls-test-nocert", TLS: config.NATSTLS{CA: files.CA}})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.FlushTimeout(500 * time.Millisecond); err == nil {
		t.Fatal("a client without a certificate could talk to a server that verifies clients")
	}
}

// A shared stream keeps the limits nobody asked to change; those asked
// for are applied, lowering included; the writer's features are turned on.
func TestEnsureSharedStreamChangesOnlyExplicitLimits(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fleet := StreamConfig("SHARED", 720*time.Hour, 10<<30, 1)
	fleet.Duplicates, fleet.AllowAtomicPublish, fleet.AllowDirect = 5*time.Minute, false, false
	if _, err := js.CreateStream(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	mine := StreamConfig("SHARED", 168*time.Hour, 1<<30, 1)
	s, err := EnsureSharedStream(ctx, js, mine, Explicit{}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxAge != 720*time.Hour || c.MaxBytes != 10<<30 || c.Duplicates != 5*time.Minute || !c.AllowAtomicPublish || !c.AllowDirect {
		t.Fatalf("nothing explicit: %v %d %v atomic %v direct %v", c.MaxAge, c.MaxBytes, c.Duplicates, c.AllowAtomicPublish, c.AllowDirect)
	}
	s, err = EnsureSharedStream(ctx, js, mine, Explicit{MaxAge: true, Duplicates: true}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != 168*time.Hour || c.Duplicates != 2*time.Minute || c.MaxBytes != 10<<30 {
		t.Fatalf("explicit max age and window: %v %v %d", c.MaxAge, c.Duplicates, c.MaxBytes)
	}
}

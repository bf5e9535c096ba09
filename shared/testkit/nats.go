package testkit

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartJetStream runs an embedded JetStream server on a free loopback port,
// storing in a temporary directory; it is shut down when the test ends.
func StartJetStream(t testing.TB) *server.Server {
	t.Helper()
	return runServer(t, &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
	})
}

// runServer starts an embedded server with opts, waits until it accepts
// clients and shuts it down when the test ends.
func runServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new nats server %s: %v", opts.ServerName, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %s not ready in 10s", opts.ServerName)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// StartJetStreamTLS is StartJetStream requiring TLS with client
// certificates signed by files.CA (MakeTLSFiles); its URL is
// "tls://" + Addr().String().
func StartJetStreamTLS(t testing.TB, files TLSFiles) *server.Server {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: files.ServerCert, KeyFile: files.ServerKey, CaFile: files.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	return runServer(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 5})
}

// Connect opens a NATS connection (with opts, such as TLS) and a
// JetStream context to url, closed when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// NATSProcess is a bin/nats-server process with a file store, which a test
// can stop (SIGTERM or SIGKILL) and start again on the same port and store.
type NATSProcess struct {
	*Process
	Port int
	Dir  string
}

// StartNATSProcess starts bin/nats-server with JetStream on a free port.
func StartNATSProcess(t testing.TB) *NATSProcess {
	t.Helper()
	port, dir := FreePort(t), t.TempDir()
	p := &NATSProcess{Port: port, Dir: dir}
	p.Process = StartProcess(t, "nats-server", []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir})
	p.waitReady()
	return p
}

// URL is the client URL of the server.
func (p *NATSProcess) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.Port) }

// Start starts the server again and waits until JetStream answers.
func (p *NATSProcess) Start() {
	p.t.Helper()
	p.Process.Start()
	p.waitReady()
}

func (p *NATSProcess) waitReady() {
	p.t.Helper()
	Eventually(p.t, 20*time.Second, func() error {
		nc, err := nats.Connect(p.URL(), nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := ctxTimeout(time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	})
}

// String describes the process.
func (p *NATSProcess) String() string { return fmt.Sprintf("nats-server :%d", p.Port) }

// AwaitAcks waits for every publish's acknowledgement and returns their
// stream sequences, in the futures' order; a refused publish or the end
// of ctx fails the test.
func AwaitAcks(ctx context.Context, t testing.TB, futs []jetstream.PubAckFuture) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, len(futs))
	for _, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs = append(seqs, ack.Sequence)
		case err := <-f.Err():
			t.Fatalf("publish %s: %v", f.Msg().Subject, err)
		case <-ctx.Done():
			t.Fatalf("publish %s: %v", f.Msg().Subject, ctx.Err())
		}
	}
	return seqs
}

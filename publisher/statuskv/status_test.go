package statuskv_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/statuskv"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Changes made while NATS is down are all written, in order, when it is
// back: a quick disconnected -> connected flip leaves both in the key's
// history. With a full backlog the oldest disconnect and the newest status
// survive.
func TestKeyKeepsEveryChange(t *testing.T) {
	t.Parallel()
	np := testkit.StartNATSProcess(t)
	nc, err := natsutil.Connect(natsutil.Options{URL: np.URL(), Name: "status-test", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The publisher's bucket keeps one value per key; this one keeps the
	// history so that the test can read every value written.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: status.Bucket, History: 16, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	st := func(node, docker, why string) status.Status {
		return status.Status{Node: node, Docker: docker, Error: why, Since: time.Now().UTC()}
	}
	run := func(node string, backlog int) *statuskv.Key {
		k := &statuskv.Key{KV: kv, Node: node, Log: testkit.Logger(t), Timeout: 500 * time.Millisecond,
			RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond, Backlog: backlog}
		if err := k.Acquire(ctx, st(node, status.Connected, "start")); err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- k.Run(wctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		return k
	}
	flip, full := run("flip", 0), run("full", 4)

	np.Stop(syscall.SIGKILL)
	testkit.Eventually(t, 30*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	flip.Set(st("flip", status.Disconnected, "d1"))
	flip.Set(st("flip", status.Connected, "c1"))
	for _, s := range []status.Status{
		st("full", status.Disconnected, "d1"), st("full", status.Connected, "c1"),
		st("full", status.Disconnected, "d2"), st("full", status.Connected, "c2"),
		st("full", status.Disconnected, "d3"), // overflow: d1 and d3 are kept
		st("full", status.Connected, "c3"),
	} {
		full.Set(s)
	}
	np.Start()

	history := func(key string) ([]string, error) {
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		defer hcancel()
		es, err := kv.History(hctx, key)
		if err != nil {
			return nil, err
		}
		var got []string
		for _, e := range es {
			s, err := status.Decode(e.Value())
			if err != nil {
				return nil, err
			}
			got = append(got, s.Docker+":"+s.Error)
		}
		return got, nil
	}
	for key, want := range map[string][]string{
		"flip": {"connected:start", "disconnected:d1", "connected:c1"},
		"full": {"connected:start", "disconnected:d1", "disconnected:d3", "connected:c3"},
	} {
		testkit.Eventually(t, 60*time.Second, func() error {
			got, err := history(key)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("history of %s: %v, want %v", key, got, want)
			}
			return nil
		})
	}
}

// The key is the node's lease: another publisher cannot take it while it
// is renewed; it can once it is released by a clean stop, once it expired,
// or when its holder was a process of this host that no longer runs. A
// holder whose lease was taken learns it on its next write.
func TestKeyIsTheNodesLease(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	up := status.Status{Docker: status.Connected, Since: time.Now().UTC()}
	key := func(node, holder string, expiry time.Duration) *statuskv.Key {
		return &statuskv.Key{KV: kv, Node: node, Holder: holder, Expiry: expiry, Log: testkit.Logger(t)}
	}
	mine := statuskv.NewHolder()
	if err := key("n1", "elsewhere:1:a", 0).Acquire(ctx, up); err != nil {
		t.Fatal(err)
	}
	var held *statuskv.HeldError
	if err := key("n1", mine, 0).Acquire(ctx, up); !errors.As(err, &held) || held.Node != "n1" || held.Holder != "elsewhere:1:a" {
		t.Fatalf("a held node was taken: %v", err)
	}
	if err := key("n1", mine, time.Nanosecond).Acquire(ctx, up); err != nil {
		t.Fatalf("an expired lease was not taken: %v", err)
	}

	// Released by a clean stop.
	other := key("n2", "elsewhere:2:b", 0)
	if err := other.Acquire(ctx, up); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- other.Run(runCtx) }()
	other.Set(status.Status{Docker: status.Disconnected, Error: statuskv.StoppedError, Since: time.Now().UTC()})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := key("n2", mine, 0).Acquire(ctx, up); err != nil {
		t.Fatalf("a released lease was not taken: %v", err)
	}

	// A holder of this host that no longer runs (kill -9, then a restart).
	host := strings.SplitN(mine, ":", 2)[0] // this host, as holders name it
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := key("n3", fmt.Sprintf("%s:%d:c", host, dead.Process.Pid), 0).Acquire(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := key("n3", mine, 0).Acquire(ctx, up); err != nil {
		t.Fatalf("the lease of a dead process of this host was not taken: %v", err)
	}

	// A running holder whose lease was taken stops with a HeldError.
	first := key("n4", "elsewhere:4:d", 0)
	if err := first.Acquire(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := key("n4", mine, time.Nanosecond).Acquire(ctx, up); err != nil {
		t.Fatal(err)
	}
	go func() { done <- first.Run(ctx) }()
	first.Set(up)
	select {
	case err := <-done:
		if !errors.As(err, &held) || held.Holder != mine {
			t.Fatalf("Run of the holder that lost its lease: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the holder whose lease was taken still runs")
	}
}

package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Changes made while NATS is down are all written, in order, when it is
// back: a quick disconnected -> connected flip leaves both in the key's
// history. With a full backlog the oldest disconnect and the newest status
// survive.
func TestStatusWriterKeepsEveryChange(t *testing.T) {
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
	run := func(backlog int) *stream.StatusWriter {
		w := &stream.StatusWriter{KV: kv, Log: testkit.Logger(t), Timeout: 500 * time.Millisecond,
			RetryWait: 50 * time.Millisecond, Backlog: backlog}
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		t.Cleanup(func() { stop(); <-done })
		return w
	}
	flip, full := run(0), run(4)
	st := func(node, docker, why string) status.Status {
		return status.Status{Node: node, Docker: docker, Error: why, Since: time.Now().UTC()}
	}

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
		"flip": {"disconnected:d1", "connected:c1"},
		"full": {"disconnected:d1", "disconnected:d3", "connected:c3"},
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

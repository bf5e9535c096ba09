package hub

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runHub makes h's stream (memory storage) and runs h until the test
// ends.
func runHub(t *testing.T, js jetstream.JetStream, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := natsutil.StreamConfig(h.stream, 0, -1, 1)
	cfg.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Run(rctx)
	}()
	t.Cleanup(func() {
		rcancel()
		<-done
	})
}

// TestWatchdogNoFalseReset: the watchdog, checking the stream constantly
// while messages flow, never mistakes messages stored after its stream
// info for the stream going backwards (which detached the live feed and
// stalled every client for RetryWait).
func TestWatchdogNoFalseReset(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs lockedBuffer
	h := New(js, "WATCHDOG", slog.New(slog.NewTextHandler(&logs, nil)), nil)
	h.CheckInterval = time.Millisecond
	h.RetryWait, h.MaxRetryWait = time.Millisecond, time.Millisecond
	runHub(t, js, h)
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, reason := h.Ready(); !ok {
			return fmt.Errorf("%s", reason)
		}
		return nil
	})
	const n = 3000
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync("docker.events.n.container.start", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishes not acknowledged")
			}
		}
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if s := h.LastSeq(); s != n {
			return fmt.Errorf("live feed at %d, want %d", s, n)
		}
		return nil
	})
	if l := logs.String(); strings.Contains(l, "stream reset") || strings.Contains(l, "interrupted") {
		t.Fatalf("the live feed was detached while the stream only grew:\n%s", l)
	}
}

// TestWarmUpEndsWhenItsMessagesAreGone: the ring's warm-up waits for the
// stream's last messages at start; when they are removed (aged out,
// purged) before the consumer delivers them, the watchdog's look at the
// stream ends it, or an idle stream would keep the gateway unready.
func TestWarmUpEndsWhenItsMessagesAreGone(t *testing.T) {
	t.Parallel()
	h := New(nil, "WARM", testkit.Logger(t), nil)
	h.warmTo = 10
	h.warming.Store(true)
	h.warmUpGone(10) // message 10 is still there
	if !h.warming.Load() || h.attached.Load() {
		t.Fatal("warm-up ended while its last message is still in the stream")
	}
	h.warmUpGone(11) // everything up to 10 is gone
	if h.warming.Load() || !h.attached.Load() {
		t.Fatalf("warm-up not ended after its messages were removed: warming %v attached %v", h.warming.Load(), h.attached.Load())
	}
}

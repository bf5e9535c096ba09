package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestStatusWatchWaitsForTheBucket: while DOCKER_STATUS does not exist,
// the status watch asks for it again with backoff (shared/backoff: at
// least RetryWait/2 between two attempts, never a busy loop), clients may
// join meanwhile, and once a publisher makes the bucket its statuses
// arrive (the watch never gives up).
func TestStatusWatchWaitsForTheBucket(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apiErrors := func() int64 {
		jsz, err := ns.Jsz(&server.JSzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return int64(jsz.API.Errors)
	}
	base := apiErrors()
	h := New(js, "NOBUCKET", testkit.Logger(t), nil)
	const wait = 100 * time.Millisecond
	h.RetryWait, h.MaxRetryWait = wait, wait
	began := time.Now()
	runHub(t, js, h)
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, reason := h.Serving(); !ok {
			return fmt.Errorf("%s", reason)
		}
		return nil
	})
	// Each attempt is one failed JetStream API call (the bucket's stream
	// info). Five of them take at least four waits of RetryWait/2.
	const attempts = 5
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := apiErrors() - base; n < attempts {
			return fmt.Errorf("%d attempts so far", n)
		}
		return nil
	})
	if took, least := time.Since(began), (attempts-1)*wait/2; took < least {
		t.Fatalf("%d attempts to open the missing bucket within %v, want at least %v between them (backoff)", apiErrors()-base, took, least)
	}
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	st := status.Status{Node: "n1", Docker: status.Connected, Since: time.Now(), Updated: time.Now()}
	if _, err := kv.Put(ctx, "n1", st.Marshal()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.status.nodes["n1"] == nil {
			return fmt.Errorf("the status of n1 has not arrived")
		}
		return nil
	})
}

// TestConnectIsNotAReconnect: nats.go reports a connection's first
// "connected" asynchronously, possibly after the hub began watching; that
// must not restart the status watch (a restart, waiting out its backoff,
// lost the changes written meanwhile: TestStatusScope saw B/2 missing).
// After a real disconnect the watch restarts, at once, without backoff.
func TestConnectIsNotAReconnect(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := natsutil.EnsureStatusBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	put := func(version string) {
		t.Helper()
		st := status.Status{Node: "n1", Docker: status.Connected, Since: time.Now(), Engine: status.Engine{Version: version}}
		if _, err := kv.Put(ctx, "n1", st.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	var h *Hub
	arrived := func(version string) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if ns := h.status.nodes["n1"]; ns == nil || !strings.Contains(ns.change, `"version":"`+version+`"`) {
				return fmt.Errorf("status of n1 version %s has not arrived", version)
			}
			return nil
		})
	}
	put("1")
	h = New(js, "REWATCH", testkit.Logger(t), nil)
	h.RetryWait, h.MaxRetryWait = time.Hour, time.Hour // a restart that waited would never end
	runHub(t, js, h)
	arrived("1")
	h.Reconnected(true) // the first "connected"
	put("2")
	arrived("2")
	if n := h.watches.Load(); n != 1 {
		t.Fatalf("%d status watches after the first connected, want 1", n)
	}
	h.Reconnected(false)
	h.Reconnected(true)
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := h.watches.Load(); n != 2 {
			return fmt.Errorf("%d status watches after a reconnect, want 2", n)
		}
		return nil
	})
	put("3")
	arrived("3")
}

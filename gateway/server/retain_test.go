package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestConnectedKeepsNoAdmission: once a /ws client is connected (live),
// the server keeps the client and nothing of how it was admitted: its
// entry in the registry of clients no longer holds the admission (query,
// token parameter, peer), and its HTTP request is freed by a collection,
// while the client is still served and still counted.
func TestConnectedKeepsNoAdmission(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := natsutil.StreamConfig("RETAIN", 0, -1, 1)
	cfg.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	log := testkit.Logger(t)
	h := hub.New(js, "RETAIN", log, nil)
	hctx, hcancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		_ = h.Run(hctx)
	}()
	m := metrics.New()
	s := NewServer(log, config.Config{MaxClients: 10, MaxClientsPerIP: 10},
		Deps{Hub: h, Replayer: replay.New(js, "RETAIN", h, 2, log, m), Metrics: m})
	var mu sync.Mutex
	var requests []weak.Pointer[http.Request]
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			mu.Lock()
			requests = append(requests, weak.Make(r))
			mu.Unlock()
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		s.Shutdown(sctx)
		hs.Close()
		hcancel()
		<-hubDone
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, why := h.Serving(); !ok {
			return errors.New(why)
		}
		return nil
	})

	u := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?filter=type%3Dcontainer&token=" + strings.Repeat("t", 100)
	ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"X-Padding": {strings.Repeat("h", 1000)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("before live: %v", err)
		}
		if bytes.Contains(msg, []byte(`"type":"live"`)) {
			break
		}
	}

	entries := 0
	s.clients.Range(func(k, v any) bool {
		entries++
		if _, ok := v.(started); !ok {
			t.Errorf("a connected client's entry holds %T, want only the client (started)", v)
		}
		return true
	})
	if entries != 1 || s.Clients() != 1 {
		t.Fatalf("%d registry entries, %d clients counted; want 1 and 1", entries, s.Clients())
	}
	mu.Lock()
	req := requests[0]
	mu.Unlock()
	testkit.Eventually(t, 10*time.Second, func() error {
		runtime.GC()
		if req.Value() != nil {
			return fmt.Errorf("the client's request is still reachable after a collection")
		}
		return nil
	})

	// The connection goes on, and leaving still releases its slots.
	if err := ws.WriteControl(websocket.PingMessage, []byte("still there"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = ws.Close()
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := s.Clients(); n != 0 {
			return fmt.Errorf("%d clients counted after the client left", n)
		}
		return nil
	})
}

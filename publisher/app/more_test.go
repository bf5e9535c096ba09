package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// A full queue closes the Docker subscription instead of blocking or
// dropping; once there is room the publisher resumes and loses nothing.
func TestQueueOverflowResumes(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	np := testkit.StartNATSProcess(t)
	label := testkit.Unique("overflow")
	p := startPub(t, map[string]string{"NATS_URL": np.URL(), "PUBLISHER_FILTERS": "label=" + labelKey + "=" + label,
		"PUBLISHER_QUEUE_MAX_BYTES": "2KiB"}, // about four events
		func(a *app.App) { a.AckTimeout = time.Second })
	p.WaitReady()

	engineLock.RLock()
	defer engineLock.RUnlock()
	engine := watchEngine(t, cli, p.Node, label)
	np.Stop(syscall.SIGTERM)
	var ids []string
	for range 3 { // 12 events for a queue of 4
		ids = append(ids, runAndRemove(t, cli, label))
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		n, err := p.metric("dockcast_publisher_queue_overflows_total")
		if err != nil {
			t.Fatal(err) // the metric itself is missing
		}
		if n < 1 {
			return fmt.Errorf("no overflow yet")
		}
		return nil
	})
	np.Start()
	_, js := testkit.Connect(t, np.URL())
	sameAsEngine(t, engine, js, p.Node, ids)
}

// Without NATS_URL the publisher runs its own JetStream server that other
// processes can use; a restart on the same data dir resumes without a gap.
func TestEmbeddedServer(t *testing.T) {
	t.Parallel()
	// From the first run's last event to the restart's gap check, the
	// engine's 256-event memory must not be flooded by TestGap.
	engineLock.RLock()
	defer engineLock.RUnlock()
	dir := t.TempDir()
	vars := map[string]string{"PUBLISHER_EMBEDDED_NATS": testkit.FreeAddr(t), "PUBLISHER_DATA_DIR": dir}
	p := startPub(t, vars, nil)
	p.WaitReady()
	url := "nats://" + vars["PUBLISHER_EMBEDDED_NATS"]
	nc, js := testkit.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		e, err := kv.Get(ctx, p.Node)
		if err != nil {
			return err
		}
		s, _ := status.Decode(e.Value())
		if s.Docker != status.Connected {
			return errors.New(s.Docker)
		}
		return nil
	})
	first := readNode(t, js, "DOCKER_EVENTS", p.Node)
	if len(first) == 0 || first[0].Event.Actor.Attributes["reason"] != "first_start" {
		t.Fatalf("no first_start gap: %v", describe(first))
	}
	nc.Close()
	p.Stop()

	// The engine must hold an event after the last one stored for the
	// restart to prove coverage: make one.
	cli := testkit.Docker(t)
	id := runAndRemove(t, cli, testkit.Unique("embedded"))
	p2 := startPub(t, vars, nil)
	p2.WaitReady()
	_, js = testkit.Connect(t, url)
	testkit.Eventually(t, 30*time.Second, func() error {
		msgs := readNode(t, js, "DOCKER_EVENTS", p.Node)
		gaps := 0
		for _, m := range msgs {
			if m.Event.Action == event.ActionGap {
				gaps++
			}
		}
		if gaps != 1 {
			return fmt.Errorf("%d gaps after a clean restart", gaps)
		}
		if n := len(ofActors(msgs, id)); n != 4 {
			return fmt.Errorf("%d of 4 events of the container run while stopped", n)
		}
		return nil
	})
}

// SIGTERM: the binary drains, marks the node stopped in DOCKER_STATUS and exits 0.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	node := strings.ReplaceAll(testkit.Unique("term"), "-", "_")
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_NODE": node, "PUBLISHER_HTTP_ADDR": testkit.FreeAddr(t), "LOG_LEVEL": "warn"}
	p := startProc(t, vars)
	waitReady(t, "http://"+vars["PUBLISHER_HTTP_ADDR"])
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := status.Decode(e.Value()); s.Docker != status.Disconnected || s.Error != "publisher stopped" {
		t.Fatalf("status after SIGTERM: %+v", s)
	}
}

// An unreachable engine: status disconnected with the error, not ready,
// but healthy; the publisher keeps retrying.
func TestDockerUnreachable(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": "unix://" + t.TempDir() + "/none.sock"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testkit.Eventually(t, 30*time.Second, func() error {
		kv, err := js.KeyValue(ctx, status.Bucket)
		if err != nil {
			return err
		}
		e, err := kv.Get(ctx, p.Node)
		if err != nil {
			return err
		}
		s, _ := status.Decode(e.Value())
		if s.Docker != status.Disconnected || !strings.Contains(s.Error, "none.sock") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	if code, body, _ := p.get("/readyz"); code != 503 || !strings.Contains(body, "docker disconnected") || strings.Contains(body, "nats") {
		t.Errorf("readyz %d %q", code, body)
	}
	if code, _, _ := p.get("/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
}

// A stream configuration the server refuses for good stops the publisher
// with the server's reason instead of retrying forever.
func TestStreamRefused(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_STREAM_REPLICAS": "3", "PUBLISHER_HTTP_ADDR": "127.0.0.1:0",
		"PUBLISHER_NODE": "refused", "DOCKER_HOST": "unix:///nonexistent.sock"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log strings.Builder
	err := app.Run(ctx, []string{"publisher"}, env(vars), &log, &log)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("want a replicas error, got %v", err)
	}
}

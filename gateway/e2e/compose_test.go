package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gwclient "github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/gorilla/websocket"
)

// compose runs scripts/compose.sh for one project.
type compose struct {
	t       testing.TB
	root    string
	project string
	env     []string
}

func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "compose.sh"), append([]string{"-p", c.project}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("compose %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *compose) must(args ...string) {
	c.t.Helper()
	if _, err := c.run(3*time.Minute, args...); err != nil {
		c.t.Fatal(err)
	}
}

// wsClient follows /ws with a filter and reconnects after every drop,
// resuming with from_seq=last+1, recording each event frame.
type wsClient struct {
	url      string
	label    string
	mu       sync.Mutex
	seqs     map[uint64]int
	ids      map[string]int
	events   []event.Event
	last     uint64
	connects int
	dupes    []string
	gaps     []string
}

type frame = gwclient.Frame

func (c *wsClient) follow(ctx context.Context, t testing.TB) {
	for ctx.Err() == nil {
		q := url.Values{"filter": {"label=" + LabelKey + "=" + c.label}}
		c.mu.Lock()
		q.Set("from_seq", strconv.FormatUint(c.last+1, 10))
		c.mu.Unlock()
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.DialContext(ctx, c.url+"?"+q.Encode(), nil)
		if err != nil {
			select { // retry pace of a reconnecting client, not synchronisation
			case <-time.After(250 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		c.mu.Lock()
		c.connects++
		c.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				break
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Errorf("bad frame %s: %v", data, err)
				continue
			}
			c.mu.Lock()
			switch f.Type {
			case "event":
				ev, err := event.Decode(f.Event)
				if err != nil {
					t.Errorf("bad event %s: %v", f.Event, err)
				}
				c.seqs[f.Seq]++
				c.ids[ev.ID]++
				if c.seqs[f.Seq] > 1 || c.ids[ev.ID] > 1 {
					c.dupes = append(c.dupes, fmt.Sprintf("#%d %s %s", f.Seq, ev.Action, ev.ID))
				}
				if f.Seq > c.last {
					c.last = f.Seq
				}
				c.events = append(c.events, ev)
			case "gap":
				c.gaps = append(c.gaps, string(data))
			case "error":
				if f.Code == "slow_consumer" && f.ResumeFromSeq > 0 {
					c.last = f.ResumeFromSeq - 1
				}
			}
			c.mu.Unlock()
		}
		stop()
		_ = conn.Close()
	}
}

// engineWatch records the engine's own events for the label, live: the
// truth the stack's output is compared with.
type engineWatch struct {
	mu  sync.Mutex
	ids map[string]events.Message
}

func TestComposeStack(t *testing.T) {
	t.Parallel()
	root := testkit.RepoRoot(t)
	cli := testkit.Docker(t)
	u := testkit.Unique("t")
	c := &compose{t: t, root: root, project: "dockcast-test-" + strings.ToLower(u)}
	port := testkit.FreePort(t)
	node := testkit.Unique("stack")
	c.env = []string{"DOCKCAST_TAG=test", "DOCKCAST_PORT=" + strconv.Itoa(port), "DOCKCAST_NODE=" + node}

	// The images, built the way `make stack` builds them.
	build := exec.Command(filepath.Join(root, "scripts", "stack-images.sh"))
	build.Env = append(os.Environ(), "DOCKCAST_TAG=test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("stack-images.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(time.Minute, "logs", "--no-color", "--tail", "80")
			t.Logf("--- compose logs:\n%s", out)
		}
		if out, err := c.run(3*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	// Which Compose runs the stack: v2 (`docker compose`) when the Docker
	// CLI has the plugin (scripts/test-deps.sh installs it), else v1.
	version, err := c.run(time.Minute, "version")
	if err != nil {
		t.Fatal(err)
	}
	version, _, _ = strings.Cut(strings.TrimSpace(version), "\n")
	major := "v1"
	if strings.HasPrefix(version, "Docker Compose version v2.") {
		major = "v2"
	}
	t.Logf("compose %s ran the stack: %s", major, version)
	if want := os.Getenv("DOCKCAST_COMPOSE"); want != "" && want != major {
		t.Fatalf("DOCKCAST_COMPOSE=%s, but scripts/compose.sh ran compose %s (%s)", want, major, version)
	}
	c.must("up", "-d")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, base+"/readyz")
	out, err := c.run(time.Minute, "ps")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"nats", "publisher", "gateway"} {
		if !strings.Contains(out, c.project+"_"+svc) && !strings.Contains(out, c.project+"-"+svc) {
			t.Fatalf("service %s is not running:\n%s", svc, out)
		}
	}
	if !strings.Contains(out, "healthy") {
		t.Errorf("no healthy service in compose ps:\n%s", out)
	}
	// The page is served by the stack too.
	waitHTTP(t, base+"/app.js")
	checkHardened(t, cli, c.project)

	label := testkit.Unique("stack")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The truth: the engine's events for the label, followed live from now.
	truth := &engineWatch{ids: map[string]events.Message{}}
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(filters.Arg("label", LabelKey+"="+label)),
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case m := <-msgs:
				ev := event.FromDocker(node, m)
				truth.mu.Lock()
				truth.ids[ev.ID] = m
				truth.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					t.Errorf("engine events: %v", err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	client := &wsClient{url: "ws://127.0.0.1:" + strconv.Itoa(port) + "/ws", label: label, seqs: map[uint64]int{}, ids: map[string]int{}}
	wg.Add(1)
	go func() { defer wg.Done(); client.follow(ctx, t) }()

	run := func(name string, args ...string) string {
		return testkit.RunProbe(t, cli, testkit.Probe{Name: name, Labels: map[string]string{LabelKey: label}, Args: args, Start: true})
	}
	seen := func(name, action string) func() error {
		return func() error {
			client.mu.Lock()
			defer client.mu.Unlock()
			for _, ev := range client.events {
				if ev.Actor.Attributes["name"] == name && ev.Action == action {
					return nil
				}
			}
			return fmt.Errorf("the client has no %s of %s (%d events, %d connects)", action, name, len(client.events), client.connects)
		}
	}
	var ids []string
	long := testkit.Unique("dockcast-stack-long")
	ids = append(ids, run(long, "sleep", "300s"))
	testkit.Eventually(t, 2*time.Minute, seen(long, "start"))

	// Each service in turn (publisher, then NATS, then the gateway, from
	// which the client reconnects with from_seq=last+1) is stopped while
	// containers run, and one container comes and goes while it is down.
	for _, svc := range []string{"publisher", "nats", "gateway"} {
		c.must("stop", "--timeout", "10", svc)
		name := testkit.Unique("dockcast-stack-" + svc)
		ids = append(ids, run(name, "sleep", "100ms"))
		exited(t, cli, ids[len(ids)-1])
		c.must("start", svc)
		testkit.Eventually(t, 2*time.Minute, seen(name, "die"))
	}

	after := testkit.Unique("dockcast-stack-after")
	ids = append(ids, run(after, "sleep", "100ms"))
	for _, id := range ids {
		if err := cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 2*time.Minute, seen(long, "destroy"))
	testkit.Eventually(t, 2*time.Minute, seen(after, "destroy"))

	// Every engine event of the label reached the client exactly once;
	// nothing else did but the publisher's own state snapshots.
	testkit.Eventually(t, 2*time.Minute, func() error {
		truth.mu.Lock()
		defer truth.mu.Unlock()
		client.mu.Lock()
		defer client.mu.Unlock()
		var missing []string
		for id, m := range truth.ids {
			if client.ids[id] == 0 {
				missing = append(missing, fmt.Sprintf("%s %s", m.Action, m.Actor.Attributes["name"]))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d engine events have not reached the client: %v (gaps: %v)", len(missing), len(truth.ids), missing, client.gaps)
		}
		return nil
	})
	client.mu.Lock()
	defer client.mu.Unlock()
	if len(client.dupes) > 0 {
		t.Errorf("events received twice: %v", client.dupes)
	}
	for _, ev := range client.events {
		truth.mu.Lock()
		_, ok := truth.ids[ev.ID]
		truth.mu.Unlock()
		if !ok && ev.Action != event.ActionState && ev.Type != event.TypeDockcast {
			t.Errorf("the client got %s %s of %s, which the engine did not report", ev.Type, ev.Action, ev.Actor.Attributes["name"])
		}
	}
	if client.connects < 2 {
		t.Errorf("the client connected %d times: the gateway's restart should have made it reconnect", client.connects)
	}
	if len(client.gaps) > 0 {
		t.Errorf("gap frames: %v", client.gaps)
	}
	t.Logf("stack: %d events of %d containers through publisher, nats and gateway restarts, %d client connections", len(client.events), len(ids), client.connects)
}

// checkHardened checks every container of the project: read-only root,
// no capabilities, no-new-privileges, restart unless-stopped, healthy.
func checkHardened(t *testing.T, cli *client.Client, project string) {
	t.Helper()
	ctx := context.Background()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d containers in project %s, want 3", len(list), project)
	}
	for _, c := range list {
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		hc := info.HostConfig
		name := info.Config.Labels["com.docker.compose.service"]
		if !hc.ReadonlyRootfs {
			t.Errorf("%s: root file system is writable", name)
		}
		if !slices.Equal([]string(hc.CapDrop), []string{"ALL"}) || len(hc.CapAdd) != 0 {
			t.Errorf("%s: cap_drop %v, cap_add %v", name, hc.CapDrop, hc.CapAdd)
		}
		if !slices.Contains(hc.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: security_opt %v", name, hc.SecurityOpt)
		}
		if hc.RestartPolicy.Name != "unless-stopped" {
			t.Errorf("%s: restart %q", name, hc.RestartPolicy.Name)
		}
		testkit.Eventually(t, time.Minute, func() error {
			info, err := cli.ContainerInspect(ctx, c.ID)
			if err != nil {
				return err
			}
			if info.State.Health == nil || info.State.Health.Status != "healthy" {
				return fmt.Errorf("%s: health %+v", name, info.State.Health)
			}
			return nil
		})
	}
}

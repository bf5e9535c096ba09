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

// compose runs scripts/compose.sh for one project: on docker-compose.yml,
// or on file (relative to the repository) when it is set.
type compose struct {
	t       testing.TB
	root    string
	project string
	file    string
	env     []string
}

// newCompose is a compose for a project named prefix plus a unique suffix,
// with the stack's images (tag test, built once per test binary) and env.
// When the test ends the project is brought down with its volumes, its
// logs printed first if the test failed.
func newCompose(t *testing.T, root, prefix, file string, env ...string) *compose {
	t.Helper()
	stackImages(t, root)
	c := &compose{t: t, root: root, project: prefix + "-" + strings.ToLower(testkit.Unique("t")), file: file,
		env: append([]string{"DOCKCAST_TAG=test"}, env...)}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(time.Minute, "logs", "--no-color", "--tail", "80")
			t.Logf("--- compose logs of %s:\n%s", c.project, out)
		}
		if out, err := c.run(3*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down %s: %v\n%s", c.project, err, out)
		}
	})
	return c
}

var stackImagesOnce struct {
	sync.Mutex
	done bool
}

// stackImages builds the stack's images, tagged test, the way `make stack`
// builds them, unless this test binary already did.
func stackImages(t *testing.T, root string) {
	t.Helper()
	stackImagesOnce.Lock()
	defer stackImagesOnce.Unlock()
	if stackImagesOnce.done {
		return
	}
	build := exec.Command(filepath.Join(root, "scripts", "stack-images.sh"))
	build.Env = append(os.Environ(), "DOCKCAST_TAG=test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("stack-images.sh: %v\n%s", err, out)
	}
	stackImagesOnce.done = true
}

func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pre := []string{"-p", c.project}
	if c.file != "" {
		pre = append(pre, "-f", filepath.Join(c.root, c.file))
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "compose.sh"), append(pre, args...)...)
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

// newWSClient is a client of the gateway's /ws at url (ws://host:port/ws)
// for the events of containers labelled LabelKey=label.
func newWSClient(url, label string) *wsClient {
	return &wsClient{url: url, label: label, seqs: map[uint64]int{}, ids: map[string]int{}}
}

// seen is a check for Eventually: the client has the action of the
// container called name.
func (c *wsClient) seen(name, action string) func() error {
	return func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ev := range c.events {
			if ev.Actor.Attributes["name"] == name && ev.Action == action {
				return nil
			}
		}
		return fmt.Errorf("the client of %s has no %s of %s (%d events, %d connects)", c.url, action, name, len(c.events), c.connects)
	}
}

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

// watchEngine follows the engine's events for the label from a second ago
// until ctx ends, on a goroutine that wg waits for; each is recorded under
// the id the publisher of node gives it.
func watchEngine(ctx context.Context, t *testing.T, cli *client.Client, node, label string, wg *sync.WaitGroup) *engineWatch {
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
	return truth
}

// checkDelivered waits until every engine event of the label has reached
// the client, then checks that none came twice and that nothing else did
// but the publisher's own state snapshots and dockcast events.
func checkDelivered(t *testing.T, truth *engineWatch, c *wsClient) {
	t.Helper()
	testkit.Eventually(t, 2*time.Minute, func() error {
		truth.mu.Lock()
		defer truth.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		var missing []string
		for id, m := range truth.ids {
			if c.ids[id] == 0 {
				missing = append(missing, fmt.Sprintf("%s %s", m.Action, m.Actor.Attributes["name"]))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d engine events have not reached the client of %s: %v (gaps: %v)", len(missing), len(truth.ids), c.url, missing, c.gaps)
		}
		return nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dupes) > 0 {
		t.Errorf("%s: events received twice: %v", c.url, c.dupes)
	}
	truth.mu.Lock()
	defer truth.mu.Unlock()
	for _, ev := range c.events {
		if _, ok := truth.ids[ev.ID]; !ok && ev.Action != event.ActionState && ev.Type != event.TypeDockcast {
			t.Errorf("%s: the client got %s %s of %s, which the engine did not report", c.url, ev.Type, ev.Action, ev.Actor.Attributes["name"])
		}
	}
}

func TestComposeStack(t *testing.T) {
	t.Parallel()
	root := testkit.RepoRoot(t)
	cli := testkit.Docker(t)
	port := testkit.FreePort(t)
	node := testkit.Unique("stack")
	c := newCompose(t, root, "dockcast-test", "", "DOCKCAST_PORT="+strconv.Itoa(port), "DOCKCAST_NODE="+node)
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
	checkHardened(t, cli, c.project, 3)

	label := testkit.Unique("stack")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The truth: the engine's events for the label, followed live from now.
	truth := watchEngine(ctx, t, cli, node, label, &wg)

	client := newWSClient("ws://127.0.0.1:"+strconv.Itoa(port)+"/ws", label)
	wg.Add(1)
	go func() { defer wg.Done(); client.follow(ctx, t) }()

	run := func(name string, args ...string) string {
		return testkit.RunProbe(t, cli, testkit.Probe{Name: name, Labels: map[string]string{LabelKey: label}, Args: args, Start: true})
	}
	var ids []string
	long := testkit.Unique("dockcast-stack-long")
	ids = append(ids, run(long, "sleep", "300s"))
	testkit.Eventually(t, 2*time.Minute, client.seen(long, "start"))

	// Each service in turn (publisher, then NATS, then the gateway, from
	// which the client reconnects with from_seq=last+1) is stopped while
	// containers run, and one container comes and goes while it is down.
	for _, svc := range []string{"publisher", "nats", "gateway"} {
		c.must("stop", "--timeout", "10", svc)
		name := testkit.Unique("dockcast-stack-" + svc)
		ids = append(ids, run(name, "sleep", "100ms"))
		exited(t, cli, ids[len(ids)-1])
		c.must("start", svc)
		testkit.Eventually(t, 2*time.Minute, client.seen(name, "die"))
	}

	after := testkit.Unique("dockcast-stack-after")
	ids = append(ids, run(after, "sleep", "100ms"))
	for _, id := range ids {
		if err := cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 2*time.Minute, client.seen(long, "destroy"))
	testkit.Eventually(t, 2*time.Minute, client.seen(after, "destroy"))

	// Every engine event of the label reached the client exactly once;
	// nothing else did but the publisher's own state snapshots.
	checkDelivered(t, truth, client)
	client.mu.Lock()
	defer client.mu.Unlock()
	if client.connects < 2 {
		t.Errorf("the client connected %d times: the gateway's restart should have made it reconnect", client.connects)
	}
	if len(client.gaps) > 0 {
		t.Errorf("gap frames: %v", client.gaps)
	}
	t.Logf("stack: %d events of %d containers through publisher, nats and gateway restarts, %d client connections", len(client.events), len(ids), client.connects)
}

// checkHardened checks that the project has n containers, each with a
// read-only root, no capabilities, no-new-privileges, restart
// unless-stopped, and healthy.
func checkHardened(t *testing.T, cli *client.Client, project string, n int) {
	t.Helper()
	ctx := context.Background()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d containers in project %s, want %d", len(list), project, n)
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

package dockerapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// labelKey marks this package's containers; its dockcast. prefix also shows
// that a container's own dockcast.* labels are printed (only what dockcast
// adds is left out).
const labelKey = "dockcast.dockerapi"

// capture is one run of real engine activity: every event the engine
// reported, live, from since to the marker (until), in the engine's order.
type capture struct {
	since, until string // Docker's since/until arguments bounding the window
	msgs         []events.Message
	names        map[string]string // role -> container, volume or tag name
}

// window: the captured messages within [since, until], as the engine
// answers a --since/--until query.
func (c *capture) window() []events.Message {
	lo, _ := ParseTimestamp(c.since)
	hi, _ := ParseTimestamp(c.until)
	var out []events.Message
	for _, m := range c.msgs {
		if m.TimeNano >= lo.UnixNano() && m.TimeNano <= hi.UnixNano() {
			out = append(out, m)
		}
	}
	return out
}

// runActivity runs containers (one with a real health check and a user's
// exec), tags and untags an image and makes and removes a volume, while
// following the engine's /events from before the first of them, until a
// marker volume's destroy and one more event after it (so that an event
// the engine timed before the marker but delivered after it is not missed).
func runActivity(t *testing.T, cli *client.Client) *capture {
	t.Helper()
	testkit.EnsureProbeImage(t, cli)
	u := strings.ToLower(testkit.Unique("dapi"))
	c := &capture{names: map[string]string{
		"short": u + "-short", "health": u + "-health", "tag": "dockcast-probe:" + u,
		"volume": u + "-vol", "marker": u + "-marker", "after": u + "-after",
	}}
	c.since = event.SinceArg(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	msgs, errs := cli.Events(ctx, events.ListOptions{Since: c.since})
	got := make(chan events.Message, 4096)
	go func() {
		for {
			select {
			case m := <-msgs:
				got <- m
			case <-errs:
				close(got)
				return
			}
		}
	}()
	// waitFor records events until one matches, failing after a minute.
	waitFor := func(what string, match func(events.Message) bool) events.Message {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			select {
			case m, ok := <-got:
				if !ok {
					t.Fatalf("engine events ended before %s", what)
				}
				c.msgs = append(c.msgs, m)
				if match(m) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %s from the engine within a minute (%d events)", what, len(c.msgs))
			}
		}
	}
	named := func(action, name string) func(events.Message) bool {
		return func(m events.Message) bool {
			return string(m.Action) == action && m.Actor.Attributes["name"] == name
		}
	}
	labels := map[string]string{labelKey: u, "html": "<a&b>", "dockcast.e2e": "a container's own label"}

	short := testkit.RunProbe(t, cli, testkit.Probe{Name: c.names["short"], Labels: labels, Args: []string{"sleep", "100ms"}, Start: true})
	testkit.WaitExited(t, cli, short)
	if err := cli.ContainerRemove(ctx, short, container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("destroy of "+c.names["short"], named("destroy", c.names["short"]))

	health := testkit.RunProbe(t, cli, testkit.Probe{Name: c.names["health"], Labels: labels, Health: true,
		Args: []string{"healthy-for", "60s", "sleep", "60s"}, Start: true})
	waitFor("health status of "+c.names["health"], named("health_status: healthy", c.names["health"]))
	exec, err := cli.ContainerExecCreate(ctx, health, container.ExecOptions{Cmd: []string{"/probe", "health"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerExecStart(ctx, exec.ID, container.ExecStartOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}
	waitFor("the user's exec_die", func(m events.Message) bool {
		return string(m.Action) == "exec_die" && m.Actor.Attributes["execID"] == exec.ID
	})
	if err := cli.ContainerRemove(ctx, health, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor("destroy of "+c.names["health"], named("destroy", c.names["health"]))

	if err := cli.ImageTag(ctx, testkit.ProbeImage, c.names["tag"]); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(ctx, c.names["tag"], image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("untag of "+c.names["tag"], func(m events.Message) bool { return m.Type == events.ImageEventType && m.Action == "untag" })

	for _, role := range []string{"volume", "marker", "after"} {
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: c.names[role], Labels: labels}); err != nil {
			t.Fatal(err)
		}
		if err := cli.VolumeRemove(ctx, c.names[role], true); err != nil {
			t.Fatal(err)
		}
		m := waitFor("destroy of volume "+c.names[role], func(m events.Message) bool {
			return m.Type == events.VolumeEventType && m.Action == "destroy" && m.Actor.ID == c.names[role]
		})
		if role == "marker" {
			c.until = event.SinceArg(m.TimeNano)
		}
	}
	return c
}

// engineCovers reports whether the engine's memory still reaches back to
// since: fewer than 256 events remembered (none ever dropped) or the
// oldest older than since. Only then do --since/--until answers hold the
// whole window.
func engineCovers(t *testing.T, cli *client.Client, c *capture) bool {
	t.Helper()
	mem := finiteEvents(t, cli, events.ListOptions{Until: event.SinceArg(time.Now().UnixNano())})
	since, _ := ParseTimestamp(c.since)
	return len(mem) < EngineMemory || mem[0].TimeNano < since.UnixNano()
}

// finiteEvents reads an /events answer that ends (an until in the past)
// through the Go SDK.
func finiteEvents(t *testing.T, cli *client.Client, opts events.ListOptions) []events.Message {
	t.Helper()
	out, err := testkit.FiniteEvents(cli, opts, time.Minute)
	if err != nil {
		t.Fatalf("SDK %v", err)
	}
	return out
}

// rawEvents reads the engine's own /events bytes for the query.
func rawEvents(t *testing.T, cli *client.Client, q url.Values) string {
	t.Helper()
	u, err := client.ParseHostURL(cli.DaemonHost())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: time.Minute}
	base := "http://" + u.Host
	if u.Scheme == "unix" {
		hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", u.Host)
		}}
		base = "http://docker"
	}
	res, err := hc.Get(base + "/v1.41/events?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("engine /events: %s %v %s", res.Status, err, body)
	}
	return string(body)
}

// cliJSON is the CLI's {{json .}} of a message (its encoder does not
// escape HTML characters).
func cliJSON(t *testing.T, m events.Message) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(buf.String())
}

const testToken = "s3cret-token"

// gatewayOf serves the captured events (as dockcast events of one node)
// through NewHandler, with a bearer token required.
func gatewayOf(t *testing.T, c *capture) (*httptest.Server, *memSource) {
	t.Helper()
	src := newMemSource()
	for _, m := range c.msgs {
		src.add(event.FromDocker("engine-1", m))
	}
	srv := serve(t, Config{Admit: func(r *http.Request, _ *Query) error {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			return &Error{Status: http.StatusUnauthorized, Message: "missing or wrong token"}
		}
		return nil
	}}, src)
	return srv, src
}

// TestLikeTheEngine proves, against this machine's engine and Docker CLI,
// that a dockcast event converted back is exactly the engine's event: the
// bytes of /events, the lines of `docker events --format '{{json .}}'`, and
// the same lines printed by the real CLI and decoded by the Go SDK when
// they are pointed at the handler (with a bearer token from config.json).
func TestLikeTheEngine(t *testing.T) {
	cli := testkit.Docker(t)
	d := testkit.NewDockerCLI(t)
	var c *capture
	var engineRaw, engineCLI string
	for attempt := 1; ; attempt++ {
		c = runActivity(t, cli)
		window := url.Values{"since": {c.since}, "until": {c.until}}
		engineRaw = rawEvents(t, cli, window)
		var err error
		if engineCLI, err = d.Run("events", "--since", c.since, "--until", c.until, "--format", "{{json .}}"); err != nil {
			t.Fatal(err)
		}
		if engineCovers(t, cli, c) {
			break
		}
		if attempt == 3 {
			t.Fatalf("the engine dropped events of the test's window from its %d-event memory three times: too busy", EngineMemory)
		}
		t.Logf("attempt %d: the engine's memory no longer covers the window; again", attempt)
	}
	win := c.window()
	t.Logf("window %s..%s: %d engine events", c.since, c.until, len(win))

	// The engine's bytes, from dockcast events.
	var want []string
	for _, m := range win {
		e := event.FromDocker("engine-1", m)
		want = append(want, line(t, e))
	}
	if got := lines(t, engineRaw); !slices.Equal(got, want) {
		t.Errorf("engine /events vs dockcast's conversion:\n%s", testkit.LineDiff(got, want))
	}
	// The engine's CLI lines, from dockcast events rendered as the CLI does.
	want = want[:0]
	for _, m := range win {
		e := event.FromDocker("engine-1", m)
		want = append(want, cliJSON(t, Message(&e)))
	}
	if got := lines(t, engineCLI); !slices.Equal(got, want) {
		t.Errorf("docker events (engine) vs dockcast's conversion:\n%s", testkit.LineDiff(got, want))
	}
	var types []string
	for _, m := range win {
		if !slices.Contains(types, string(m.Type)+" "+string(m.Action)) {
			types = append(types, string(m.Type)+" "+string(m.Action))
		}
	}
	t.Logf("event kinds compared: %s", strings.Join(types, ", "))

	srv, _ := gatewayOf(t, c)
	addr := strings.TrimPrefix(srv.URL, "http://")
	gw := d.At(addr, `{"HttpHeaders":{"Authorization":"Bearer `+testToken+`"}}`)

	// The same command lines print the same lines from the gateway.
	filterSets := [][]string{
		nil,
		{"--filter", "label=" + labelKey},
		{"--filter", "type=container", "--filter", "event=start", "--filter", "event=die"},
		{"--filter", "event=health_status"},
		{"--filter", "event=exec_die", "--filter", "container=" + c.names["health"]},
		{"--filter", "type=image"},
		{"--filter", "volume=" + c.names["volume"]},
		{"--filter", "label=html=<a&b>", "--filter", "type=container"},
	}
	for _, fs := range filterSets {
		args := append([]string{"events", "--since", c.since, "--until", c.until, "--format", "{{json .}}"}, fs...)
		fromEngine, err := d.Run(args...)
		if err != nil {
			t.Fatal(err)
		}
		fromGateway, err := gw.Run(args...)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := lines(t, fromGateway), lines(t, fromEngine); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("docker events %s: gateway vs engine:\n%s", strings.Join(fs, " "), testkit.LineDiff(got, want))
		}
	}
	// The default format too.
	plain := []string{"events", "--since", c.since, "--until", c.until, "--filter", "label=" + labelKey}
	fromEngine, err := d.Run(plain...)
	if err != nil {
		t.Fatal(err)
	}
	if fromGateway, err := gw.Run(plain...); err != nil || fromGateway != fromEngine {
		t.Errorf("docker events (default format): %v\n%s", err, testkit.LineDiff(lines(t, fromGateway), lines(t, fromEngine)))
	}

	// docker version negotiates with the gateway's /_ping and /version.
	if out, err := gw.Run("version", "--format", "{{.Server.APIVersion}} {{.Server.Platform.Name}}"); err != nil || strings.TrimSpace(out) != "1.41 dockcast" {
		t.Errorf("docker version: %q %v", out, err)
	}
	// Without the token, or with a wrong one, the CLI says why.
	for _, cfg := range []string{"", `{"HttpHeaders":{"Authorization":"Bearer wrong"}}`} {
		_, err := d.At(addr, cfg).Run("events", "--since", c.since, "--until", c.until)
		if err == nil || !strings.Contains(err.Error(), "Error response from daemon: missing or wrong token") {
			t.Errorf("config %q: %v", cfg, err)
		}
	}

	// The Go SDK's Events, negotiating its version, decodes the engine's messages.
	sdk, err := client.NewClientWithOpts(client.WithHost("tcp://"+addr), client.WithAPIVersionNegotiation(),
		client.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + testToken}))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	decoded := finiteEvents(t, sdk, events.ListOptions{Since: c.since, Until: c.until})
	if !reflect.DeepEqual(decoded, win) {
		t.Errorf("SDK Events from the gateway: %d messages, want the engine's %d", len(decoded), len(win))
	}
	if v := sdk.ClientVersion(); v != "1.41" {
		t.Errorf("SDK negotiated %s", v)
	}
}

// TestCLIFollow: `docker events` without --until stays open: the history,
// then each new event as the source hands it over.
func TestCLIFollow(t *testing.T) {
	t.Parallel()
	base := time.Now().Add(-time.Minute).UnixNano()
	first := msg("container", "start", "c1", map[string]string{"name": "api", labelKey: "x"}, base)
	src := newMemSource(first)
	srv := serve(t, Config{}, src)
	gw := testkit.NewDockerCLI(t).At(strings.TrimPrefix(srv.URL, "http://"), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := gw.Command(ctx, "events", "--since", "10m", "--format", "{{json .}}", "--filter", "label="+labelKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	read := func() string {
		t.Helper()
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("docker events: %v %s", err, stderr.String())
		}
		return strings.TrimSpace(s)
	}
	want := func(e event.Event) string { return cliJSON(t, Message(&e)) }
	if got := read(); got != want(first) {
		t.Fatalf("history: %s", got)
	}
	for i := range 3 {
		other := msg("container", "die", "c9", map[string]string{"name": "other"}, time.Now().UnixNano())
		e := msg("container", "die", "c1", map[string]string{"name": "api", labelKey: "x", "exitCode": fmt.Sprint(i)}, time.Now().UnixNano())
		src.add(other, e)
		if got := read(); got != want(e) {
			t.Fatalf("live event %d: %s", i, got)
		}
	}
}

// TestCLITimeArguments: what the machine's CLI sends for --since/--until
// in its three notations (a duration, a date-time, Unix seconds) is parsed
// to the time the user meant.
func TestCLITimeArguments(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	srv := serve(t, Config{}, src)
	// A date-time without a zone is the CLI's local time.
	gw := testkit.NewDockerCLI(t).At(strings.TrimPrefix(srv.URL, "http://"), "").With("TZ=UTC")
	cases := []struct {
		args         []string
		since, until time.Time
		tolerance    time.Duration // for durations, relative to when the CLI ran
	}{
		{[]string{"--since", "2026-11-30T10:00:00", "--until", "2026-11-30T11:00:00.5"},
			time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 11, 0, 0, 5e8, time.UTC), 0},
		{[]string{"--since", "2026-11-30", "--until", "2026-11-30T10:00:00Z"},
			time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 0},
		{[]string{"--since", "1764097465", "--until", "1764097465.25"},
			time.Unix(1764097465, 0), time.Unix(1764097465, 25e7), 0},
		{[]string{"--since", "1h", "--until", "10m"},
			time.Now().Add(-time.Hour), time.Now().Add(-10 * time.Minute), time.Minute},
	}
	for i, c := range cases {
		if _, err := gw.Run(append([]string{"events"}, c.args...)...); err != nil {
			t.Fatal(err)
		}
		q := src.query(i)
		near := func(got, want time.Time) bool { d := got.Sub(want); return d <= c.tolerance && d >= -c.tolerance }
		if !near(q.Since, c.since) || !near(q.Until, c.until) || q.Follow {
			t.Errorf("docker events %s: since %v until %v follow %v", strings.Join(c.args, " "), q.Since, q.Until, q.Follow)
		}
	}
}

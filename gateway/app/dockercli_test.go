package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/dockerapi"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// cliLines runs the CLI and returns its output's lines (the test fails
// on an error).
func cliLines(t *testing.T, d testkit.DockerCLI, args ...string) []string {
	t.Helper()
	out, err := d.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(out)
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// engineEvents reads the engine's own /events for the window through the SDK.
func engineEvents(t *testing.T, cli *dockerclient.Client, opts events.ListOptions) []events.Message {
	t.Helper()
	ms, err := sdkEvents(t, cli, opts)
	if err != nil {
		t.Fatalf("engine events %+v: %v", opts, err)
	}
	return ms
}

// TestDockerCLIMatchesEngine: with the real publisher writing this
// machine's engine's events, the machine's docker CLI pointed at the
// gateway (token from HttpHeaders in its config.json) prints, line for
// line, what the engine's own `docker events` prints for the same
// window and filters (--format '{{json .}}' and the default format);
// follow mode prints the history, then new events as they happen; the Go
// SDK decodes the same messages; the gateway's event metrics count the
// container that exited 3.
func TestDockerCLIMatchesEngine(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	const stream = "DOCKER_EVENTS"
	node := testkit.Unique("cli")
	pubAddr := testkit.FreeAddr(t)
	startPublisherAt(t, ns.ClientURL(), stream, node, pubAddr)
	testkit.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.Stream(ctx, stream)
		return err
	})
	const tok = "cli-token-0123456789"
	g := startGateway(t, ns.ClientURL(), stream, map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t, tok+" docker.events.>")}, app.Options{})
	addr := strings.TrimPrefix(g.base, "http://")
	engine := testkit.NewDockerCLI(t)
	gw := engine.At(addr, `{"HttpHeaders":{"Authorization":"Bearer `+tok+`"}}`)
	sdk := sdkFor(t, g, tok)

	u := strings.ToLower(testkit.Unique("cli"))
	label := "dockcast.cli=" + u
	labels := map[string]string{"dockcast.cli": u, "html": "<a&b>"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var since, until, marker string
	for attempt := 1; ; attempt++ {
		since = event.SinceArg(time.Now().UnixNano())
		ok := testkit.RunProbe(t, cli, testkit.Probe{Name: u + "-ok", Labels: labels, Args: []string{"sleep", "50ms"}, Start: true})
		bad := testkit.RunProbe(t, cli, testkit.Probe{Name: u + "-exit3", Labels: labels, Args: []string{"exit", "3"}, Start: true})
		testkit.WaitExited(t, cli, ok)
		testkit.WaitExited(t, cli, bad)
		for _, id := range []string{ok, bad} {
			if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		marker = u + "-marker"
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: marker, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		if err := cli.VolumeRemove(ctx, marker, true); err != nil {
			t.Fatal(err)
		}
		ms := engineEvents(t, cli, events.ListOptions{Since: since, Until: event.SinceArg(time.Now().UnixNano()),
			Filters: filters.NewArgs(filters.Arg("volume", marker), filters.Arg("event", "destroy"))})
		if len(ms) != 1 {
			t.Fatalf("engine: %d destroys of the marker volume", len(ms))
		}
		until = event.SinceArg(ms[0].TimeNano)
		// The engine's memory (256 events) must still hold the window.
		mem := engineEvents(t, cli, events.ListOptions{Until: event.SinceArg(time.Now().UnixNano())})
		sinceT, _ := dockerapi.ParseTimestamp(since)
		if len(mem) < dockerapi.EngineMemory || mem[0].TimeNano < sinceT.UnixNano() {
			break
		}
		if attempt == 3 {
			t.Fatal("the engine's memory no longer held the test's window three times: too busy")
		}
		t.Logf("attempt %d: the engine's memory no longer holds the window; again", attempt)
		u = strings.ToLower(testkit.Unique("cli"))
		label, labels = "dockcast.cli="+u, map[string]string{"dockcast.cli": u, "html": "<a&b>"}
	}
	// The gateway has the window once the marker is in the stream.
	testkit.Eventually(t, 60*time.Second, func() error {
		ms, err := sdkEvents(t, sdk, events.ListOptions{Since: since, Until: until, Filters: filters.NewArgs(filters.Arg("volume", marker))})
		if err != nil || len(ms) < 2 {
			return fmt.Errorf("marker not in the gateway's stream yet: %d %v", len(ms), err)
		}
		return nil
	})

	window := []string{"events", "--since", since, "--until", until}
	for _, fs := range [][]string{
		{"--filter", "label=" + label},
		{"--filter", "label=" + label, "--filter", "event=die"},
		{"--filter", "container=" + u + "-exit3"},
		{"--filter", "type=volume", "--filter", "volume=" + marker},
		{"--filter", "label=html=<a&b>", "--filter", "label=" + label, "--filter", "type=container", "--filter", "event=start", "--filter", "event=destroy"},
	} {
		args := append(append(slices.Clone(window), "--format", "{{json .}}"), fs...)
		want, got := cliLines(t, engine, args...), cliLines(t, gw, args...)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("docker %s: gateway vs engine:\n%s", strings.Join(args, " "), testkit.LineDiff(got, want))
		}
	}
	// Without the token, the CLI says why.
	var noTok bytes.Buffer
	cmd := engine.At(addr, "").Command(ctx, window...)
	cmd.Stderr = &noTok
	if err := cmd.Run(); err == nil || !strings.Contains(noTok.String(), "Error response from daemon: missing token") {
		t.Errorf("docker events without a token: %v %q", err, noTok.String())
	}
	plain := append(slices.Clone(window), "--filter", "label="+label)
	if want, got := cliLines(t, engine, plain...), cliLines(t, gw, plain...); !slices.Equal(got, want) {
		t.Errorf("default format: gateway vs engine:\n%s", testkit.LineDiff(got, want))
	}
	// The Go SDK decodes the same messages.
	opts := events.ListOptions{Since: since, Until: until, Filters: filters.NewArgs(filters.Arg("label", label))}
	want := engineEvents(t, cli, opts)
	if got, err := sdkEvents(t, sdk, opts); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SDK Events: %v\n got  %s\n want %s", err, summary(got), summary(want))
	}
	var exitCode string
	for _, m := range want {
		if m.Action == "die" && m.Actor.Attributes["name"] == u+"-exit3" {
			exitCode = m.Actor.Attributes["exitCode"]
		}
	}
	t.Logf("window %s..%s: %d events of the test's containers; the exit container's code %s", since, until, len(want), exitCode)

	// Follow mode: the history, then what happens next, as the engine tells it.
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	follow := gw.Command(fctx, "events", "--since", since, "--format", "{{json .}}", "--filter", "label="+label)
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	follow.Stderr = &stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { fcancel(); _ = follow.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	readLines := func(n int) []string {
		t.Helper()
		var got []string
		deadline := time.After(60 * time.Second)
		for len(got) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("docker events (follow) ended after %d lines: %s", len(got), stderr.String())
				}
				got = append(got, l)
			case <-deadline:
				t.Fatalf("docker events (follow): %d lines within 60 s, want %d", len(got), n)
			}
		}
		return got
	}
	history := cliLines(t, engine, append(append(slices.Clone(window), "--format", "{{json .}}"), "--filter", "label="+label)...)
	if got := readLines(len(history)); !slices.Equal(got, history) {
		t.Errorf("follow history:\n%s", testkit.LineDiff(got, history))
	}
	live := testkit.RunProbe(t, cli, testkit.Probe{Name: u + "-live", Labels: labels, Args: []string{"exit", "3"}, Start: true})
	testkit.WaitExited(t, cli, live)
	// What the engine printed for it: its events since the window's end.
	var liveWant []string
	testkit.Eventually(t, 60*time.Second, func() error {
		liveWant = cliLines(t, engine, "events", "--since", until, "--until", event.SinceArg(time.Now().UnixNano()), "--format", "{{json .}}",
			"--filter", "label="+label, "--filter", "container="+u+"-live")
		if len(liveWant) < 3 { // create, start, die
			return fmt.Errorf("engine: %d events of the live container", len(liveWant))
		}
		return nil
	})
	if got := readLines(len(liveWant)); !slices.Equal(got, liveWant) {
		t.Errorf("follow, live:\n%s", testkit.LineDiff(got, liveWant))
	}

	// The event metrics moved with the real containers.
	body := scrape(t, g.base+"/metrics")
	for _, series := range []string{
		`dockcast_container_nonzero_exits_total{node="` + node + `"}`,
		`dockcast_events_total{action="die",node="` + node + `",type="container"}`,
		`dockcast_events_total{action="start",node="` + node + `",type="container"}`,
	} {
		if v, ok := sample(body, series); !ok || v < 2 {
			t.Errorf("%s = %v (%v), want >= 2 (the exit-3 containers)", series, v, ok)
		}
	}
	// Every metric the Grafana dashboard queries is exported by the
	// gateway or the publisher.
	checkDashboard(t, body, scrape(t, "http://"+pubAddr+"/metrics"))
}

func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return b.String()
}

// sample returns the value of one series in a Prometheus text exposition.
func sample(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

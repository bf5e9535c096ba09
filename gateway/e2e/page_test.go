package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/testkit"
	"github.com/docker/docker/client"
)

// exited waits until the container has stopped.
func exited(t testing.TB, cli *client.Client, id string) {
	t.Helper()
	testkit.Eventually(t, eventTimeout, func() error {
		info, err := cli.ContainerInspect(context.Background(), id)
		if err != nil {
			return err
		}
		if info.State.Running || info.State.Status == "created" {
			return fmt.Errorf("container %s is %s", info.Name, info.State.Status)
		}
		return nil
	})
}

func TestPageFollowsAndFilters(t *testing.T) {
	t.Parallel()
	s := startServices(t)
	cli := testkit.Docker(t)
	b := newBrowser(t)
	b.do(chromedp.Navigate(s.URL()))
	b.waitState("live")

	// Two containers, told apart by the value of the same label.
	la, lb := testkit.Unique("a"), testkit.Unique("b")
	na, nb := testkit.Unique("dockcast-e2e-a"), testkit.Unique("dockcast-e2e-b")
	testkit.RunProbe(t, cli, testkit.Probe{Name: na, Labels: map[string]string{LabelKey: la}, Args: []string{"sleep", "60s"}, Start: true})
	testkit.RunProbe(t, cli, testkit.Probe{Name: nb, Labels: map[string]string{LabelKey: lb}, Args: []string{"sleep", "60s"}, Start: true})
	waitRow(b, na, "start")
	waitRow(b, nb, "start")

	// The label filter, typed into the form and applied with the button.
	b.do(
		chromedp.SetValue(chromedp.ID("f-label"), LabelKey+"="+la),
		chromedp.Click(chromedp.ID("apply")),
	)
	check := func() error {
		rows, err := b.rows()
		if err != nil {
			return err
		}
		if !hasRow(rows, na, "create") || !hasRow(rows, na, "start") {
			return fmt.Errorf("%s's create and start are not both on the filtered page (%d rows)", na, len(rows))
		}
		for _, r := range rows {
			if r.Labels[LabelKey] != la {
				return fmt.Errorf("row #%d (%s %s of %q) does not match the filter", r.Seq, r.Type, r.Action, r.Name)
			}
		}
		return nil
	}
	testkit.Eventually(t, eventTimeout, check)

	// The filter lives in the URL: the address can be bookmarked and reopened.
	loc, err := evalJS[string](b, `location.href`)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query()["label"]; !slices.Equal(got, []string{LabelKey + "=" + la}) {
		t.Fatalf("page URL %s: label %q", loc, got)
	}
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(loc))
	b.waitState("live")
	if v, err := evalJS[string](b, `document.getElementById('f-label').value`); err != nil || v != LabelKey+"="+la {
		t.Fatalf("label input after reopening the URL: %q, %v", v, err)
	}
	testkit.Eventually(t, eventTimeout, check)

	// A later event of the filtered container arrives live; b's do not.
	if err := cli.ContainerKill(context.Background(), na, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitRow(b, na, "die")
	testkit.Eventually(t, eventTimeout, check)

	// Paused, the page keeps receiving but shows nothing new until resumed.
	b.do(chromedp.Click(chromedp.ID("pause")))
	nc := testkit.Unique("dockcast-e2e-c")
	testkit.RunProbe(t, cli, testkit.Probe{Name: nc, Labels: map[string]string{LabelKey: la}, Args: []string{"sleep", "60s"}, Start: true})
	testkit.Eventually(t, eventTimeout, func() error {
		st, err := b.stats()
		if err != nil {
			return err
		}
		if st.Pending < 2 {
			return fmt.Errorf("%d events waiting while paused", st.Pending)
		}
		return nil
	})
	rows, err := b.rows()
	if err != nil {
		t.Fatal(err)
	}
	if hasRow(rows, nc, "create") || hasRow(rows, nc, "start") {
		t.Fatal("a paused page shows new rows")
	}
	if txt, err := evalJS[string](b, `document.getElementById('pause').textContent`); err != nil || !strings.HasPrefix(txt, "Resume (") {
		t.Fatalf("pause button says %q, %v", txt, err)
	}
	b.do(chromedp.Click(chromedp.ID("pause")))
	waitRow(b, nc, "start")
	waitRow(b, nc, "create")

	// Phone width: nothing wider than the screen, the controls still there.
	b.do(chromedp.EmulateViewport(390, 844))
	testkit.Eventually(t, eventTimeout, func() error {
		r, err := evalJS[string](b, `JSON.stringify({sw: document.documentElement.scrollWidth, w: innerWidth,
			input: document.getElementById('f-label').getBoundingClientRect().width,
			pause: document.getElementById('pause').getBoundingClientRect().width,
			name: document.querySelector('#rows .ev .nm').getBoundingClientRect().width})`)
		if err != nil {
			return err
		}
		var m struct{ SW, W, Input, Pause, Name float64 }
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			return err
		}
		if m.SW > m.W || m.Input < 100 || m.Pause == 0 || m.Name < 60 {
			return fmt.Errorf("at phone width: %s", r)
		}
		return nil
	})
}

// The gateway is restarted while containers run: the page reconnects with
// from_seq and ends up with exactly the stream's events, each once.
func TestPageResumesAcrossGatewayRestart(t *testing.T) {
	t.Parallel()
	s := startServices(t)
	cli := testkit.Docker(t)
	label := testkit.Unique("resume")
	f, err := filter.Parse([]string{"label=" + LabelKey + "=" + label}, filter.GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	b.do(chromedp.Navigate(s.URL() + "?label=" + url.QueryEscape(LabelKey+"="+label)))
	b.waitState("live")

	run := func(name string, args ...string) string {
		return testkit.RunProbe(t, cli, testkit.Probe{Name: name, Labels: map[string]string{LabelKey: label}, Args: args, Start: true})
	}
	n1 := testkit.Unique("dockcast-e2e-r1")
	run(n1, "sleep", "120s")
	waitRow(b, n1, "start")

	s.Gateway.Stop(syscall.SIGTERM)
	testkit.Eventually(t, eventTimeout, func() error {
		st, err := b.stats()
		if err != nil {
			return err
		}
		if st.State == "live" {
			return fmt.Errorf("the page still says live")
		}
		return nil
	})
	// Events while the gateway is down: two short-lived containers.
	n2, n3 := testkit.Unique("dockcast-e2e-r2"), testkit.Unique("dockcast-e2e-r3")
	exited(t, cli, run(n2, "sleep", "100ms"))
	exited(t, cli, run(n3, "sleep", "100ms"))
	testkit.Eventually(t, eventTimeout, func() error {
		evs, err := s.stored(f)
		if err != nil {
			return err
		}
		for _, n := range []string{n2, n3} {
			if !slices.ContainsFunc(evs, func(e storedEvent) bool { return e.Event.Actor.Attributes["name"] == n && e.Event.Action == "die" }) {
				return fmt.Errorf("%s's die is not in the stream yet", n)
			}
		}
		return nil
	})
	s.Gateway.Start()
	b.waitState("live")
	n4 := testkit.Unique("dockcast-e2e-r4")
	run(n4, "sleep", "100ms")
	waitRow(b, n4, "die")

	testkit.Eventually(t, eventTimeout, func() error {
		want, err := s.stored(f)
		if err != nil {
			return err
		}
		rows, err := b.rows()
		if err != nil {
			return err
		}
		got := make([]uint64, 0, len(rows))
		for _, r := range rows {
			got = append(got, r.Seq)
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		wantSeqs := make([]uint64, 0, len(want))
		for _, e := range want {
			wantSeqs = append(wantSeqs, e.Seq)
		}
		if !slices.Equal(got, wantSeqs) {
			return fmt.Errorf("page shows seqs %v, the stream holds %v", got, wantSeqs)
		}
		return nil
	})
	rows, err := b.rows()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{n1, n2, n3, n4} {
		if !hasRow(rows, n, "start") {
			t.Errorf("no start row for %s", n)
		}
	}
	for _, n := range []string{n2, n3, n4} {
		if !hasRow(rows, n, "die") {
			t.Errorf("no die row for %s", n)
		}
	}
	st, err := b.stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Connects < 2 {
		t.Errorf("the page connected %d times, want a reconnect", st.Connects)
	}
	t.Logf("page after the restart: %d rows, %d connects, %d duplicate frames dropped", st.Rows, st.Connects, st.Duplicates)
	if st.Duplicates != 0 {
		t.Errorf("the gateway sent %d events twice across the resume", st.Duplicates)
	}
}

// A screenshot of the page with real events, for the README; on the way it
// checks that a row opens to its JSON and closes again.
func TestPageScreenshot(t *testing.T) {
	t.Parallel()
	s := startServicesNode(t, "web-1")
	cli := testkit.Docker(t)
	label := testkit.Unique("shot")
	labels := map[string]string{LabelKey: label, "com.example.team": "payments"}
	suffix := fmt.Sprintf("%04x", time.Now().UnixNano()&0xffff)
	names := map[string]string{}
	for _, svc := range []string{"api", "worker", "db", "cron"} {
		names[svc] = "shop-" + svc + "-" + suffix
	}
	b := newBrowser(t)
	b.do(chromedp.Navigate(s.URL() + "?label=" + url.QueryEscape(LabelKey+"="+label)))
	b.waitState("live")

	testkit.RunProbe(t, cli, testkit.Probe{Name: names["db"], Labels: labels, Args: []string{"sleep", "120s"}, Start: true})
	testkit.RunProbe(t, cli, testkit.Probe{Name: names["api"], Labels: labels, Health: true, Start: true,
		Args: []string{"healthy-for", "3s", "sleep", "120s"}})
	cron := testkit.RunProbe(t, cli, testkit.Probe{Name: names["cron"], Labels: labels, Args: []string{"sleep", "200ms"}, Start: true})
	exited(t, cli, cron)
	worker := testkit.RunProbe(t, cli, testkit.Probe{Name: names["worker"], Labels: labels, Args: []string{"sleep", "120s"}, Start: true})
	if err := cli.ContainerKill(context.Background(), worker, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitRow(b, names["worker"], "die")
	testkit.Eventually(t, eventTimeout, func() error {
		rows, err := b.rows()
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Name == names["api"] && r.Action == "health_status" && r.Detail == "unhealthy" {
				return nil
			}
		}
		return fmt.Errorf("no unhealthy row for %s yet", names["api"])
	})

	// A row opens to the full event JSON, and closes again, from the keyboard.
	b.do(chromedp.Focus(chromedp.CSS(`#rows .ev:nth-child(2) button.exp`)), chromedp.KeyEvent("\r"))
	detail, err := evalJS[string](b, `(document.querySelector('#rows .detail pre') || {}).textContent || ''`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, `"time_nano"`) || !strings.Contains(detail, label) {
		t.Fatalf("opened row shows %q", detail)
	}
	b.do(chromedp.KeyEvent("\r"))
	if n, err := evalJS[int](b, `document.querySelectorAll('#rows .detail').length`); err != nil || n != 0 {
		t.Fatalf("%d detail rows after closing, %v", n, err)
	}

	// Let the chart draw (it redraws every second).
	testkit.Eventually(t, 10*time.Second, func() error {
		n, err := evalJS[bool](b, `(() => { const c = document.getElementById('chart'); return c.width > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0); })()`)
		if err != nil || !n {
			return fmt.Errorf("chart not drawn: %v", err)
		}
		return nil
	})
	if _, err := evalJS[bool](b, `(document.activeElement.blur(), window.scrollTo(0, 0), true)`); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot: %d bytes", len(png))
	}
	// The README shows this screenshot: `make bench` (DOCKCAST_SCREENSHOT=1)
	// refreshes it; other runs write it to a temporary directory, so that a
	// test run leaves the working tree as it was.
	out := filepath.Join(t.TempDir(), "page.png")
	if os.Getenv("DOCKCAST_SCREENSHOT") != "" {
		out = filepath.Join(testkit.RepoRoot(t), "docs", "page.png")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
}

// With a tokens file the gateway answers 401: the page asks for a token
// once, keeps it for the tab, and follows with it (also after a reload),
// sending it as a WebSocket subprotocol rather than in the URL.
func TestPageAsksForToken(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# e2e\nsecret-e2e-token docker.events.>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServicesNode(t, testkit.Unique("e2e"), "GATEWAY_TOKENS_FILE="+tokens)
	b := newBrowser(t)
	b.do(chromedp.Navigate(s.URL()))
	testkit.Eventually(t, eventTimeout, func() error {
		open, err := evalJS[bool](b, `document.getElementById('token-dialog').open`)
		if err != nil || !open {
			return fmt.Errorf("no token dialog: %v", err)
		}
		return nil
	})
	// A wrong token is refused and asked for again.
	b.do(chromedp.SendKeys(chromedp.ID("token-input"), "wrong"), chromedp.Click(chromedp.ID("token-ok")))
	testkit.Eventually(t, eventTimeout, func() error {
		why, err := evalJS[string](b, `document.getElementById('token-dialog').open ? document.getElementById('token-why').textContent : ''`)
		if err != nil || !strings.Contains(why, "rejected") {
			return fmt.Errorf("dialog says %q (%v)", why, err)
		}
		return nil
	})
	b.do(chromedp.SetValue(chromedp.ID("token-input"), "secret-e2e-token"), chromedp.Click(chromedp.ID("token-ok")))
	b.waitState("live")
	// The token travels as the WebSocket subprotocol dockcast.token.<…>,
	// never in the URL (proxies log URLs); the gateway answered dockcast.v1.
	st, err := b.stats()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(st.URL, "token") || strings.Contains(st.URL, "secret") || st.Protocol != "dockcast.v1" {
		t.Fatalf("page connected to %q with subprotocol %q; want no token in the URL and dockcast.v1", st.URL, st.Protocol)
	}
	if v, err := evalJS[string](b, `sessionStorage.getItem('dockcast.token')`); err != nil || v != "secret-e2e-token" {
		t.Fatalf("token in sessionStorage: %q, %v", v, err)
	}
	b.do(chromedp.Reload())
	b.waitState("live")
	if open, err := evalJS[bool](b, `document.getElementById('token-dialog').open`); err != nil || open {
		t.Fatalf("asked again after a reload: %v %v", open, err)
	}
}

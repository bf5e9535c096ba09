package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/container"
	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/testkit"
)

// wsEvents connects to /ws with q (from_seq=1 added) and returns the seqs
// of the events sent before live.
func wsEvents(t *testing.T, addr string, q url.Values) []uint64 {
	t.Helper()
	q.Set("from_seq", "1")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", q.Encode(), err)
	}
	defer c.Close()
	var seqs []uint64
	for {
		f, err := readFrame(t, c)
		if err != nil {
			t.Fatalf("read %s: %v", q.Encode(), err)
		}
		switch f.Type {
		case "event":
			seqs = append(seqs, f.Seq)
		case "live":
			return seqs
		case "error":
			t.Fatalf("error frame %+v", f)
		}
	}
}

// A container with a real health check next to a user's docker exec on it
// (real engine, publisher and gateway binaries): only the check's exec
// events carry dockcast.healthcheck=true, and the gateway's
// healthcheck=false hides exactly those (healthcheck=true keeps exactly
// those).
func TestHealthcheckFilter(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	s := startServices(t)
	label := testkit.Unique("hc")
	id := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-e2e-hc"), Health: true, Start: true,
		Labels: map[string]string{LabelKey: label}, Args: []string{"healthy-for", "60s", "sleep", "60s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"/probe", "fail"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}

	byLabel, err := filter.Parse([]string{"label=" + LabelKey + "=" + label}, filter.GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	var all []storedEvent
	testkit.Eventually(t, eventTimeout, func() error {
		all, err = s.stored(byLabel)
		if err != nil {
			return err
		}
		userDied, checksDied := false, 0
		for _, m := range all {
			if m.Event.Action != "exec_die" {
				continue
			}
			if m.Event.Actor.Attributes["execID"] == ex.ID {
				userDied = true
			} else if m.Event.Actor.Attributes[event.AttrHealthcheck] == "true" {
				checksDied++
			}
		}
		if !userDied || checksDied < 2 {
			return fmt.Errorf("user's exec died: %v; tagged check exec_die: %d", userDied, checksDied)
		}
		return nil
	})
	var tagged, untagged []uint64
	for _, m := range all {
		e := m.Event
		isTagged := e.Actor.Attributes[event.AttrHealthcheck] == "true"
		if isTagged {
			tagged = append(tagged, m.Seq)
		} else {
			untagged = append(untagged, m.Seq)
		}
		exec := e.Actor.Attributes["execID"]
		switch {
		case exec == ex.ID && isTagged:
			t.Errorf("the user's docker exec is tagged: %s %v", e.DockerAction(), e.Actor.Attributes)
		case exec != "" && exec != ex.ID && !isTagged:
			t.Errorf("a health-check exec is not tagged: %s %v", e.DockerAction(), e.Actor.Attributes)
		case isTagged && e.Action == "exec_die" && e.Actor.Attributes[event.AttrCommand] != "/probe health":
			t.Errorf("exec_die without the check's command: %v", e.Actor.Attributes)
		}
	}
	last := all[len(all)-1].Seq
	upTo := func(seqs []uint64) []uint64 {
		return slices.DeleteFunc(seqs, func(s uint64) bool { return s > last })
	}
	for _, c := range []struct {
		hc   string
		want []uint64
	}{{"false", untagged}, {"true", tagged}} {
		got := upTo(wsEvents(t, s.GWAddr, url.Values{"filter": {"label=" + LabelKey + "=" + label, "healthcheck=" + c.hc}}))
		if !slices.Equal(got, c.want) {
			t.Errorf("healthcheck=%s sent %v, want %v", c.hc, got, c.want)
		}
	}

	// The page's "Health checks: hidden" filter is the same healthcheck=false.
	b := newBrowser(t)
	b.do(chromedp.Navigate(s.URL() + "?" + url.Values{"label": {LabelKey + "=" + label}, "healthcheck": {"false"}, "since": {"1h"}}.Encode()))
	testkit.Eventually(t, eventTimeout, func() error {
		rows, err := b.rows()
		if err != nil {
			return err
		}
		var seqs []uint64
		for _, r := range rows {
			seqs = append(seqs, r.Seq)
		}
		slices.Sort(seqs)
		if got := upTo(seqs); !slices.Equal(got, untagged) {
			return fmt.Errorf("page rows %v, want %v", got, untagged)
		}
		return nil
	})
	if v, err := evalJS[string](b, `document.getElementById('f-healthcheck').value`); err != nil || v != "false" {
		t.Errorf("the page's health-check filter shows %q (%v), want false", v, err)
	}
	if st, err := b.stats(); err != nil || !strings.Contains(st.URL, "filter=healthcheck%3Dfalse") {
		t.Errorf("the page's /ws URL %q (%v) does not carry healthcheck=false", st.URL, err)
	}

	if len(tagged) == 0 || !slices.ContainsFunc(all, func(m storedEvent) bool {
		return m.Event.Actor.Attributes["execID"] == ex.ID && slices.Contains(untagged, m.Seq)
	}) {
		t.Fatal(errors.New("the test saw no tagged event or no event of the user's exec"))
	}
}

package e2e

import (
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dockcast/dockcast/shared/testkit"
)

// sseState is what the test page's EventSource recorded.
type sseState struct {
	Seqs   []uint64 `json:"seqs"`
	IDs    []string `json:"ids"`
	Opens  int      `json:"opens"`
	Errors int      `json:"errors"`
	State  int      `json:"state"` // EventSource.readyState
}

// TestEventSourceResumesAcrossGatewayRestart: a real Chromium EventSource
// on /sse?from_seq=1 gets every event; the gateway is restarted on the
// same port while more events are stored; the browser reconnects by
// itself, sending the last id (<epoch>:<seq>) as Last-Event-ID, which wins
// over from_seq in its URL: every event arrives exactly once, in order.
func TestEventSourceResumesAcrossGatewayRestart(t *testing.T) {
	t.Parallel()
	g := startGatewayOnly(t)
	node := "sse-node"
	var want []uint64
	publish := func(n int) {
		for i := range n {
			want = append(want, g.event(node, fmt.Sprint("c", len(want), "-", i), "start"))
		}
	}
	publish(5)
	b := newBrowser(t)
	b.do(chromedp.Navigate("http://" + g.Addr + "/healthz")) // same origin, no page of its own
	if _, err := evalJS[bool](b, `(() => {
		const s = window.__sse = {seqs: [], ids: [], opens: 0, errors: 0, state: 0};
		const es = window.__es = new EventSource("/sse?from_seq=1&filter=type%3Dcontainer");
		es.onopen = () => { s.opens++; s.state = es.readyState; };
		es.onerror = () => { s.errors++; s.state = es.readyState; };
		es.addEventListener("event", (m) => { s.seqs.push(JSON.parse(m.data).seq); s.ids.push(m.lastEventId); });
		return true;
	})()`); err != nil {
		t.Fatal(err)
	}
	state := func() sseState {
		t.Helper()
		st, err := evalJS[sseState](b, `window.__sse`)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitSeqs := func(n int) sseState {
		t.Helper()
		var st sseState
		testkit.Eventually(t, eventTimeout, func() error {
			st = state()
			if len(st.Seqs) < n {
				return fmt.Errorf("the browser has %d events, want %d (opens %d, errors %d, readyState %d)", len(st.Seqs), n, st.Opens, st.Errors, st.State)
			}
			return nil
		})
		return st
	}
	st := waitSeqs(len(want))
	epoch := g.epoch()
	if last := st.IDs[len(st.IDs)-1]; last != fmt.Sprintf("%s:%d", epoch, want[len(want)-1]) {
		t.Errorf("last event id %q", last)
	}

	g.Gateway.Stop(syscall.SIGTERM)
	publish(5) // while the gateway is down
	g.Gateway.Start()
	waitHTTP(t, "http://"+g.Addr+"/readyz")
	publish(5)
	st = waitSeqs(len(want))
	if !slices.Equal(st.Seqs, want) {
		t.Fatalf("the browser got %v, want %v (each once, in order)", st.Seqs, want)
	}
	if st.Opens < 2 {
		t.Errorf("EventSource opened %d times, want a reconnect", st.Opens)
	}
	t.Logf("EventSource: %d events, %d opens, %d errors", len(st.Seqs), st.Opens, st.Errors)
}

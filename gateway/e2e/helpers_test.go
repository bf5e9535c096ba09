package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/subject"
	"github.com/dockcast/dockcast/shared/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// Generous deadlines: several test binaries share two cores.
const (
	startTimeout = 60 * time.Second
	eventTimeout = 60 * time.Second
)

// LabelKey is the label every container of these tests carries; its value
// is unique per test.
const LabelKey = "dockcast.e2e"

// waitHTTP polls url until it answers 200.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	testkit.Eventually(t, startTimeout, func() error {
		res, err := client.Get(url)
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, res.Status)
		}
		return nil
	})
}

// services is a NATS server, a publisher and a gateway, each a process.
type services struct {
	t       testing.TB
	NATS    *testkit.NATSProcess
	Node    string
	Gateway *testkit.Process
	GWAddr  string
	PubAddr string
	js      jetstream.JetStream
}

// startServices runs the three with a unique node name; startServicesNode
// names the node (each test has its own NATS server, so any name will do).
func startServices(t testing.TB) *services {
	t.Helper()
	return startServicesNode(t, testkit.Unique("e2e"))
}

func startServicesNode(t testing.TB, node string, gatewayEnv ...string) *services {
	t.Helper()
	s := &services{t: t, NATS: testkit.StartNATSProcess(t), Node: node}
	s.PubAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	testkit.StartProcess(t, "publisher", nil, "NATS_URL="+s.NATS.URL(), "PUBLISHER_NODE="+s.Node,
		"PUBLISHER_HTTP_ADDR="+s.PubAddr, "LOG_LEVEL=debug")
	waitHTTP(t, "http://"+s.PubAddr+"/readyz")
	s.GWAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	s.Gateway = testkit.StartProcess(t, "gateway", nil, append([]string{"NATS_URL=" + s.NATS.URL(), "GATEWAY_ADDR=" + s.GWAddr, "LOG_LEVEL=debug"}, gatewayEnv...)...)
	waitHTTP(t, "http://"+s.GWAddr+"/readyz")
	_, s.js = testkit.Connect(t, s.NATS.URL())
	return s
}

// URL is the live page's address.
func (s *services) URL() string { return "http://" + s.GWAddr + "/" }

// storedEvent is one message of the stream.
type storedEvent struct {
	Seq   uint64
	Event event.Event
}

// stored reads every event of this node's publisher that f matches,
// straight from the stream.
func (s *services) stored(f filter.Filter) ([]storedEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := s.js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	last := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Node(s.Node)}})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer func() { _ = stream.DeleteConsumer(context.Background(), cons.CachedInfo().Name) }()
	var out []storedEvent
	var lastSeen uint64
	for lastSeen < last {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			lastSeen = md.Sequence.Stream
			ev, err := event.Decode(m.Data())
			if err != nil {
				return nil, fmt.Errorf("seq %d: %w", md.Sequence.Stream, err)
			}
			if f.Match(&ev) {
				out = append(out, storedEvent{Seq: md.Sequence.Stream, Event: ev})
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("stream read stopped at #%d of #%d", lastSeen, last)
		}
	}
	return out, nil
}

// ---- the browser ------------------------------------------------------------

func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is missing: `make test-deps` installs Debian's chromium (apt-get install chromium), or set CHROMIUM")
	return ""
}

// browser is one headless Chromium tab, closed when the test ends.
type browser struct {
	t   testing.TB
	ctx context.Context
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // we run as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser: no timeout on it (it would stop the
	// browser), but a watchdog for a browser that never comes up.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(startTimeout):
		t.Fatal("chromium did not start in time")
	}
	b := &browser{t: t, ctx: ctx}
	b.do(chromedp.EmulateViewport(1280, 800))
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, startTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func evalJS[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// pageRow is what window.dockcast.rows() reports for one row of the list.
type pageRow struct {
	Seq    uint64            `json:"seq"`
	ID     string            `json:"id"`
	Type   string            `json:"type"`
	Action string            `json:"action"`
	Detail string            `json:"detail"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// pageStats is window.dockcast.stats().
type pageStats struct {
	State           string   `json:"state"`
	LastSeq         uint64   `json:"lastSeq"`
	NextSeq         uint64   `json:"nextSeq"`
	Rows            int      `json:"rows"`
	Pending         int      `json:"pending"`
	Received        int      `json:"received"`
	Rendered        int      `json:"rendered"`
	Duplicates      int      `json:"duplicates"`
	LastRenderedSeq uint64   `json:"lastRenderedSeq"`
	FirstRowAt      *float64 `json:"firstRowAt"`
	LiveAt          *float64 `json:"liveAt"`
	MaxLagMs        float64  `json:"maxLagMs"`
	RenderMs        float64  `json:"renderMs"`
	MaxRecvLagMs    float64  `json:"maxRecvLagMs"`
	Connects        int      `json:"connects"`
	SlowConsumer    int      `json:"slowConsumer"`
	Gaps            int      `json:"gaps"`
	Resets          int      `json:"resets"`
	Epoch           string   `json:"epoch"`
	URL             string   `json:"url"`
	Protocol        string   `json:"protocol"`
}

func (b *browser) rows() ([]pageRow, error) {
	s, err := evalJS[string](b, `JSON.stringify(window.dockcast ? window.dockcast.rows() : [])`)
	if err != nil {
		return nil, err
	}
	var rows []pageRow
	return rows, json.Unmarshal([]byte(s), &rows)
}

func (b *browser) stats() (pageStats, error) {
	s, err := evalJS[string](b, `JSON.stringify(window.dockcast ? window.dockcast.stats() : {})`)
	if err != nil {
		return pageStats{}, err
	}
	var st pageStats
	return st, json.Unmarshal([]byte(s), &st)
}

// waitState waits until the page's connection state is want.
func (b *browser) waitState(want string) {
	b.t.Helper()
	testkit.Eventually(b.t, eventTimeout, func() error {
		st, err := b.stats()
		if err != nil {
			return err
		}
		if st.State != want {
			return fmt.Errorf("page state %q, want %q", st.State, want)
		}
		return nil
	})
}

// hasRow reports whether rows hold an event of the container name with action.
func hasRow(rows []pageRow, name, action string) bool {
	for _, r := range rows {
		if r.Name == name && r.Action == action {
			return true
		}
	}
	return false
}

func waitRow(b *browser, name, action string) {
	b.t.Helper()
	testkit.Eventually(b.t, eventTimeout, func() error {
		rows, err := b.rows()
		if err != nil {
			return err
		}
		if !hasRow(rows, name, action) {
			return fmt.Errorf("no %s row for %s among %d rows", action, name, len(rows))
		}
		return nil
	})
}

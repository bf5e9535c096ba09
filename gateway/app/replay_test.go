package app_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/testkit"
)

// want returns the sequences of the published events at or after from
// that match terms.
func want(t testing.TB, pubs []published, from uint64, terms ...string) []uint64 {
	t.Helper()
	f, err := filter.Parse(terms, filter.GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, p := range pubs {
		if p.seq >= from && f.Match(&p.ev) {
			out = append(out, p.seq)
		}
	}
	return out
}

func teamEvent(i int) event2 {
	team := "a"
	if i%3 == 0 {
		team = "b"
	}
	action := "start"
	if i%2 == 0 {
		action = "stop"
	}
	return event2{action: action, attrs: map[string]string{"team": team, "i": strconv.Itoa(i)}}
}

type event2 struct {
	action string
	attrs  map[string]string
}

// TestReplayHandoff: since and from_seq give exactly the stream's matching
// events from that point, then live, then new events, with no gap and no
// duplicate at the handoff, while events are published during the replay.
func TestReplayHandoff(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "REPLAY"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")

	var mu sync.Mutex
	var pubs []published
	add := func(i int) uint64 {
		e := teamEvent(i)
		ev := mkEvent(node, e.action, e.attrs)
		seq := publish(t, js, ev)
		mu.Lock()
		pubs = append(pubs, published{seq, ev})
		mu.Unlock()
		return seq
	}
	for i := 0; i < 300; i++ {
		add(i)
	}
	sinceTime := time.Now() // after seq 300 was stored, before 301
	for i := 300; i < 400; i++ {
		add(i)
	}

	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})

	// Publish continuously while the clients replay.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 400; i < 1400 && ctx.Err() == nil; i++ {
			add(i)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	type clientCase struct {
		name  string
		query string
		from  uint64
		terms []string
	}
	cases := []clientCase{
		{"from_seq", q("from_seq", "50", "filter", "label=team=a"), 50, []string{"label=team=a"}},
		{"from_seq_all", q("from_seq", "1"), 1, nil},
		{"since", q("since", sinceTime.Format(time.RFC3339Nano), "filter", "event=start"), 301, []string{"event=start"}},
		{"since_unix", q("since", strconv.FormatInt(sinceTime.Add(-time.Hour).Unix(), 10), "filter", "label=team=b", "filter", "event=stop"), 1, []string{"label=team=b", "event=stop"}},
		{"live_only", q("filter", "label=team=a"), 0, []string{"label=team=a"}},
	}
	cols := make([]*collector, len(cases))
	for i, c := range cases {
		cols[i] = collect(dial(t, g.wsURL(c.query), nil))
	}
	wg.Wait()
	// A few more after the publisher goroutine ended.
	for i := 1400; i < 1410; i++ {
		add(i)
	}
	mu.Lock()
	all := append([]published(nil), pubs...)
	mu.Unlock()
	last := all[len(all)-1].seq

	for i, c := range cases {
		col := cols[i]
		testkit.Eventually(t, 60*time.Second, func() error {
			fs, err := col.snapshot()
			if err != nil {
				return err
			}
			from := c.from
			if from == 0 { // live only: from the live frame on
				for _, f := range fs {
					if f.Type == "live" {
						from = f.Seq + 1
					}
				}
				if from == 0 {
					return errNoLive
				}
			}
			w := want(t, all, from, c.terms...)
			if seqs := eventSeqs(fs); len(seqs) < len(w) || (len(seqs) > 0 && seqs[len(seqs)-1] < last && len(w) > 0 && w[len(w)-1] > seqs[len(seqs)-1]) {
				return checkFrames(fs, w)
			}
			return checkFrames(fs, w)
		})
		fs, _ := col.snapshot()
		if fs[0].Type == "gap" {
			t.Errorf("%s: unexpected gap frame %+v", c.name, fs[0])
		}
		t.Logf("%s: %d frames, %d events", c.name, len(fs), len(eventSeqs(fs)))
	}
}

var errNoLive = errorString("no live frame yet")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestGap: from_seq older than the stream's first sequence gives a gap
// frame, then the stream from its first sequence; since likewise.
func TestGap(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "GAP"
	newStream(t, js, stream, 10)
	node := testkit.Unique("node")
	before := time.Now().Add(-time.Minute)
	var pubs []published
	for i := 0; i < 30; i++ {
		ev := mkEvent(node, "start", nil)
		pubs = append(pubs, published{publish(t, js, ev), ev})
	}
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})

	c := dial(t, g.wsURL(q("from_seq", "5")), nil)
	f := read(t, c, 30*time.Second)
	if f.Type != "gap" || f.RequestedSeq != 5 || f.FirstSeq != 21 {
		t.Fatalf("first frame %+v, want gap requested_seq 5 first_seq 21", f)
	}
	var fs []frame
	for {
		f := read(t, c, 30*time.Second)
		fs = append(fs, f)
		if f.Type == "live" {
			break
		}
	}
	if err := checkFrames(fs, want(t, pubs, 21)); err != nil {
		t.Fatal(err)
	}
	if fs[len(fs)-1].Seq != 30 {
		t.Fatalf("live seq %d, want 30", fs[len(fs)-1].Seq)
	}

	c2 := dial(t, g.wsURL(q("since", before.Format(time.RFC3339Nano))), nil)
	f = read(t, c2, 30*time.Second)
	if f.Type != "gap" || f.FirstSeq != 21 || f.RequestedTime == "" {
		t.Fatalf("first frame %+v, want gap with requested_time and first_seq 21", f)
	}
	if rt, err := time.Parse(time.RFC3339Nano, f.RequestedTime); err != nil || !rt.Equal(before.UTC()) {
		t.Fatalf("requested_time %q (%v), want %s", f.RequestedTime, err, before.UTC().Format(time.RFC3339Nano))
	}
	f = read(t, c2, 30*time.Second)
	if f.Type != "event" || f.Seq != 21 {
		t.Fatalf("after the gap: %+v, want event 21", f)
	}

	// from_seq within the stream: no gap.
	c3 := dial(t, g.wsURL(q("from_seq", "25")), nil)
	if f := read(t, c3, 30*time.Second); f.Type != "event" || f.Seq != 25 {
		t.Fatalf("from_seq 25: first frame %+v", f)
	}
	// from_seq after the end: live at once, later events only.
	c4 := dial(t, g.wsURL(q("from_seq", "31")), nil)
	if f := read(t, c4, 30*time.Second); f.Type != "live" || f.Seq != 30 {
		t.Fatalf("from_seq 31: first frame %+v, want live 30", f)
	}
	ev := mkEvent(node, "start", nil)
	seq := publish(t, js, ev)
	if f := read(t, c4, 30*time.Second); f.Type != "event" || f.Seq != seq {
		t.Fatalf("from_seq 31: then %+v, want event %d", f, seq)
	}
}

// TestResumeAcrossRestart: a client that reconnects to a restarted gateway
// with from_seq=last+1 gets exactly what it missed.
func TestResumeAcrossRestart(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "RESTART"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	var pubs []published
	pub := func(n int) {
		for i := 0; i < n; i++ {
			e := teamEvent(len(pubs))
			ev := mkEvent(node, e.action, e.attrs)
			pubs = append(pubs, published{publish(t, js, ev), ev})
		}
	}
	pub(5)
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	c := dial(t, g.wsURL(q("filter", "label=team=a")), nil)
	if f := read(t, c, 30*time.Second); f.Type != "live" || f.Seq != 5 {
		t.Fatalf("first frame %+v, want live 5", f)
	}
	pub(20)
	w := want(t, pubs, 6, "label=team=a")
	var last uint64
	for len(w) > 0 && last < w[len(w)-1] {
		f := read(t, c, 30*time.Second)
		if f.Type == "event" {
			last = f.Seq
		}
	}
	g.stop(t)
	// The client got a 1001 close.
	for {
		_, err := tryRead(c, 30*time.Second)
		if err != nil {
			if !isClose(err, 1001) {
				t.Fatalf("after shutdown: %v, want close 1001", err)
			}
			break
		}
	}
	pub(20) // missed while the gateway is down
	g2 := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	c2 := dial(t, g2.wsURL(q("filter", "label=team=a", "from_seq", strconv.FormatUint(last+1, 10))), nil)
	col := collect(c2)
	testkit.Eventually(t, 30*time.Second, func() error {
		fs, err := col.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(fs, want(t, pubs, last+1, "label=team=a"))
	})
	pub(10) // and live after the replay
	testkit.Eventually(t, 30*time.Second, func() error {
		fs, err := col.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(fs, want(t, pubs, last+1, "label=team=a"))
	})
}

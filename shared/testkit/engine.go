package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"
	timetypes "github.com/docker/docker/api/types/time"
)

// FakeEngine is a stand-in Docker engine: it serves the part of the Engine
// API the publisher uses (/_ping, /version, /info, streaming /events with
// since, until and filters, /containers/json, /containers/{id}/json), so a
// test can generate thousands of events per second, which the real engine
// cannot, and break the engine on demand (cut its event streams, restart it
// with an empty memory, step its clock, fail or delay the requests for one
// path).
//
// It behaves like the real engine where the publisher depends on it: it
// remembers only its last Memory events (256 by default) for since/until
// queries, since and until are inclusive, until in the past ends the
// stream at once and in the future when the engine's clock passes it, and
// a subscriber that does not take an event within 100 ms misses it
// silently (counted in Dropped), as Docker's pubsub does, and a since
// after until is refused with 400.
type FakeEngine struct {
	// Host is the DOCKER_HOST value that points at the engine.
	Host string
	// Name is what /info reports as the engine's name.
	Name string

	srv    *httptest.Server
	offset atomic.Int64 // clock offset from time.Now, ns
	down   atomic.Bool
	held   atomic.Int64 // requests held by Hold now

	mu         sync.Mutex
	memory     int
	block      bool
	remembered []events.Message // the last `memory` events
	history    []events.Message // every event ever emitted, in order
	subs       map[*engineSub]struct{}
	containers []container.Summary
	inspect    map[string]container.InspectResponse
	dropped    int
	lastNano   int64
	streams    int                      // /events requests served
	failNext   map[string]int           // path -> requests still to fail
	delays     map[string]time.Duration // path -> how long to hold each request
	holds      map[string]chan struct{} // path -> closed when its requests may go on
}

type engineSub struct {
	ch     chan events.Message
	until  int64 // 0: follow
	match  func(*events.Message) bool
	cancel context.CancelFunc
}

// FakeEngineOptions configure StartFakeEngine; zero values take defaults.
type FakeEngineOptions struct {
	Name   string // default "fake-engine"
	Memory int    // events remembered (default 256)
	// Block makes Emit wait for a subscriber that does not take an event
	// instead of dropping it after 100 ms (the real engine drops): for a
	// program that measures throughput on a busy machine.
	Block bool
}

// StartFakeEngine serves a stand-in engine on a free loopback port until
// the test ends.
func StartFakeEngine(t testing.TB, o FakeEngineOptions) *FakeEngine {
	t.Helper()
	e := NewFakeEngine(o)
	t.Cleanup(e.Close)
	return e
}

// NewFakeEngine serves a stand-in engine on a free loopback port until
// Close (for programs such as the scale demonstration; tests use
// StartFakeEngine).
func NewFakeEngine(o FakeEngineOptions) *FakeEngine {
	if o.Name == "" {
		o.Name = "fake-engine"
	}
	if o.Memory <= 0 {
		o.Memory = 256
	}
	e := &FakeEngine{Name: o.Name, memory: o.Memory, block: o.Block, subs: map[*engineSub]struct{}{}, inspect: map[string]container.InspectResponse{},
		failNext: map[string]int{}, delays: map[string]time.Duration{}, holds: map[string]chan struct{}{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	e.Host = "tcp://" + e.srv.Listener.Addr().String()
	return e
}

// Close stops the engine: its event streams end and it stops listening.
func (e *FakeEngine) Close() {
	e.CutStreams()
	e.srv.CloseClientConnections()
	e.srv.Close()
}

// Now is the engine's clock: the host's clock plus the offset of StepClock.
func (e *FakeEngine) Now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// StepClock moves the engine's clock by d (negative: NTP stepping it back).
func (e *FakeEngine) StepClock(d time.Duration) { e.offset.Add(int64(d)) }

// Emit stamps m with the engine's clock (unless it has a TimeNano; a time
// at or before the previous event's is moved 1 ns after it unless the clock
// was stepped back) and delivers it, in order, to every subscriber.
func (e *FakeEngine) Emit(m events.Message) events.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.emitLocked(m)
}

func (e *FakeEngine) emitLocked(m events.Message) events.Message {
	if m.TimeNano == 0 {
		m.TimeNano = e.Now().UnixNano()
		if m.TimeNano <= e.lastNano && e.offset.Load() >= 0 {
			m.TimeNano = e.lastNano + 1
		}
	}
	e.lastNano = max(e.lastNano, m.TimeNano)
	m.Time = m.TimeNano / int64(time.Second)
	if m.Scope == "" {
		m.Scope = "local"
	}
	e.history = append(e.history, m)
	e.remembered = append(e.remembered, m)
	if len(e.remembered) > e.memory {
		e.remembered = slices.Delete(e.remembered, 0, len(e.remembered)-e.memory)
	}
	for s := range e.subs {
		if s.until > 0 && m.TimeNano > s.until || !s.match(&m) {
			continue
		}
		select {
		case s.ch <- m:
			continue
		default:
		}
		if e.block {
			select {
			case s.ch <- m:
			case <-time.After(time.Minute): // a subscriber gone for good
				e.dropped++
			}
			continue
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case s.ch <- m:
		case <-t.C:
			e.dropped++
		}
		t.Stop()
	}
	return m
}

// ComposeAttributes returns (a fresh copy of) the attributes of a
// docker-compose service container's start event as the engine sends
// them: a payload of about 780 bytes, the size benchmarks use.
func ComposeAttributes() map[string]string {
	return map[string]string{
		"name": "shop-api-1", "image": "registry.example.com/shop/api:1.4.2",
		"com.docker.compose.project": "shop", "com.docker.compose.service": "api",
		"com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
		"com.docker.compose.version":              "2.24.6",
		"com.docker.compose.config-hash":          "9f1c2e7d4b3a5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f7",
		"com.docker.compose.project.config_files": "/srv/shop/docker-compose.yml",
		"com.docker.compose.project.working_dir":  "/srv/shop",
	}
}

// Container returns a container event (create, start, die, …) of the
// container id called name, with the attributes Docker gives such events.
func Container(action, id, name string, attrs map[string]string) events.Message {
	a := map[string]string{"name": name, "image": "fake:latest"}
	for k, v := range attrs {
		a[k] = v
	}
	return events.Message{
		Status: action, ID: id, From: a["image"],
		Type: events.ContainerEventType, Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: a},
	}
}

// Burst emits n events made by gen(i), at most perSecond of them each
// second (0: as fast as possible), and returns when all are emitted or ctx
// ends.
func (e *FakeEngine) Burst(ctx context.Context, n, perSecond int, gen func(i int) events.Message) error {
	const tick = 10 * time.Millisecond
	start := time.Now()
	for i := 0; i < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if perSecond > 0 {
			due := int(time.Since(start).Seconds()*float64(perSecond)) + 1
			if i >= due {
				t := time.NewTimer(tick)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				continue
			}
			e.mu.Lock()
			for ; i < min(due, n); i++ {
				e.emitLocked(gen(i))
			}
			e.mu.Unlock()
			continue
		}
		e.Emit(gen(i))
		i++
	}
	return nil
}

// History returns every event emitted, in order: the truth a test compares
// the stream with.
func (e *FakeEngine) History() []events.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.history)
}

// Dropped is the number of events subscribers missed because they did not
// read within 100 ms.
func (e *FakeEngine) Dropped() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

// Streams is the number of /events requests served so far.
func (e *FakeEngine) Streams() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.streams
}

// Subscribers is the number of open /events streams.
func (e *FakeEngine) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// CutStreams ends every open /events stream, as a daemon restart does.
func (e *FakeEngine) CutStreams() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		s.cancel()
		delete(e.subs, s)
	}
}

// Restart ends every stream and forgets the remembered events, like a
// daemon restart; the engine answers again at once.
func (e *FakeEngine) Restart() {
	e.CutStreams()
	e.mu.Lock()
	e.remembered = nil
	e.mu.Unlock()
}

// SetDown makes every request fail (the connection is closed unanswered)
// while down is true, and ends the open streams.
func (e *FakeEngine) SetDown(down bool) {
	e.down.Store(down)
	if down {
		e.CutStreams()
	}
}

// SetContainers sets what /containers/json lists.
func (e *FakeEngine) SetContainers(list []container.Summary) {
	e.mu.Lock()
	e.containers = slices.Clone(list)
	e.mu.Unlock()
}

// SetInspect sets what /containers/{id}/json answers for id.
func (e *FakeEngine) SetInspect(id string, c container.InspectResponse) {
	e.mu.Lock()
	e.inspect[id] = c
	e.mu.Unlock()
}

// FailNext makes the next n requests for path (without the /vN.NN
// prefix: "/containers/json", "/info", "/_ping", "/events", …) fail with
// HTTP 500 in Docker's error shape, as an engine does while it restarts.
func (e *FakeEngine) FailNext(path string, n int) {
	e.mu.Lock()
	e.failNext[path] = n
	e.mu.Unlock()
}

// Delay holds every request for path d before answering it (0: no delay),
// as a busy engine does; the request's own context still ends it.
func (e *FakeEngine) Delay(path string, d time.Duration) {
	e.mu.Lock()
	e.delays[path] = d
	e.mu.Unlock()
}

// Hold holds every request for path (as Delay does) until release is
// called, or the request's own context ends; a deterministic slow engine.
func (e *FakeEngine) Hold(path string) (release func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	e.holds[path] = ch
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			if e.holds[path] == ch {
				delete(e.holds, path)
			}
			e.mu.Unlock()
			close(ch)
		})
	}
}

// Held is the number of requests Hold is holding now.
func (e *FakeEngine) Held() int { return int(e.held.Load()) }

// fault applies FailNext, Delay and Hold to a request for path; it reports
// whether the request was answered (failed) already.
func (e *FakeEngine) fault(w http.ResponseWriter, r *http.Request, path string) bool {
	e.mu.Lock()
	fail := e.failNext[path] > 0
	if fail {
		e.failNext[path]--
	}
	d := e.delays[path]
	hold := e.holds[path]
	e.mu.Unlock()
	if hold != nil {
		e.held.Add(1)
		select {
		case <-hold:
			e.held.Add(-1)
		case <-r.Context().Done():
			e.held.Add(-1)
			return true
		}
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if fail {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "injected failure of " + path})
	}
	return fail
}

var apiPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// FakeAPIVersion is the API version the fake engine reports.
const FakeAPIVersion = "1.41"

func (e *FakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	if e.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	path := r.URL.Path
	if loc := apiPrefix.FindStringIndex(path); loc != nil {
		path = "/" + path[loc[1]:]
	}
	if e.fault(w, r, path) {
		return
	}
	w.Header().Set("Api-Version", FakeAPIVersion)
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/20.10.24-fake (linux)")
	switch {
	case path == "/_ping":
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write([]byte("OK"))
	case path == "/version":
		writeJSON(w, types.Version{Version: "20.10.24-fake", APIVersion: FakeAPIVersion, MinAPIVersion: "1.12", Os: "linux", Arch: "amd64"})
	case path == "/info":
		writeJSON(w, system.Info{ID: "FAKE", Name: e.Name, ServerVersion: "20.10.24-fake", SystemTime: e.Now().Format(time.RFC3339Nano), OSType: "linux"})
	case path == "/events":
		e.events(w, r)
	case path == "/containers/json":
		e.mu.Lock()
		list := slices.Clone(e.containers)
		e.mu.Unlock()
		if list == nil {
			list = []container.Summary{}
		}
		writeJSON(w, list)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		e.mu.Lock()
		c, ok := e.inspect[id]
		e.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			writeJSON(w, map[string]string{"message": "No such container: " + id})
			return
		}
		writeJSON(w, c)
	default:
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"message": "page not found"})
	}
}

func write(w http.ResponseWriter, b []byte) error {
	_, err := w.Write(b)
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func parseStamp(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	sec, nsec, err := timetypes.ParseTimestamps(s, 0)
	if err != nil {
		return 0, err
	}
	return sec*int64(time.Second) + nsec, nil
}

func (e *FakeEngine) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := parseStamp(q.Get("since"))
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	until, err := parseStamp(q.Get("until"))
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	if since > 0 && until > 0 && since > until { // the real engine refuses it too
		http.Error(w, fmt.Sprintf(`{"message":"since time (%s) cannot be after until time (%s)"}`, q.Get("since"), q.Get("until")), http.StatusBadRequest)
		return
	}
	args, err := filters.FromJSON(q.Get("filters"))
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	match := func(m *events.Message) bool { return fakeMatch(args, m) }
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub := &engineSub{ch: make(chan events.Message, 1024), until: until, match: match, cancel: cancel}

	e.mu.Lock()
	e.streams++
	var buffered []events.Message
	if q.Has("since") || q.Has("until") {
		for _, m := range e.remembered {
			if (since == 0 || m.TimeNano >= since) && (until == 0 || m.TimeNano <= until) && match(&m) {
				buffered = append(buffered, m)
			}
		}
	}
	now := e.Now().UnixNano()
	follow := until == 0 || until > now
	if follow {
		e.subs[sub] = struct{}{}
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.subs, sub)
		e.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	var line []byte
	for _, m := range buffered {
		if line = appendMessage(line[:0], &m); write(w, line) != nil {
			return
		}
	}
	if fl != nil {
		fl.Flush()
	}
	if !follow {
		return
	}
	var deadline <-chan time.Time
	if until > 0 {
		t := time.NewTimer(time.Duration(until - now))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case m := <-sub.ch:
			if line = appendMessage(line[:0], &m); write(w, line) != nil {
				return
			}
			if len(sub.ch) == 0 && fl != nil {
				fl.Flush()
			}
		}
	}
}

// fakeMatch applies the filter keys the publisher sends: type, event,
// label, container (id or name prefix), image.
func fakeMatch(args filters.Args, m *events.Message) bool {
	if args.Len() == 0 {
		return true
	}
	if args.Contains("type") && !args.ExactMatch("type", string(m.Type)) {
		return false
	}
	if args.Contains("event") {
		full := string(m.Action)
		short, _, _ := strings.Cut(full, ":")
		if !args.ExactMatch("event", full) && !args.ExactMatch("event", strings.TrimSpace(short)) {
			return false
		}
	}
	if args.Contains("label") && !args.MatchKVList("label", m.Actor.Attributes) {
		return false
	}
	if args.Contains("container") {
		ok := false
		for _, v := range args.Get("container") {
			if strings.HasPrefix(m.Actor.ID, v) || strings.HasPrefix(m.Actor.Attributes["name"], v) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if args.Contains("image") && !args.ExactMatch("image", m.Actor.Attributes["image"]) {
		return false
	}
	return true
}

// FakeEngineAddr is the engine's host:port.
func (e *FakeEngine) Addr() net.Addr { return e.srv.Listener.Addr() }

package dockerapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

func serve(t *testing.T, cfg Config, src Source) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(testkit.Logger(t), cfg, src))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestPingVersionNotFound(t *testing.T) {
	t.Parallel()
	srv := serve(t, Config{Version: "1.2.3"}, newMemSource())
	for _, path := range []string{"/_ping", "/v1.41/_ping", "/v1.24/_ping"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			res, body := do(t, method, srv.URL+path, nil)
			h := res.Header
			if res.StatusCode != 200 || h.Get("Api-Version") != "1.41" || h.Get("Ostype") != "linux" ||
				h.Get("Docker-Experimental") != "false" || h.Get("Cache-Control") != "no-cache, no-store, must-revalidate" ||
				h.Get("Pragma") != "no-cache" || h.Get("Content-Type") != "text/plain; charset=utf-8" ||
				!strings.HasPrefix(h.Get("Server"), "dockcast/1.2.3 ") {
				t.Errorf("%s %s: %s %v", method, path, res.Status, h)
			}
			if want := map[string]string{"GET": "OK", "HEAD": ""}[method]; body != want {
				t.Errorf("%s %s: body %q", method, path, body)
			}
		}
	}
	res, body := do(t, "GET", srv.URL+"/v1.41/version", nil)
	var v types.Version
	if err := json.Unmarshal([]byte(body), &v); err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/version: %s %s %v", res.Status, body, err)
	}
	if v.APIVersion != "1.41" || v.MinAPIVersion != "1.12" || v.Version != "1.2.3" || v.Os != "linux" || v.Platform.Name != "dockcast" || len(v.Components) != 1 {
		t.Errorf("/version: %+v", v)
	}
	// Docker's answers for everything else, and for versions out of range.
	cases := []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/containers/json", 404, "page not found"},
		{"GET", "/v1.41/containers/json", 404, "page not found"},
		{"GET", "/v1.41/info", 404, "page not found"},
		{"GET", "/v1.41/nope", 404, "page not found"},
		{"GET", "/_ping/", 404, "page not found"},
		{"POST", "/_ping", 404, "page not found"},
		{"POST", "/v1.41/events", 404, "page not found"},
		{"HEAD", "/version", 404, ""},
		{"GET", "/v1.99/events", 400, "client version 1.99 is too new. Maximum supported API version is 1.41"},
		{"GET", "/v1.5/_ping", 400, "client version 1.5 is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version"},
		{"GET", "/v1.41/events?since=abc", 400, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{"GET", "/events?since=5&until=3", 400, "`since` time (5) cannot be after `until` time (3)"},
		{"GET", "/events?filters=%7Bbad", 400, "invalid filter"},
		{"GET", "/events?since=%zz", 400, `invalid URL escape "%zz"`},
	}
	for _, c := range cases {
		res, body := do(t, c.method, srv.URL+c.path, nil)
		if res.StatusCode != c.status || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %s %q", c.method, c.path, res.Status, res.Header.Get("Content-Type"))
			continue
		}
		if c.method == "HEAD" {
			continue
		}
		want, _ := json.Marshal(types.ErrorResponse{Message: c.message})
		if body != string(want)+"\n" {
			t.Errorf("%s %s: body %s, want %s", c.method, c.path, body, want)
		}
	}
}

func TestIsAPIPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/_ping": true, "/version": true, "/events": true, "/v1.41/events": true, "/v1.41": true,
		"/containers/json": true, "/info": true, "/v1.41/anything/else": true, "/volumes": true,
		"/": false, "/ws": false, "/sse": false, "/healthz": false, "/metrics": false, "/app.js": false,
		"/v/events": false, "/vx.1/events": false, "/versions": false, "/eventsx": false,
	} {
		if got := IsAPIPath(path); got != want {
			t.Errorf("IsAPIPath(%q) = %v", path, got)
		}
	}
}

func msg(typ, action, id string, attrs map[string]string, timeNano int64) event.Event {
	return event.FromDocker("web-1", events.Message{Type: events.Type(typ), Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: attrs}, Scope: "local", TimeNano: timeNano})
}

func lines(t *testing.T, body string) []string {
	t.Helper()
	if body == "" {
		return nil
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("stream does not end with a newline: %q", body)
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}

func line(t *testing.T, e event.Event) string {
	t.Helper()
	b, err := AppendLine(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func TestEventsHistory(t *testing.T) {
	t.Parallel()
	base := time.Unix(1796121000, 0).UnixNano()
	start := msg("container", "start", "c1", map[string]string{"name": "api", "env": "prod"}, base)
	state := event.New("web-1", "container", event.ActionState, "running", "c1", map[string]string{"name": "api"}, time.Unix(0, base+1))
	check := msg("container", "exec_die", "c1", map[string]string{"name": "api", event.AttrHealthcheck: "true", event.AttrCommand: "/probe health"}, base+2)
	other := msg("container", "die", "c2", map[string]string{"name": "db", "env": "dev"}, base+3)
	other.Node = "web-2"
	gap := event.New("web-2", event.TypeDockcast, event.ActionGap, "", "", map[string]string{"reason": "first_start"}, time.Unix(0, base+4))
	late := msg("container", "stop", "c1", map[string]string{"name": "api"}, base+int64(time.Hour))
	src := newMemSource(start, state, check, other, gap, late)
	srv := serve(t, Config{Now: func() time.Time { return time.Unix(1796125000, 0) }}, src)
	get := func(q url.Values) []string {
		t.Helper()
		res, body := do(t, "GET", srv.URL+"/v1.41/events?"+q.Encode(), nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%v: %s %s", q, res.Status, body)
		}
		return lines(t, body)
	}
	window := url.Values{"since": {"1796121000"}, "until": {"1796121001"}}
	if got, want := get(window), []string{line(t, start), line(t, check), line(t, other)}; !slices.Equal(got, want) {
		t.Errorf("window:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	with := func(v url.Values, filters string) url.Values {
		out := url.Values{"filters": {filters}}
		for k, vs := range v {
			out[k] = vs
		}
		return out
	}
	if got, want := get(with(window, `{"event":{"state":true}}`)), []string{line(t, state)}; !slices.Equal(got, want) {
		t.Errorf("event=state: %q", got)
	}
	if got, want := get(with(window, `{"type":{"dockcast":true}}`)), []string{line(t, gap)}; !slices.Equal(got, want) {
		t.Errorf("type=dockcast: %q", got)
	}
	if got, want := get(with(window, `{"healthcheck":{"false":true},"node":{"web-1":true}}`)), []string{line(t, start)}; !slices.Equal(got, want) {
		t.Errorf("healthcheck=false node=web-1: %q", got)
	}
	if got, want := get(with(window, `{"label":["env=prod"]}`)), []string{line(t, start)}; !slices.Equal(got, want) {
		t.Errorf("legacy label filter: %q", got)
	}
	// until without since: the engines' memories, 256 events each.
	if got, want := get(url.Values{"until": {"1796124900"}}), []string{line(t, start), line(t, check), line(t, other), line(t, late)}; !slices.Equal(got, want) {
		t.Errorf("until only: %q", got)
	}
	if q := src.query(-1); q.Tail != EngineMemory || q.Follow {
		t.Errorf("until only: query %+v", q)
	}
}

func TestEventsTailPerNode(t *testing.T) {
	t.Parallel()
	var evs []event.Event
	base := time.Unix(1796121000, 0).UnixNano()
	for i := range EngineMemory + 10 {
		for _, node := range []string{"web-1", "web-2"} {
			e := msg("volume", "create", "v", map[string]string{"driver": "local"}, base+int64(i))
			e.Node = node
			evs = append(evs, e)
		}
	}
	srv := serve(t, Config{Now: func() time.Time { return time.Unix(1796125000, 0) }}, newMemSource(evs...))
	_, body := do(t, "GET", srv.URL+"/events?until=1796124000", nil)
	got := lines(t, body)
	if len(got) != 2*EngineMemory || got[0] != line(t, evs[20]) || got[len(got)-1] != line(t, evs[len(evs)-1]) {
		t.Errorf("%d lines from %s to %s", len(got), got[0], got[len(got)-1])
	}
}

func TestEventsFollow(t *testing.T) {
	t.Parallel()
	now := time.Now()
	first := msg("container", "start", "c1", map[string]string{"name": "api"}, now.Add(-time.Minute).UnixNano())
	src := newMemSource(first)
	srv := serve(t, Config{}, src)
	res, err := http.Get(srv.URL + "/events?since=" + url.QueryEscape(event.SinceArg(now.Add(-time.Hour).UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	read := func() string {
		t.Helper()
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (%q)", err, s)
		}
		return strings.TrimSuffix(s, "\n")
	}
	if got := read(); got != line(t, first) {
		t.Fatalf("history: %s", got)
	}
	// New events reach the open stream, each batch flushed at once.
	for i := range 3 {
		e := msg("container", "die", "c1", map[string]string{"name": "api", "n": string(rune('a' + i))}, time.Now().UnixNano())
		src.add(e)
		if got := read(); got != line(t, e) {
			t.Fatalf("live %d: %s", i, got)
		}
	}
	// An event the filter-less query does not want is not sent; the next is.
	skip := event.New("web-1", event.TypeDockcast, event.ActionGap, "", "", nil, time.Now())
	e := msg("container", "destroy", "c1", map[string]string{"name": "api"}, time.Now().UnixNano())
	src.add(skip, e)
	if got := read(); got != line(t, e) {
		t.Fatalf("after a synthetic event: %s", got)
	}
}

func TestEventsUntilAhead(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	srv := serve(t, Config{}, src)
	until := time.Now().Add(300 * time.Millisecond)
	res, err := http.Get(srv.URL + "/events?until=" + url.QueryEscape(event.SinceArg(until.UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// The stream is open (follow) and ends by itself once until has passed,
	// cleanly: the chunked body ends with its terminator, not an error.
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(res.Body); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
		if time.Now().Before(until) {
			t.Fatal("stream ended before until")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end at until")
	}
	if q := src.query(0); !q.Follow || q.Tail != EngineMemory {
		t.Errorf("query %+v", q)
	}
}

func TestEventsAdmitAndOpenErrors(t *testing.T) {
	t.Parallel()
	base := time.Unix(1796121000, 0).UnixNano()
	a := msg("container", "start", "c1", map[string]string{"name": "api"}, base)
	b := msg("container", "start", "c2", map[string]string{"name": "db"}, base+1)
	b.Node = "web-2"
	src := newMemSource(a, b)
	srv := serve(t, Config{Admit: func(r *http.Request, q *Query) error {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			return &Error{Status: http.StatusUnauthorized, Message: "a valid token is required"}
		}
		f, err := ParseFilters(`{"node":{"web-2":true}}`) // this token reads web-2 only
		if err != nil {
			return err
		}
		q.Filter = f
		return nil
	}}, src)
	res, body := do(t, "GET", srv.URL+"/events?since=0&until=1796121001", nil)
	if res.StatusCode != 401 || body != `{"message":"a valid token is required"}`+"\n" {
		t.Errorf("no token: %s %s", res.Status, body)
	}
	res, body = do(t, "GET", srv.URL+"/events?since=0&until=1796121001", http.Header{"Authorization": {"Bearer s3cret"}})
	if got := lines(t, body); res.StatusCode != 200 || !slices.Equal(got, []string{line(t, b)}) {
		t.Errorf("narrowed: %s %q", res.Status, got)
	}
	src.failOpen(errors.New("nats: connection closed (nats://secret-host:4222)"))
	res, body = do(t, "GET", srv.URL+"/events?since=0&until=1796121001", http.Header{"Authorization": {"Bearer s3cret"}})
	if res.StatusCode != 503 || strings.Contains(body, "secret-host") || !strings.Contains(body, `"message"`) {
		t.Errorf("source down: %s %s", res.Status, body)
	}
	src.failOpen(&Error{Status: http.StatusForbidden, Message: "this token may not read node web-1"})
	res, body = do(t, "GET", srv.URL+"/events", http.Header{"Authorization": {"Bearer s3cret"}})
	if res.StatusCode != 403 || body != `{"message":"this token may not read node web-1"}`+"\n" {
		t.Errorf("source refusal: %s %s", res.Status, body)
	}
}

package dockerapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"

	"github.com/dockcast/dockcast/shared/event"
)

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	good := map[string]time.Time{
		"":                     {},
		"1796118341":           time.Unix(1796118341, 0),
		"1796032800.000000000": time.Unix(1796032800, 0),
		"1796036400.500000000": time.Unix(1796036400, 500000000),
		"1764097465.25":        time.Unix(1764097465, 250000000), // a fraction is scaled, as the engine does
		"1764097465.217300886": time.Unix(1764097465, 217300886),
		"0":                    time.Unix(0, 0),
		"-5":                   time.Unix(-5, 0),
	}
	for in, want := range good {
		got, err := ParseTimestamp(in)
		if err != nil || !got.Equal(want) || (want.IsZero() != got.IsZero()) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// The engine's own messages (Docker 20.10 answers them with status 500).
	bad := map[string]string{
		"abc":                  `strconv.ParseInt: parsing "abc": invalid syntax`,
		"0.5x":                 `strconv.ParseInt: parsing "5x": invalid syntax`,
		"2026-11-30T10:00:00":  `strconv.ParseInt: parsing "2026-11-30T10:00:00": invalid syntax`,
		"1h":                   `strconv.ParseInt: parsing "1h": invalid syntax`,
		"1.":                   `strconv.ParseInt: parsing "": invalid syntax`,
		"99999999999":          `timestamp "99999999999" is out of range`,
		"99999999999999999999": `strconv.ParseInt: parsing "99999999999999999999": value out of range`,
	}
	for in, want := range bad {
		if _, err := ParseTimestamp(in); err == nil || err.Error() != want {
			t.Errorf("ParseTimestamp(%q): %v, want %q", in, err, want)
		}
	}
}

func TestParseFilters(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		``:   ``,
		`{}`: ``,
		// What the CLI sends for --filter type=container --filter label=a=b --filter event=start.
		`{"event":{"start":true},"label":{"a=b":true},"type":{"container":true}}`: `event=start,label=a=b,type=container`,
		`{"type":["container","image"]}`:                                          `type=container,type=image`, // the legacy list form
		`{"node":{"web-1":true},"healthcheck":{"false":true}}`:                    `healthcheck=false,node=web-1`,
		`{"daemon":{"abc":true},"service":{"s":true}}`:                            `daemon=abc,service=s`,
		`{"type":{}}`: ``,
	}
	for in, want := range cases {
		f, err := ParseFilters(in)
		if err != nil || f.String() != want {
			t.Errorf("ParseFilters(%s) = %q, %v; want %q", in, f.String(), err, want)
		}
	}
	bad := map[string]string{
		`{bad`:                          `invalid filter`,
		`[1]`:                           `invalid filter`,
		`{"type":"container"}`:          `invalid filter`,
		`{"colour":{"red":true}}`:       `invalid filter 'colour' (accepted: `,
		`{"type=container":{"x":true}}`: `invalid filter 'type=container'`,
		`{"healthcheck":{"yes":true}}`:  `invalid filter: bad filter "healthcheck=yes": healthcheck is true or false`,
		`{"type":{"container":false}}`:  `invalid filter 'type=container': a value must be true`,
		`{"type":{"":true}}`:            `invalid filter: bad filter "type=": empty value`,
		`{"label":{"=x":true}}`:         `invalid filter: bad filter "label==x": empty label key`,
	}
	for in, want := range bad {
		if _, err := ParseFilters(in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseFilters(%s): %v, want %q", in, err, want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	t.Parallel()
	now := time.Unix(1796121941, 0)
	cases := []struct {
		q      string
		since  time.Time
		until  time.Time
		follow bool
		tail   int
	}{
		{"", time.Time{}, time.Time{}, true, 0},                              // docker events
		{"since=1796118341", time.Unix(1796118341, 0), time.Time{}, true, 0}, // --since 1h
		{"since=1796118341&until=1796121341", time.Unix(1796118341, 0), time.Unix(1796121341, 0), false, 0},
		{"until=1796121341", time.Time{}, time.Unix(1796121341, 0), false, EngineMemory}, // --until 10m: the engine's memory
		{"until=1796122000", time.Time{}, time.Unix(1796122000, 0), true, EngineMemory},  // until ahead: memory, then live until then
		{"since=1796121000&until=1796125000", time.Unix(1796121000, 0), time.Unix(1796125000, 0), true, 0},
		{"since=5&until=5", time.Unix(5, 0), time.Unix(5, 0), false, 0},
		{"unknown=1&since=5", time.Unix(5, 0), time.Time{}, true, 0}, // the engine ignores other arguments
	}
	for _, c := range cases {
		form, _ := url.ParseQuery(c.q)
		got, err := ParseQuery(form, now)
		if err != nil || !got.Since.Equal(c.since) || !got.Until.Equal(c.until) || got.Follow != c.follow || got.Tail != c.tail {
			t.Errorf("ParseQuery(%s) = %+v, %v", c.q, got, err)
		}
	}
	bad := map[string]string{
		"since=5&until=3": "`since` time (5) cannot be after `until` time (3)",
		"since=abc":       `strconv.ParseInt: parsing "abc": invalid syntax`,
		"until=x":         `strconv.ParseInt: parsing "x": invalid syntax`,
		"filters=%7Bbad":  "invalid filter",
		"filters=%7B%22colour%22%3A%7B%22red%22%3Atrue%7D%7D": "invalid filter 'colour'",
	}
	for q, want := range bad {
		form, _ := url.ParseQuery(q)
		_, err := ParseQuery(form, now)
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.HasPrefix(apiErr.Message, want) {
			t.Errorf("ParseQuery(%s): %v, want 400 %q", q, err, want)
		}
	}
}

func TestQueryMatch(t *testing.T) {
	t.Parallel()
	at := time.Unix(1796121000, 0)
	start := event.New("web-1", "container", "start", "", "c1", map[string]string{"name": "api"}, at)
	state := event.New("web-1", "container", event.ActionState, "running", "c1", map[string]string{"name": "api"}, at)
	gap := event.New("web-1", event.TypeDockcast, event.ActionGap, "", "", map[string]string{"reason": "first_start"}, at)
	check := event.New("web-1", "container", "exec_die", "", "c1", map[string]string{"name": "api", event.AttrHealthcheck: "true"}, at)
	cases := []struct {
		filters string
		since   string
		until   string
		e       event.Event
		want    bool
	}{
		{``, "", "", start, true},
		{``, "", "", state, false}, // synthetic events only when asked for
		{``, "", "", gap, false},
		{`{"event":{"state":true}}`, "", "", state, true},
		{`{"event":{"state: running":true}}`, "", "", state, true},
		{`{"event":{"state: exited":true}}`, "", "", state, false},
		{`{"type":{"container":true}}`, "", "", state, false},
		{`{"type":{"dockcast":true}}`, "", "", gap, true},
		{`{"type":{"dockcast":true,"container":true}}`, "", "", start, true},
		{`{"event":{"gap":true}}`, "", "", gap, false}, // gaps need type=dockcast
		{`{"healthcheck":{"false":true}}`, "", "", check, false},
		{`{"healthcheck":{"true":true}}`, "", "", check, true},
		{``, "1796121000", "1796121000", start, true}, // since and until are inclusive
		{``, "1796121000.000000001", "", start, false},
		{``, "", "1796120999.999999999", start, false},
	}
	for _, c := range cases {
		form := url.Values{"filters": {c.filters}, "since": {c.since}, "until": {c.until}}
		q, err := ParseQuery(form, at)
		if err != nil {
			t.Fatalf("%v: %v", form, err)
		}
		if got := q.Match(&c.e); got != c.want {
			t.Errorf("%s since=%s until=%s on %s %s: got %v", c.filters, c.since, c.until, c.e.Type, c.e.DockerAction(), got)
		}
	}
}

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"type":{"container":true}}`, `{"type":["container","image"]}`,
		`{"label":{"env=prod":true,"tier":true}}`, `{"healthcheck":{"false":true}}`,
		`{"colour":{"red":true}}`, `{bad`, `[1]`, `{"type=container":{"x":true}}`,
		`{"event":{"health_status":true,"st":true}}`, `{"node":{"web.1":false}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilters(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// What was accepted is what Docker's own parser reads, key for key.
		args, err := filters.FromJSON(s)
		if err != nil {
			t.Fatalf("accepted %q, which Docker refuses: %v", s, err)
		}
		for _, term := range flt.Terms() {
			k, v, _ := strings.Cut(term, "=")
			if !Keys[k] || !args.ExactMatch(k, v) {
				t.Fatalf("%q gave term %q that Docker's args %v do not hold", s, term, args)
			}
		}
		for _, k := range args.Keys() {
			for _, v := range args.Get(k) {
				if !slices.Contains(flt.Values(k), v) {
					t.Fatalf("%q: Docker's %s=%s is missing from %q", s, k, v, flt.Terms())
				}
			}
		}
		again, err := ParseFilters(mustJSON(t, args))
		if err != nil || again.String() != flt.String() {
			t.Fatalf("%q does not round trip: %q, %v", s, again.String(), err)
		}
	})
}

func mustJSON(t *testing.T, args filters.Args) string {
	s, err := filters.ToJSON(args)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func FuzzParseQuery(f *testing.F) {
	f.Add("1796118341", "1796121341", "")
	f.Add("1796032800.000000000", "1796036400.500000000", `{"type":{"container":true}}`)
	f.Add("", "1796121341", "")
	f.Add("5", "3", "")
	f.Add("0.5x", "", "")
	f.Add("1.1234567891", "-1.-5", "")
	f.Add("9223372036", "", "")
	f.Add("+1.+1", "", `{"type":["image"]}`)
	now := time.Unix(1796121941, 0)
	f.Fuzz(func(t *testing.T, since, until, flt string) {
		q, err := ParseQuery(url.Values{"since": {since}, "until": {until}, "filters": {flt}}, now)
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Message == "" {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if !q.Until.IsZero() && q.Until.Before(q.Since) {
			t.Fatalf("until %v before since %v accepted", q.Until, q.Since)
		}
		for _, tm := range []time.Time{q.Since, q.Until} {
			if !tm.IsZero() && time.Unix(0, tm.UnixNano()).Compare(tm) != 0 {
				t.Fatalf("%v does not fit in nanoseconds", tm)
			}
		}
		if q.Follow != (q.Until.IsZero() || !q.Until.Before(now)) {
			t.Fatalf("follow %v for until %v", q.Follow, q.Until)
		}
		if (q.Tail > 0) != (q.Since.IsZero() && !q.Until.IsZero()) {
			t.Fatalf("tail %d for since %v until %v", q.Tail, q.Since, q.Until)
		}
	})
}

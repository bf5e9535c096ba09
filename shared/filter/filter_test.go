package filter

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/event"
)

func ev(typ, action string, id string, attrs map[string]string) *event.Event {
	e := event.FromDocker("web-1", events.Message{Type: events.Type(typ), Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: attrs}, Scope: "local", TimeNano: 1})
	return &e
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	bad := map[string][]string{
		"no equals":   {"type"},
		"empty key":   {"=x"},
		"unknown key": {"colour=red"},
		"empty value": {"type="},
		"label key":   {"label==x"},
		"control":     {"label=a\x00"},
		"too long":    {"image=" + strings.Repeat("a", MaxValueLen+1)},
		"engine only": {"daemon=x"},
	}
	for name, terms := range bad {
		if _, err := Parse(terms, GatewayKeys); err == nil {
			t.Errorf("%s: Parse(%q) accepted", name, terms)
		}
	}
	many := make([]string, MaxTerms+1)
	for i := range many {
		many[i] = "type=x"
	}
	if _, err := Parse(many, GatewayKeys); err == nil {
		t.Error("too many terms accepted")
	}
	if _, err := Parse([]string{"daemon=x"}, EngineKeys); err != nil {
		t.Errorf("engine key refused: %v", err)
	}
	_, err := Parse([]string{"colour=red"}, GatewayKeys)
	if err == nil || !strings.Contains(err.Error(), `unknown key "colour"`) {
		t.Errorf("unclear error: %v", err)
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	f, err := ParseList(" type=container , label=env=prod", EngineKeys)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Terms(); !reflect.DeepEqual(got, []string{"label=env=prod", "type=container"}) {
		t.Fatalf("terms %q", got)
	}
	if f.Args().Get("label")[0] != "env=prod" {
		t.Fatalf("args %v", f.Args())
	}
	if f, err := ParseList("  ", EngineKeys); err != nil || !f.Empty() {
		t.Fatalf("blank list: %v %v", f, err)
	}
}

// matchCase: does the filter of terms match e?
type matchCase struct {
	terms []string
	e     *event.Event
	want  bool
}

func checkMatches(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		f, err := Parse(c.terms, GatewayKeys)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.terms, err)
		}
		if got := f.Match(c.e); got != c.want {
			t.Errorf("%q on %s %s %v: got %v want %v", c.terms, c.e.Type, c.e.DockerAction(), c.e.Actor.Attributes, got, c.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	start := ev("container", "start", "abc123", map[string]string{"name": "api", "image": "docker.io/library/alpine:3.20", "env": "prod", "tier": "web"})
	health := ev("container", "health_status: unhealthy", "abc123", map[string]string{"name": "api"})
	exec := ev("container", "exec_start: /probe fail", "abc123", map[string]string{"name": "api"})
	netc := ev("network", "connect", "net9", map[string]string{"name": "bridge", "container": "abc123"})
	state := ev("container", "state: running", "abc123", map[string]string{"name": "api"})
	img := ev("image", "pull", "sha256:1", map[string]string{"name": "alpine:3.20"})
	cases := []matchCase{
		{nil, start, true},
		{[]string{"type=container"}, start, true},
		{[]string{"type=image"}, start, false},
		{[]string{"type=image", "type=container"}, start, true},
		{[]string{"event=start"}, start, true},
		{[]string{"event=stop"}, start, false},
		{[]string{"event=health_status"}, health, true},
		{[]string{"event=health_status: unhealthy"}, health, true},
		{[]string{"event=health_status: healthy"}, health, false},
		{[]string{"event=exec_start"}, exec, true},
		{[]string{"event=exec_start"}, start, false},
		{[]string{"event=state"}, state, true}, // dockcast's state events, whatever the state
		{[]string{"event=state: running"}, state, true},
		{[]string{"event=state: exited"}, state, false},
		{[]string{"event=state"}, start, false},
		{[]string{"event=sta"}, state, false}, // no prefix matching without Docker's quirk
		{[]string{"event=state", "type=container"}, state, true},
		{[]string{"event=health_status", "event=st"}, start, true}, // Docker's prefix quirk
		{[]string{"container=abc"}, start, true},
		{[]string{"container=api"}, start, true},
		{[]string{"container=ap"}, start, true},
		{[]string{"container=xyz"}, start, false},
		{[]string{"container=xyz", "container=api"}, start, true},
		{[]string{"image=alpine"}, start, true},
		{[]string{"image=alpine:3.20"}, start, false}, // Docker compares the full reference or the familiar name
		{[]string{"image=docker.io/library/alpine:3.20"}, start, true},
		{[]string{"image=busybox"}, start, false},
		{[]string{"image=alpine"}, img, true},
		{[]string{"label=env"}, start, true},
		{[]string{"label=env=prod"}, start, true},
		{[]string{"label=env=dev"}, start, false},
		{[]string{"label=env=prod", "label=tier=web"}, start, true},
		{[]string{"label=env=prod", "label=tier=db"}, start, false},
		{[]string{"network=bridge"}, netc, true},
		{[]string{"network=bridge"}, start, false},
		{[]string{"volume=v1"}, start, false},
		{[]string{"scope=local"}, start, true},
		{[]string{"scope=swarm"}, start, false},
		{[]string{"node=web-1"}, start, true},
		{[]string{"node=web-2"}, start, false},
		{[]string{"type=container", "event=start", "label=env=prod"}, start, true},
		{[]string{"type=container", "event=die", "label=env=prod"}, start, false},
	}
	checkMatches(t, cases)
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		terms []string
		want  []string
	}{
		{nil, []string{"docker.events.>"}},
		{[]string{"label=a"}, []string{"docker.events.>"}},
		{[]string{"type=container"}, []string{"docker.events.*.container.*"}},
		{[]string{"type=container", "event=start", "event=die"}, []string{"docker.events.*.container.die", "docker.events.*.container.start"}},
		{[]string{"event=health_status"}, []string{"docker.events.*.*.health_status"}},
		{[]string{"event=health_status", "event=st"}, []string{"docker.events.>"}},
		{[]string{"event=exec_start: ls"}, []string{"docker.events.*.*.exec_start"}},
		{[]string{"node=a.b", "type=container"}, []string{"docker.events.a_b.container.*"}},
	}
	for _, c := range cases {
		f, err := Parse(c.terms, GatewayKeys)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Subjects(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Subjects(%q) = %q, want %q", c.terms, got, c.want)
		}
	}
	var terms []string
	for i := 0; i < 20; i++ {
		terms = append(terms, "type=t"+string(rune('a'+i)), "event=e"+string(rune('a'+i)))
	}
	f, _ := Parse(terms, GatewayKeys)
	if n := len(f.Subjects()); n > MaxSubjects {
		t.Errorf("%d subjects, more than %d", n, MaxSubjects)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	tagged := map[string]string{"name": "api", event.AttrHealthcheck: "true", event.AttrCommand: "/probe health"}
	check := ev("container", "exec_die", "abc123", tagged)
	own := ev("container", "exec_die", "abc123", map[string]string{"name": "api"})
	odd := ev("container", "exec_start: ls", "abc123", map[string]string{"name": "api", event.AttrHealthcheck: "yes"})
	start := ev("container", "start", "abc123", map[string]string{"name": "api"})
	cases := []matchCase{
		{[]string{"healthcheck=true"}, check, true},
		{[]string{"healthcheck=true"}, own, false},
		{[]string{"healthcheck=true"}, odd, false}, // only "true" is a tag
		{[]string{"healthcheck=true"}, start, false},
		{[]string{"healthcheck=false"}, check, false},
		{[]string{"healthcheck=false"}, own, true}, // absent means false
		{[]string{"healthcheck=false"}, odd, true},
		{[]string{"healthcheck=false"}, start, true},
		{[]string{"healthcheck=true", "healthcheck=false"}, check, true}, // same key: OR
		{[]string{"healthcheck=true", "healthcheck=false"}, start, true},
		{[]string{"healthcheck=false", "event=exec_die"}, check, false},
		{[]string{"healthcheck=false", "event=exec_die"}, own, true},
		{[]string{"healthcheck=true", "type=container", "container=api"}, check, true},
	}
	checkMatches(t, cases)
	for _, bad := range []string{"healthcheck=yes", "healthcheck=TRUE", "healthcheck=1", "healthcheck= true"} {
		_, err := Parse([]string{bad}, GatewayKeys)
		if err == nil || !strings.Contains(err.Error(), "healthcheck is true or false") {
			t.Errorf("Parse(%q): %v, want a true-or-false error", bad, err)
		}
	}
	// The engine does not know the key: not an engine key, never in Args.
	if _, err := Parse([]string{"healthcheck=false"}, EngineKeys); err == nil {
		t.Error("healthcheck accepted as an engine key")
	}
	f, err := Parse([]string{"healthcheck=false", "type=container", "label=env=prod"}, GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	keys := f.Args().Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"label", "type"}) {
		t.Errorf("Args carries %v, want label and type only", keys)
	}
	// Subjects do not change with it.
	without, _ := Parse([]string{"type=container", "label=env=prod"}, GatewayKeys)
	if !reflect.DeepEqual(f.Subjects(), without.Subjects()) {
		t.Errorf("Subjects %q with healthcheck, %q without", f.Subjects(), without.Subjects())
	}
	if got := f.String(); got != "healthcheck=false,label=env=prod,type=container" {
		t.Errorf("String() = %q", got)
	}
}

// subjectMatches is NATS subject matching (literal subject against a filter).
func subjectMatches(subj, filter string) bool {
	st, ft := strings.Split(subj, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(st) == len(ft)
}

func FuzzParseMatch(f *testing.F) {
	f.Add("type=container,event=start", "container", "start", "abc", "api", "env=prod")
	f.Add("event=health_status,event=st", "container", "health_status: healthy", "abc", "api", "")
	f.Add("label=env=prod,container=ap", "container", "die", "abc", "api", "env=prod")
	f.Add("node=web-1,type=im.age,event=exec_start: x", "im.age", "exec_start: x y", "sha", "n", "")
	f.Add("image=alpine", "image", "pull", "sha256:1", "alpine:3", "")
	f.Add("healthcheck=false,event=exec_die", "container", "exec_die", "abc", "api", "dockcast.healthcheck=true")
	f.Add("healthcheck=true,type=container", "container", "exec_start: /probe health", "abc", "api", "dockcast.healthcheck=true")
	f.Add("healthcheck=true,healthcheck=false", "container", "start", "abc", "api", "")
	f.Add("healthcheck=maybe", "container", "start", "abc", "api", "")
	f.Fuzz(func(t *testing.T, list, typ, action, id, name, label string) {
		flt, err := ParseList(list, GatewayKeys)
		if err != nil {
			return
		}
		again, err := Parse(flt.Terms(), GatewayKeys)
		if err != nil || !reflect.DeepEqual(again.Terms(), flt.Terms()) {
			t.Fatalf("terms do not round trip: %q -> %q (%v)", flt.Terms(), again.Terms(), err)
		}
		attrs := map[string]string{"name": name}
		if k, v, ok := strings.Cut(label, "="); ok {
			attrs[k] = v
		}
		e := event.FromDocker("web-1", events.Message{Type: events.Type(typ), Action: events.Action(action),
			Actor: events.Actor{ID: id, Attributes: attrs}, Scope: "local", TimeNano: 1})
		if flt.Args().Contains(KeyHealthcheck) {
			t.Fatalf("Args of %q carries healthcheck", flt.Terms())
		}
		if hc := flt.Values(KeyHealthcheck); len(hc) == 1 {
			tagged := e.Actor.Attributes[event.AttrHealthcheck] == "true"
			if flt.Match(&e) && tagged != (hc[0] == "true") {
				t.Fatalf("%q matched %v", flt.Terms(), e.Actor.Attributes)
			}
		}
		subs := flt.Subjects()
		if len(subs) == 0 || len(subs) > MaxSubjects {
			t.Fatalf("%d subjects", len(subs))
		}
		for i := range subs {
			for j := range subs {
				if i != j && (subjectMatches(strings.ReplaceAll(subs[i], "*", "x"), subs[j]) && subjectMatches(strings.ReplaceAll(subs[j], "*", "x"), subs[i])) {
					t.Fatalf("subjects overlap: %q", subs)
				}
			}
		}
		if !flt.Match(&e) {
			return
		}
		for _, s := range subs {
			if subjectMatches(e.Subject(), s) {
				return
			}
		}
		t.Fatalf("event %s matches %q but no subject of %q covers it", e.Subject(), flt.Terms(), subs)
	})
}

package event

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/api/types/events"
)

func TestFromDockerHealthStatus(t *testing.T) {
	t.Parallel()
	m := events.Message{
		Type:     events.ContainerEventType,
		Action:   "health_status: unhealthy",
		Actor:    events.Actor{ID: "4f2c", Attributes: map[string]string{"name": "api", "image": "api:1.4"}},
		Scope:    "local",
		Time:     1764097465,
		TimeNano: 1764097465217300886,
	}
	e := FromDocker("web-1", m)
	if e.Action != "health_status" || e.ActionDetail != "unhealthy" {
		t.Fatalf("action %q detail %q", e.Action, e.ActionDetail)
	}
	if e.Subject() != "docker.events.web-1.container.health_status" {
		t.Fatalf("subject %q", e.Subject())
	}
	if e.DockerAction() != "health_status: unhealthy" {
		t.Fatalf("DockerAction %q", e.DockerAction())
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["time"] != "2025-11-25T19:04:25.217300886Z" {
		t.Errorf("time = %v", raw["time"])
	}
	if raw["time_nano"].(float64) != 1764097465217300886 {
		t.Errorf("time_nano = %v", raw["time_nano"])
	}
	for _, k := range []string{"v", "id", "node", "type", "action", "action_detail", "actor", "scope", "time", "time_nano"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload lacks %q: %s", k, b)
		}
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != e.ID || back.TimeNano != e.TimeNano || !back.Time.Equal(e.Time) {
		t.Fatalf("round trip changed the event: %+v", back)
	}
}

func TestIDStable(t *testing.T) {
	t.Parallel()
	// Ids already in streams must not change: these are the values of the
	// first implementation.
	for want, got := range map[string]string{
		"741e99e2279b898f40155a2265f09106": ID("web-1", 1764097465217300886, "container", "health_status: unhealthy", "4f2c"),
		"c92405c231b0b7663759a407368f9010": ID("", -1, "", "", ""),
		"06415bbc57362f64a4932f6c006cbede": ID("n", 0, "container", strings.Repeat("x", 600), "é"),
	} {
		if got != want {
			t.Errorf("id %s, want %s", got, want)
		}
	}
	a := ID("n", 1, "container", "start", "x")
	if a != ID("n", 1, "container", "start", "x") {
		t.Fatal("id not deterministic")
	}
	for _, other := range []string{
		ID("n", 2, "container", "start", "x"),
		ID("n", 1, "image", "start", "x"),
		ID("n", 1, "container", "stop", "x"),
		ID("n", 1, "container", "start", "y"),
		ID("m", 1, "container", "start", "x"),
		ID("n", 1, "containe", "rstart", "x"),
	} {
		if other == a {
			t.Fatal("different events share an id")
		}
	}
}

func TestFromDockerLegacy(t *testing.T) {
	t.Parallel()
	e := FromDocker("n", events.Message{Status: "start", ID: "abc", From: "busybox", Time: 10})
	if e.Type != "container" || e.Action != "start" || e.Actor.ID != "abc" || e.Actor.Attributes["image"] != "busybox" {
		t.Fatalf("%+v", e)
	}
	if e.TimeNano != 10*int64(time.Second) {
		t.Fatalf("time_nano %d", e.TimeNano)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{`, `{"v":2,"type":"a","action":"b"}`, `{"v":1}`, `[]`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%s) accepted", in)
		}
	}
}

func TestSinceArg(t *testing.T) {
	t.Parallel()
	if got := SinceArg(1764097465000000123); got != "1764097465.000000123" {
		t.Fatal(got)
	}
}

func FuzzFromDocker(f *testing.F) {
	f.Add(`{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"4f2c","Attributes":{"name":"api"}},"scope":"local","time":1764097465,"timeNano":1764097465217300886}`)
	f.Add(`{"status":"start","id":"abc","from":"busybox","time":10}`)
	f.Add(`{"Type":"net.work","Action":"connect","Actor":{"ID":""}}`)
	f.Add(`{"Type":"","Action":":","timeNano":-5}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var m events.Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return
		}
		e := FromDocker("node", m)
		if e.V != Version || e.ID == "" || len(e.ID) != 32 {
			t.Fatalf("bad id/version: %+v", e)
		}
		if strings.Count(e.Subject(), ".") != 4 {
			t.Fatalf("subject %q has the wrong shape", e.Subject())
		}
		if strings.Contains(e.Action, ":") {
			t.Fatalf("action %q keeps a colon", e.Action)
		}
		if e.Time.UnixNano() != e.TimeNano {
			t.Fatalf("time %v and time_nano %d disagree", e.Time, e.TimeNano)
		}
		again := FromDocker("node", m)
		if again.ID != e.ID {
			t.Fatal("id not deterministic")
		}
		b, err := e.Marshal()
		if err != nil {
			return // e.g. a time outside JSON's year range
		}
		if !utf8.Valid(b) {
			t.Fatal("payload not UTF-8")
		}
		if e.Action == "" {
			return
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode of our own payload: %v (%s)", err, b)
		}
		if back.ID != e.ID || back.TimeNano != e.TimeNano || back.DockerAction() != e.DockerAction() {
			t.Fatalf("round trip changed the event")
		}
	})
}

// AppendJSON writes exactly what encoding/json writes for an event.
func FuzzAppendJSONIsEncodingJSON(f *testing.F) {
	f.Add("id", "web-1", "container", "exec_start", "sh -c 'ls <a>&b'", "4f2c", "name", "api\u2028\x00\xff", "local", int64(1764097465217300886))
	f.Add("", "", "", "", "", "", "", "", "", int64(0))
	f.Add("\"\\\t\n\r\b\f", "é", "<>&", "\x7f", "\u2029", "k", "\x01\x1f", "v", "s", int64(-1))
	f.Fuzz(func(t *testing.T, id, node, typ, action, detail, actor, key, value, scope string, tn int64) {
		e := Event{V: Version, ID: id, Node: node, Type: typ, Action: action, ActionDetail: detail,
			Actor: Actor{ID: actor, Attributes: map[string]string{key: value, "image": value + key, "z": detail}},
			Scope: scope, Time: time.Unix(0, tn).UTC(), TimeNano: tn}
		for _, ev := range []Event{e, {V: 1, Time: e.Time}} {
			want, werr := json.Marshal(&ev)
			got, gerr := ev.AppendJSON(nil)
			if (werr == nil) != (gerr == nil) || string(got) != string(want) {
				t.Fatalf("AppendJSON\n%s (%v)\nencoding/json\n%s (%v)", got, gerr, want, werr)
			}
		}
	})
}

func TestFromDockerMessageTakesTheMapFromDockerCopies(t *testing.T) {
	t.Parallel()
	mk := func() events.Message {
		return events.Message{Status: "start", ID: "abc", From: "busybox", Type: "container", Action: "start",
			Actor: events.Actor{ID: "abc", Attributes: map[string]string{"name": "web-1"}}, TimeNano: 12345}
	}
	m := mk()
	copied := FromDocker("n", m)
	if len(m.Actor.Attributes) != 1 {
		t.Fatalf("FromDocker changed the caller's map: %v", m.Actor.Attributes)
	}
	owned := FromDockerMessage("n", &m)
	if !reflect.DeepEqual(copied, owned) {
		t.Fatalf("FromDockerMessage %#v, FromDocker %#v", owned, copied)
	}
	if m.Actor.Attributes["image"] != "busybox" {
		t.Fatal("FromDockerMessage copied the map instead of taking it")
	}
	none := mk()
	none.Actor.Attributes = nil
	if e := FromDockerMessage("n", &none); e.Actor.Attributes == nil || e.Actor.Attributes["image"] != "busybox" {
		t.Fatalf("no attributes: %v", e.Actor.Attributes)
	}
}

// Marshal allocates its output and nothing else (the attribute keys are
// sorted on the stack): the publisher encodes every event once at ingest.
func TestMarshalAllocatesOnce(t *testing.T) {
	attrs := map[string]string{"name": "shop-api-1", "image": "api:1", "com.docker.compose.project": "shop", "env": "prod"}
	e := New("n1", "container", "start", "", "c1", attrs, time.Unix(1_700_000_000, 5))
	if n := testing.AllocsPerRun(100, func() {
		if _, err := e.Marshal(); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("%.1f allocations per Marshal, want 1", n)
	}
}

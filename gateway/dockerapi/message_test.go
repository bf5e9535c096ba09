package dockerapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/event"
)

// Lines as this machine's engine (Docker 20.10.24, API 1.41) printed them on
// /events: each must come back byte for byte from its dockcast event.
var engineLines = []string{
	`{"status":"destroy","id":"9b33b454909f2efac59d41a2be4fe71f5ccb7a1ea3345a7d874b26f8d2bc30ac","from":"dockcast/publisher:test","Type":"container","Action":"destroy","Actor":{"ID":"9b33b454909f2efac59d41a2be4fe71f5ccb7a1ea3345a7d874b26f8d2bc30ac","Attributes":{"com.docker.compose.project":"dockcast-test","com.docker.compose.service":"publisher","image":"dockcast/publisher:test","name":"dockcast-test_publisher_1"}},"scope":"local","time":1796121848,"timeNano":1796121848652654977}`,
	`{"Type":"network","Action":"destroy","Actor":{"ID":"2d37f48cf2d191b9f393f94c64105332ed6b38e2e1fd9018f850f3b6db3af16b","Attributes":{"name":"dockcast-test_default","type":"bridge"}},"scope":"local","time":1796121848,"timeNano":1796121848879856819}`,
	`{"Type":"volume","Action":"destroy","Actor":{"ID":"dockcast-test_nats-data","Attributes":{"driver":"local"}},"scope":"local","time":1796121848,"timeNano":1796121848884102533}`,
	`{"status":"health_status: healthy","id":"c1","from":"dockcast-probe:test","Type":"container","Action":"health_status: healthy","Actor":{"ID":"c1","Attributes":{"image":"dockcast-probe:test","k":"\u003ca\u0026b\u003e","name":"p"}},"scope":"local","time":1796121848,"timeNano":1796121848000000001}`,
	`{"status":"tag","id":"sha256:7c48","Type":"image","Action":"tag","Actor":{"ID":"sha256:7c48","Attributes":{"name":"dockcast-probe:x"}},"scope":"local","time":1796121848,"timeNano":1796121848884102534}`,
	`{"Type":"daemon","Action":"reload","Actor":{"ID":"ABCD:EFGH","Attributes":{"name":"host"}},"scope":"local","time":1796121849,"timeNano":1796121849000000000}`,
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	for _, line := range engineLines {
		var m events.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		e := event.FromDocker("web-1", m)
		got, err := AppendLine(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != line+"\n" {
			t.Errorf("got  %s\nwant %s", got, line)
		}
	}
}

func TestMessageWithoutDockcastAttributes(t *testing.T) {
	t.Parallel()
	m := events.Message{Type: "container", Action: "exec_die", Scope: "local", TimeNano: 1796121848000000001,
		Actor: events.Actor{ID: "c1", Attributes: map[string]string{
			"execID": "e1", "exitCode": "0", "image": "dockcast-probe:test", "name": "p",
			"dockcast.e2e": "a container's own label", // stays: only what dockcast adds goes
		}}}
	e := event.FromDocker("web-1", m)
	e.Actor.Attributes[event.AttrHealthcheck] = "true"
	e.Actor.Attributes[event.AttrCommand] = "/probe health"
	got, err := AppendLine(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":"exec_die","id":"c1","from":"dockcast-probe:test","Type":"container","Action":"exec_die","Actor":{"ID":"c1","Attributes":{"dockcast.e2e":"a container's own label","execID":"e1","exitCode":"0","image":"dockcast-probe:test","name":"p"}},"scope":"local","time":1796121848,"timeNano":1796121848000000001}` + "\n"
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, ok := e.Actor.Attributes[event.AttrHealthcheck]; !ok {
		t.Error("Message changed the event's own attributes")
	}
	// dockcast's synthetic events keep Docker's shape too.
	st := event.New("web-1", "container", event.ActionState, "running", "c1", map[string]string{"name": "p", "image": "i"}, e.Time)
	line, _ := AppendLine(nil, &st)
	if !strings.HasPrefix(string(line), `{"status":"state: running","id":"c1","from":"i","Type":"container","Action":"state: running",`) {
		t.Errorf("state event: %s", line)
	}
}

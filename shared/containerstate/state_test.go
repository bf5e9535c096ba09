package containerstate

import (
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/event"
)

func ev(node, typ, action, detail, id string, attrs map[string]string) *event.Event {
	e := event.New(node, typ, action, detail, id, attrs, time.Unix(1000, 0))
	return &e
}

func TestApply(t *testing.T) {
	t.Parallel()
	var s Set
	attrs := func(extra ...string) map[string]string {
		m := map[string]string{"name": "api", "image": "api:1", "env": "prod", "dockcast.e2e": "x"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	check := func(step, id, state, health, name string) {
		t.Helper()
		st, ok := s.Get("n1", id)
		if state == "" {
			if ok {
				t.Fatalf("%s: %s still there: %+v", step, id, st)
			}
			return
		}
		a := st.Event.Actor.Attributes
		if !ok || st.Event.ActionDetail != state || a["health"] != health || a["name"] != name || a["image"] != "api:1" ||
			a["env"] != "prod" || a["dockcast.e2e"] != "x" || a["exitCode"] != "" || a[event.AttrHealthcheck] != "" ||
			st.Event.Action != event.ActionState || st.Event.Type != "container" {
			t.Fatalf("%s: %s = %+v (present %v), want %s health %q name %s", step, id, st, ok, state, health, name)
		}
	}
	s.Apply(1, ev("n1", "container", "create", "", "c1", attrs()))
	check("create", "c1", Created, "", "api")
	s.Apply(2, ev("n1", "container", "start", "", "c1", attrs()))
	check("start", "c1", Running, "", "api")
	s.Apply(3, ev("n1", "container", "exec_start", "/probe health", "c1", attrs("execID", "e", event.AttrHealthcheck, "true")))
	check("a check's exec", "c1", Running, "starting", "api")
	s.Apply(4, ev("n1", "container", "health_status", "healthy", "c1", attrs()))
	check("health_status", "c1", Running, "healthy", "api")
	s.Apply(5, ev("n1", "container", "exec_start", "/bin/ls", "c1", attrs("execID", "u")))
	check("a user's exec", "c1", Running, "healthy", "api")
	s.Apply(6, ev("n1", "container", "pause", "", "c1", attrs()))
	check("pause", "c1", Paused, "healthy", "api")
	s.Apply(7, ev("n1", "container", "unpause", "", "c1", attrs()))
	check("unpause", "c1", Running, "healthy", "api")
	s.Apply(8, ev("n1", "container", "rename", "", "c1", attrs("name", "api2", "oldName", "/api")))
	check("rename", "c1", Running, "healthy", "api2")
	s.Apply(9, ev("n1", "container", "kill", "", "c1", attrs("name", "api2", "signal", "9")))
	s.Apply(10, ev("n1", "container", "die", "", "c1", attrs("name", "api2", "exitCode", "137")))
	check("die", "c1", Exited, "", "api2")
	s.Apply(11, ev("n1", "container", "restart", "", "c1", attrs("name", "api2")))
	check("restart", "c1", Running, "", "api2")
	if st, _ := s.Get("n1", "c1"); st.Seq != 11 {
		t.Fatalf("seq %d, want 11 (the last change)", st.Seq)
	}

	// An event at or below a container's sequence is already reflected.
	if ch := s.Apply(10, ev("n1", "container", "die", "", "c1", attrs("name", "api2"))); ch != nil {
		t.Fatalf("an old event changed %v", ch)
	}
	check("old event", "c1", Running, "", "api2")

	// Other nodes and types change nothing; a state event sets everything.
	s.Apply(12, ev("n2", "container", "create", "", "c1", attrs()))
	s.Apply(13, ev("n1", "image", "pull", "", "api:1", nil))
	s.Apply(14, ev("n1", "container", event.ActionState, "running", "c3", attrs("health", "unhealthy")))
	check("state", "c3", Running, "unhealthy", "api")
	if s.Len() != 3 {
		t.Fatalf("%d containers, want 3", s.Len())
	}
	// An unknown container's health_status or rename is not guessed at; its die is.
	s.Apply(15, ev("n1", "container", "health_status", "healthy", "c4", attrs()))
	s.Apply(16, ev("n1", "container", "die", "", "c5", attrs("exitCode", "1")))
	check("unknown health", "c4", "", "", "")
	check("unknown die", "c5", Exited, "", "api")

	// A gap forgets the node's containers older than it; state events restore.
	ch := s.Apply(20, ev("n1", event.TypeDockcast, event.ActionGap, "", "n1", map[string]string{"reason": "engine_lost_events"}))
	if len(ch) != 3 {
		t.Fatalf("gap changed %v, want the node's 3 containers gone", ch)
	}
	s.Apply(21, ev("n1", "container", event.ActionState, "exited", "c1", attrs("health", "")))
	check("after gap", "c1", Exited, "", "api")
	check("after gap", "c3", "", "", "")
	if _, ok := s.Get("n2", "c1"); !ok {
		t.Fatal("a gap of n1 forgot n2's container")
	}
	s.Apply(22, ev("n1", "container", "destroy", "", "c1", attrs()))
	check("destroy", "c1", "", "", "")

	// Bucket values round-trip.
	st, _ := s.Get("n2", "c1")
	data, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil || back.Seq != 12 || back.ID() != "c1" || back.Node() != "n2" || back.Event.ID != st.Event.ID {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if _, err := Decode([]byte(`{"seq":1}`)); err == nil {
		t.Fatal("a value without a container decoded")
	}
	if Bucket("DOCKER_EVENTS") != "DOCKER_CONTAINERS" || Bucket("EV") != "EV_CONTAINERS" || Key("n1", "c1") != "n1.c1" || AppliedKey("n1") != "n1._applied" {
		t.Fatal("names")
	}
}

// FuzzApply: any sequence of events leaves states that are container.state
// events of their own container and node, each with the sequence of an
// event that was applied.
func FuzzApply(f *testing.F) {
	f.Add("create", "start", "die", "destroy", uint8(3))
	f.Add("gap", "state", "rename", "health_status", uint8(1))
	f.Fuzz(func(t *testing.T, a1, a2, a3, a4 string, ids uint8) {
		var s Set
		for i, a := range []string{a1, a2, a3, a4, a1, a3} {
			id := string(rune('a' + int(ids+uint8(i))%3))
			typ := "container"
			if a == "gap" {
				typ, a = event.TypeDockcast, event.ActionGap
			}
			s.Apply(uint64(i+1), ev("n", typ, a, "x", id, map[string]string{"name": id}))
		}
		for _, st := range s.All() {
			if st.Event.Action != event.ActionState || st.Event.Type != "container" || st.Node() != "n" || st.Seq < 1 || st.Seq > 6 {
				t.Fatalf("bad state %+v", st)
			}
		}
	})
}

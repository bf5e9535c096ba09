package containerstate

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
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

// refApply is Apply as it was before the Set kept entries and built
// states on demand: a State built for every event. The Set must give
// exactly what it gives.
func refApply(m map[ref]*State, seq uint64, e *event.Event) []Change {
	if e.Type == event.TypeDockcast && e.Action == event.ActionGap {
		var out []Change
		for k, st := range m {
			if k.node == e.Node && st.Seq < seq {
				delete(m, k)
				out = append(out, Change{Node: k.node, ID: k.id})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out
	}
	if e.Type != "container" || e.Actor.ID == "" {
		return nil
	}
	build := func(state, health string, labels map[string]string) event.Event {
		if state == "" {
			state = "unknown"
		}
		return stateEvent(e.Node, e.Actor.ID, state, health, e.Actor.Attributes["name"], e.Actor.Attributes["image"], labels, e.Time)
	}
	k := ref{e.Node, e.Actor.ID}
	cur, known := m[k]
	if known && cur.Seq >= seq {
		return nil
	}
	if e.Action == "destroy" {
		if !known {
			return nil
		}
		delete(m, k)
		return []Change{{Node: k.node, ID: k.id}}
	}
	if e.Action == event.ActionState {
		st := State{Seq: seq, Event: build(e.ActionDetail, e.Actor.Attributes["health"], labelsOf(e.Actor.Attributes))}
		m[k] = &st
		return []Change{{Node: k.node, ID: k.id, State: &st}}
	}
	state, health, labels := "", "", map[string]string(nil)
	if known {
		state, health, labels = cur.Event.ActionDetail, cur.Event.Actor.Attributes["health"], labelsOf(cur.Event.Actor.Attributes)
	}
	switch e.Action {
	case "create":
		state, health, labels = Created, "", labelsOf(e.Actor.Attributes)
	case "start", "restart", "unpause":
		if e.Action != "unpause" && health != "" {
			health = "starting"
		}
		state = Running
	case "pause":
		state = Paused
	case "die":
		state, health = Exited, ""
	case "health_status":
		if !known {
			return nil
		}
		health = e.ActionDetail
	case "exec_create", "exec_start", "exec_die":
		if !known || health != "" || state != Running || e.Actor.Attributes[event.AttrHealthcheck] != "true" {
			return nil
		}
		health = "starting"
	case "rename":
		if !known {
			return nil
		}
	default:
		return nil
	}
	if labels == nil {
		labels = labelsOf(e.Actor.Attributes)
	}
	st := State{Seq: seq, Event: build(state, health, labels)}
	if known {
		for _, a := range []string{"name", "image"} {
			if st.Event.Actor.Attributes[a] == "" {
				st.Event.Actor.Attributes[a] = cur.Event.Actor.Attributes[a]
			}
		}
	}
	m[k] = &st
	return []Change{{Node: k.node, ID: k.id, State: &st}}
}

// sameAsReference folds events (with old sequences and bucket entries put
// in between) into a Set with Apply, another with Track, and the
// reference, and fails at the first difference: every change, every
// state, ids and times included.
func sameAsReference(t *testing.T, steps []step) {
	t.Helper()
	var applied, tracked Set
	ref := map[ref]*State{}
	for i, st := range steps {
		if st.put != nil {
			applied.Put(*st.put)
			tracked.Put(*st.put)
			c := *st.put
			ref[refOf(&c)] = &c
			continue
		}
		want := refApply(ref, st.seq, st.e)
		got := applied.Apply(st.seq, st.e)
		var ids []string
		tracked.Track(st.seq, st.e, func(node, id string) { ids = append(ids, node+"/"+id) })
		if len(got) != len(want) || len(ids) != len(want) {
			t.Fatalf("step %d (%s %s): changes %+v, tracked %v, reference %+v", i, st.e.Action, st.e.Actor.ID, got, ids, want)
		}
		for j := range want {
			if got[j].Node != want[j].Node || got[j].ID != want[j].ID || ids[j] != want[j].Node+"/"+want[j].ID ||
				(got[j].State == nil) != (want[j].State == nil) || got[j].State != nil && !reflect.DeepEqual(*got[j].State, *want[j].State) {
				t.Fatalf("step %d (%s %s): change %d %+v, reference %+v", i, st.e.Action, st.e.Actor.ID, j, got[j], want[j])
			}
		}
		wantAll := make([]State, 0, len(ref))
		for _, s := range ref {
			wantAll = append(wantAll, *s)
		}
		var r Set
		for _, s := range wantAll {
			r.Put(s)
		}
		wantAll = r.All() // ordered
		for name, s := range map[string]*Set{"Apply": &applied, "Track": &tracked} {
			if all := s.All(); !reflect.DeepEqual(all, wantAll) {
				t.Fatalf("step %d (%s %s): %s's states\n%+v\nreference\n%+v", i, st.e.Action, st.e.Actor.ID, name, all, wantAll)
			}
		}
	}
}

type step struct {
	seq uint64
	e   *event.Event
	put *State
}

func refOf(s *State) ref { return ref{s.Node(), s.ID()} }

// The Set folds exactly as a State built for every event would, whether
// changes are taken from Apply or states from Get after Track, whatever
// the events: every action on a few containers of two nodes, gaps, state
// events, old sequences, bucket entries.
func TestSetMatchesReference(t *testing.T) {
	t.Parallel()
	actions := []string{"create", "start", "restart", "unpause", "pause", "die", "health_status", "exec_start", "exec_die",
		"rename", "kill", "destroy", "state", "gap", "oom"}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var steps []step
		seq := uint64(0)
		for i := range 60 {
			node := []string{"n1", "n2"}[rng.IntN(2)]
			id := string(rune('a' + rng.IntN(3)))
			a := actions[rng.IntN(len(actions))]
			attrs := map[string]string{"env": []string{"prod", "dev"}[rng.IntN(2)], "com.x": id}
			if rng.IntN(4) > 0 {
				attrs["name"] = id + string(rune('0'+rng.IntN(3)))
			}
			if rng.IntN(4) > 0 {
				attrs["image"] = "img:" + string(rune('0'+rng.IntN(3)))
			}
			if rng.IntN(3) == 0 {
				attrs[event.AttrHealthcheck] = "true"
			}
			if rng.IntN(5) == 0 {
				attrs["health"] = "healthy"
			}
			typ, detail := "container", []string{"", "healthy", "unhealthy", "running", "exited"}[rng.IntN(5)]
			switch a {
			case "gap":
				typ, a, id, attrs = event.TypeDockcast, event.ActionGap, node, map[string]string{"reason": "x"}
			case "state":
				a = event.ActionState
			}
			seq++
			s := seq
			if rng.IntN(10) == 0 && seq > 3 {
				s = seq - uint64(rng.IntN(3)) // an old event
			}
			e := event.New(node, typ, a, detail, id, attrs, time.Unix(1000, int64(i)))
			steps = append(steps, step{seq: s, e: &e})
			if rng.IntN(15) == 0 {
				pe := event.New(node, "container", event.ActionState, "paused", "p"+id, map[string]string{"name": "p", "image": "i", "health": "", "env": "x"}, time.Unix(999, 0))
				steps = append(steps, step{put: &State{Seq: seq, Event: pe}})
			}
		}
		t.Run(strconv.Itoa(run), func(t *testing.T) { sameAsReference(t, steps) })
	}
}

// Folding an event of a known container allocates nothing: the state is
// built when it is asked for, not per event (a burst of events costs the
// publisher's keeper no garbage).
func TestTrackAllocatesNothing(t *testing.T) {
	var s Set
	attrs := map[string]string{"name": "api", "image": "api:1", "com.docker.compose.project": "shop", "env": "prod"}
	s.Apply(1, ev("n1", "container", "create", "", "c1", attrs))
	evs := []*event.Event{ev("n1", "container", "start", "", "c1", attrs), ev("n1", "container", "die", "", "c1", attrs)}
	seq := uint64(1)
	changed := func(_, _ string) {}
	if n := testing.AllocsPerRun(1000, func() {
		seq++
		s.Track(seq, evs[seq%2], changed)
	}); n != 0 {
		t.Fatalf("%.1f allocations per event", n)
	}
	if st, _ := s.Get("n1", "c1"); st.Seq != seq || st.Event.Actor.Attributes["env"] != "prod" {
		t.Fatalf("state %+v", st)
	}
}

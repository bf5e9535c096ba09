package containerstate

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dockcast/dockcast/shared/event"
)

// Bucket is the key-value bucket of container states kept beside stream:
// DOCKER_CONTAINERS for DOCKER_EVENTS, else <stream>_CONTAINERS.
func Bucket(stream string) string {
	if stream == "DOCKER_EVENTS" {
		return "DOCKER_CONTAINERS"
	}
	return stream + "_CONTAINERS"
}

// Key of a container's state in the bucket: <node>.<container id>.
func Key(node, id string) string { return node + "." + id }

// AppliedKey of a node's watermark in the bucket: <node>._applied. Its
// value ([Applied]) says up to which stream sequence the node's entries
// reflect every event of the node.
func AppliedKey(node string) string { return node + "._applied" }

// Applied is the value of a node's watermark.
type Applied struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"` // the stream's epoch the sequence belongs to
}

// States of a container, as `docker ps -a` names them.
const (
	Created = "created"
	Running = "running"
	Paused  = "paused"
	Exited  = "exited"
)

// State is one container's state and the stream sequence of the last event
// it reflects: the value of its bucket entry and, with "type":"state", the
// gateway's state frame.
type State struct {
	Seq   uint64      `json:"seq"`
	Event event.Event `json:"event"` // a container.state event
}

// Marshal encodes s as its bucket value.
func (s *State) Marshal() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("marshal state of %s: %w", s.Event.Actor.ID, err)
	}
	return b, nil
}

// Decode parses a bucket value.
func Decode(data []byte) (State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("decode container state: %w", err)
	}
	if s.Event.Actor.ID == "" || s.Event.Node == "" {
		return State{}, fmt.Errorf("decode container state: no node or container id")
	}
	return s, nil
}

// ID is the container's id; Node its node.
func (s *State) ID() string   { return s.Event.Actor.ID }
func (s *State) Node() string { return s.Event.Node }

// notLabels are the attributes of container events that are not labels.
var notLabels = map[string]bool{
	"name": true, "image": true, "health": true, "exitCode": true, "signal": true, "execID": true, "oldName": true,
}

// ref identifies a container across nodes.
type ref struct{ node, id string }

// entry is what the Set keeps of a container: the parts of its
// container.state event that events change, built into a State only when
// one is asked for (Get, All, Apply's changes), so that folding many
// events of a container costs no allocation per event.
type entry struct {
	seq                        uint64
	state, health, name, image string
	labels                     map[string]string // shared by the entries that inherit it: never written to
	at                         time.Time         // the time of the event that made it
	built                      *State            // the State, once built (or as Put); nil after a change
}

// Set is the state of many containers. The zero value is empty and ready.
type Set struct {
	m map[ref]*entry
}

// Len is the number of containers.
func (s *Set) Len() int { return len(s.m) }

// Get returns the state of container id of node.
func (s *Set) Get(node, id string) (State, bool) {
	k := ref{node, id}
	en, ok := s.m[k]
	if !ok {
		return State{}, false
	}
	return *s.build(k, en), true
}

// build returns en's State, building it the first time: the same
// container.state event, id included, as when it was changed.
func (s *Set) build(k ref, en *entry) *State {
	if en.built == nil {
		en.built = &State{Seq: en.seq, Event: stateEvent(k.node, k.id, en.state, en.health, en.name, en.image, en.labels, en.at)}
	}
	return en.built
}

// Put sets a container's state as it is (a bucket entry).
func (s *Set) Put(st State) {
	if s.m == nil {
		s.m = map[ref]*entry{}
	}
	a := st.Event.Actor.Attributes
	s.m[ref{st.Node(), st.ID()}] = &entry{
		seq: st.Seq, state: st.Event.ActionDetail, health: a["health"], name: a["name"], image: a["image"],
		labels: labelsOf(a), at: st.Event.Time, built: &st,
	}
}

// Delete forgets a container.
func (s *Set) Delete(node, id string) { delete(s.m, ref{node, id}) }

// All returns every state, ordered by node, then sequence, then id.
func (s *Set) All() []State {
	out := make([]State, 0, len(s.m))
	for k, en := range s.m {
		out = append(out, *s.build(k, en))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Node() != b.Node() {
			return a.Node() < b.Node()
		}
		if a.Seq != b.Seq {
			return a.Seq < b.Seq
		}
		return a.ID() < b.ID()
	})
	return out
}

// Change is what Apply did to one container.
type Change struct {
	Node, ID string
	State    *State // nil: the container is gone
}

// Apply folds the event stored at seq and reports the containers it
// changed. Events of other types, and container events that change nothing
// `docker ps -a` shows, change nothing.
func (s *Set) Apply(seq uint64, e *event.Event) []Change {
	var out []Change
	s.Track(seq, e, func(node, id string) {
		c := Change{Node: node, ID: id}
		if en, ok := s.m[ref{node, id}]; ok {
			c.State = s.build(ref{node, id}, en)
		}
		out = append(out, c)
	})
	return out
}

// Track is Apply without building the states it changes: it calls
// changed with each container the event changed (in Apply's order), whose
// state Get then gives, or not, if it is gone. A keeper that writes the
// states now and then folds every event with Track and builds each
// container's state once per write.
func (s *Set) Track(seq uint64, e *event.Event, changed func(node, id string)) {
	if s.m == nil {
		s.m = map[ref]*entry{}
	}
	if e.Type == event.TypeDockcast && e.Action == event.ActionGap {
		var gone []string
		for k, en := range s.m {
			if k.node == e.Node && en.seq < seq {
				delete(s.m, k)
				gone = append(gone, k.id)
			}
		}
		sort.Strings(gone)
		for _, id := range gone {
			changed(e.Node, id)
		}
		return
	}
	if e.Type != "container" || e.Actor.ID == "" {
		return
	}
	k := ref{e.Node, e.Actor.ID}
	cur, known := s.m[k]
	if known && cur.seq >= seq {
		return // already reflected
	}
	attrs := e.Actor.Attributes
	if e.Action == "destroy" {
		if !known {
			return
		}
		delete(s.m, k)
		changed(k.node, k.id)
		return
	}
	if e.Action == event.ActionState {
		s.m[k] = &entry{seq: seq, state: stateName(e.ActionDetail), health: attrs["health"], name: attrs["name"], image: attrs["image"],
			labels: labelsOf(attrs), at: e.Time}
		changed(k.node, k.id)
		return
	}
	state, health, labels := "", "", map[string]string(nil)
	if known {
		state, health, labels = cur.state, cur.health, cur.labels
	}
	switch e.Action {
	case "create":
		state, health, labels = Created, "", labelsOf(attrs)
	case "start", "restart", "unpause":
		if e.Action != "unpause" && health != "" {
			health = "starting" // the engine starts a container's check over
		}
		state = Running
	case "pause":
		state = Paused
	case "die":
		state, health = Exited, "" // `docker ps` shows no health for a stopped container
	case "health_status":
		if !known {
			return
		}
		health = e.ActionDetail
	case "exec_create", "exec_start", "exec_die":
		// A health-check exec says the container has a check: until its
		// first result the engine calls the health "starting".
		if !known || health != "" || state != Running || attrs[event.AttrHealthcheck] != "true" {
			return
		}
		health = "starting"
	case "rename":
		if !known {
			return
		}
	default: // kill, stop, oom, attach, top, update, …: nothing `docker ps -a` shows
		return
	}
	if labels == nil {
		labels = labelsOf(attrs)
	}
	name, image := attrs["name"], attrs["image"]
	if known {
		if name == "" {
			name = cur.name
		}
		if image == "" {
			image = cur.image
		}
		// Reused: nothing else holds it (built States are their own).
		*cur = entry{seq: seq, state: stateName(state), health: health, name: name, image: image, labels: labels, at: e.Time}
	} else {
		s.m[k] = &entry{seq: seq, state: stateName(state), health: health, name: name, image: image, labels: labels, at: e.Time}
	}
	changed(k.node, k.id)
}

// stateName is the state as a container.state event names it.
func stateName(state string) string {
	if state == "" {
		return "unknown"
	}
	return state
}

// labelsOf keeps the attributes of a container event that are labels.
func labelsOf(attrs map[string]string) map[string]string {
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		if !notLabels[k] && !slices.Contains(event.OwnAttributes, k) {
			out[k] = v
		}
	}
	return out
}

// stateEvent is the container.state event of container id of node:
// state, health and labels, name and image, at time t.
func stateEvent(node, id, state, health, name, image string, labels map[string]string, t time.Time) event.Event {
	attrs := make(map[string]string, len(labels)+3)
	for k, v := range labels {
		attrs[k] = v
	}
	attrs["name"] = name
	attrs["image"] = image
	attrs["health"] = health
	return event.New(node, "container", event.ActionState, state, id, attrs, t)
}

package containerstate

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

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

// Set is the state of many containers. The zero value is empty and ready.
type Set struct {
	m map[ref]*State
}

// Len is the number of containers.
func (s *Set) Len() int { return len(s.m) }

// Get returns the state of container id of node.
func (s *Set) Get(node, id string) (State, bool) {
	st, ok := s.m[ref{node, id}]
	if !ok {
		return State{}, false
	}
	return *st, true
}

// Put sets a container's state as it is (a bucket entry).
func (s *Set) Put(st State) {
	if s.m == nil {
		s.m = map[ref]*State{}
	}
	s.m[ref{st.Node(), st.ID()}] = &st
}

// Delete forgets a container.
func (s *Set) Delete(node, id string) { delete(s.m, ref{node, id}) }

// All returns every state, ordered by node, then sequence, then id.
func (s *Set) All() []State {
	out := make([]State, 0, len(s.m))
	for _, st := range s.m {
		out = append(out, *st)
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
	if s.m == nil {
		s.m = map[ref]*State{}
	}
	if e.Type == event.TypeDockcast && e.Action == event.ActionGap {
		var out []Change
		for k, st := range s.m {
			if k.node == e.Node && st.Seq < seq {
				delete(s.m, k)
				out = append(out, Change{Node: k.node, ID: k.id})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out
	}
	if e.Type != "container" || e.Actor.ID == "" {
		return nil
	}
	k := ref{e.Node, e.Actor.ID}
	cur, known := s.m[k]
	if known && cur.Seq >= seq {
		return nil // already reflected
	}
	if e.Action == "destroy" {
		if !known {
			return nil
		}
		delete(s.m, k)
		return []Change{{Node: k.node, ID: k.id}}
	}
	if e.Action == event.ActionState {
		st := State{Seq: seq, Event: stateEvent(e, e.ActionDetail, e.Actor.Attributes["health"], labelsOf(e.Actor.Attributes))}
		s.m[k] = &st
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
			health = "starting" // the engine starts a container's check over
		}
		state = Running
	case "pause":
		state = Paused
	case "die":
		state, health = Exited, "" // `docker ps` shows no health for a stopped container
	case "health_status":
		if !known {
			return nil
		}
		health = e.ActionDetail
	case "exec_create", "exec_start", "exec_die":
		// A health-check exec says the container has a check: until its
		// first result the engine calls the health "starting".
		if !known || health != "" || state != Running || e.Actor.Attributes[event.AttrHealthcheck] != "true" {
			return nil
		}
		health = "starting"
	case "rename":
		if !known {
			return nil
		}
	default: // kill, stop, oom, attach, top, update, …: nothing `docker ps -a` shows
		return nil
	}
	if labels == nil {
		labels = labelsOf(e.Actor.Attributes)
	}
	st := State{Seq: seq, Event: stateEvent(e, state, health, labels)}
	if known {
		for _, a := range []string{"name", "image"} {
			if st.Event.Actor.Attributes[a] == "" {
				st.Event.Actor.Attributes[a] = cur.Event.Actor.Attributes[a]
			}
		}
	}
	s.m[k] = &st
	return []Change{{Node: k.node, ID: k.id, State: &st}}
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

// stateEvent is the container.state event of e's container: state, health
// and labels, with name and image from e, at e's time.
func stateEvent(e *event.Event, state, health string, labels map[string]string) event.Event {
	attrs := make(map[string]string, len(labels)+3)
	for k, v := range labels {
		attrs[k] = v
	}
	attrs["name"] = e.Actor.Attributes["name"]
	attrs["image"] = e.Actor.Attributes["image"]
	attrs["health"] = health
	if state == "" {
		state = "unknown"
	}
	return event.New(e.Node, "container", event.ActionState, state, e.Actor.ID, attrs, e.Time)
}

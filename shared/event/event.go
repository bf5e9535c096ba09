// Package event defines the payload dockcast publishes for every Docker
// event: one JSON object per NATS message (schema version 1).
//
// A Go consumer decodes a message with Decode:
//
//	ev, err := event.Decode(msg.Data)
//
// The publisher builds events with FromDocker (engine events) and New
// (dockcast's own synthetic events: gap, lost and container state).
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/subject"
)

// Version is the schema version written in the "v" field.
const Version = 1

// Types and actions of the synthetic events the publisher makes.
const (
	TypeDockcast = "dockcast" // type of dockcast's own events
	ActionGap    = "gap"      // a possible gap in the node's history
	ActionLost   = "lost"     // an event that can never be stored, in its place
	ActionState  = "state"    // the state of one container after a gap (type container)
)

// Attributes dockcast itself adds to engine events (see the contract's
// "Health checks"). They are not Docker's: a consumer that wants the
// engine's own view (Docker's events API) leaves them out.
const (
	// AttrHealthcheck is "true" on the exec_create, exec_start and
	// exec_die events of a container's own health check.
	AttrHealthcheck = "dockcast.healthcheck"
	// AttrCommand is the health check's command, on its exec_die events.
	AttrCommand = "dockcast.command"
)

// OwnAttributes lists the attributes dockcast adds to engine events.
var OwnAttributes = []string{AttrHealthcheck, AttrCommand}

// Event is one Docker event as carried on the bus.
type Event struct {
	V            int    `json:"v"`
	ID           string `json:"id"`
	Node         string `json:"node"`
	Type         string `json:"type"`
	Action       string `json:"action"`
	ActionDetail string `json:"action_detail"`
	Actor        Actor  `json:"actor"`
	Scope        string `json:"scope"`
	// Time is the event's time (RFC 3339 with nanoseconds when marshalled).
	Time time.Time `json:"time"`
	// TimeNano is Time in nanoseconds since the Unix epoch.
	TimeNano int64 `json:"time_nano"`
}

// Actor is the object the event is about.
type Actor struct {
	ID         string            `json:"id"`
	Attributes map[string]string `json:"attributes"`
}

// DockerAction is Docker's full Action of the event: "health_status: unhealthy"
// for action "health_status" with detail "unhealthy".
func (e *Event) DockerAction() string {
	if e.ActionDetail == "" {
		return e.Action
	}
	return e.Action + ": " + e.ActionDetail
}

// Subject is the NATS subject the event is published on.
func (e *Event) Subject() string {
	return subject.For(e.Node, e.Type, e.Action)
}

// Marshal encodes the event as its JSON payload (AppendJSON).
func (e *Event) Marshal() ([]byte, error) {
	b, err := e.AppendJSON(make([]byte, 0, e.sizeHint()))
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	return b, nil
}

// Decode parses a payload and checks that it is a version 1 event.
func Decode(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if e.V != Version {
		return Event{}, fmt.Errorf("decode event: unsupported schema version %d", e.V)
	}
	if e.Type == "" || e.Action == "" {
		return Event{}, errors.New("decode event: missing type or action")
	}
	return e, nil
}

// ID derives the deduplication id of an event from the node, its time in
// nanoseconds, its type, Docker's full action and the actor id. The same
// Docker event always gets the same id, so JetStream drops a second publish.
func ID(node string, timeNano int64, typ, dockerAction, actorID string) string {
	var buf [512]byte // on the stack for all but very long actions
	b := buf[:0]
	var num [20]byte
	for _, part := range [...]string{node, string(strconv.AppendInt(num[:0], timeNano, 10)), typ, dockerAction, actorID} {
		b = strconv.AppendInt(b, int64(len(part)), 10)
		b = append(b, ':')
		b = append(b, part...)
	}
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// FromDocker converts an engine event into the bus payload for node.
// It accepts the legacy fields (Status, ID, From) of old engines.
func FromDocker(node string, m events.Message) Event {
	attrs := make(map[string]string, len(m.Actor.Attributes)+1)
	for k, v := range m.Actor.Attributes {
		attrs[k] = v
	}
	m.Actor.Attributes = attrs
	return FromDockerMessage(node, &m)
}

// FromDockerMessage is FromDocker for a message the caller hands over:
// the event takes m's attribute map as its own (adding "image" to it for
// an old engine's event) instead of copying it, so the caller must not
// use the map afterwards. The publisher's reader decodes every event into
// a new map and hands it over.
func FromDockerMessage(node string, m *events.Message) Event {
	timeNano := m.TimeNano
	if timeNano == 0 {
		timeNano = m.Time * int64(time.Second)
	}
	typ := strings.TrimSpace(string(m.Type))
	if typ == "" {
		typ = "container"
	}
	full := string(m.Action)
	if full == "" {
		full = m.Status
	}
	actorID := m.Actor.ID
	if actorID == "" {
		actorID = m.ID
	}
	attrs := m.Actor.Attributes
	if attrs == nil {
		attrs = make(map[string]string, 1)
	}
	if _, ok := attrs["image"]; !ok && m.From != "" && typ == "container" {
		attrs["image"] = m.From
	}
	action, detail := subject.Action(full)
	return Event{
		V:            Version,
		ID:           ID(node, timeNano, typ, full, actorID),
		Node:         node,
		Type:         typ,
		Action:       action,
		ActionDetail: detail,
		Actor:        Actor{ID: actorID, Attributes: attrs},
		Scope:        m.Scope,
		Time:         time.Unix(0, timeNano).UTC(),
		TimeNano:     timeNano,
	}
}

// New makes one of dockcast's own events (gap, container state) at time t.
// Its id is derived like an engine event's.
func New(node, typ, action, detail, actorID string, attrs map[string]string, t time.Time) Event {
	if attrs == nil {
		attrs = map[string]string{}
	}
	e := Event{
		V:            Version,
		Node:         node,
		Type:         typ,
		Action:       action,
		ActionDetail: detail,
		Actor:        Actor{ID: actorID, Attributes: attrs},
		Scope:        "local",
		Time:         t.UTC(),
		TimeNano:     t.UnixNano(),
	}
	e.ID = ID(node, e.TimeNano, typ, e.DockerAction(), actorID)
	return e
}

// SinceArg formats nanoseconds since the epoch the way Docker's since and
// until parameters take them: "%d.%09d" (seconds.nanoseconds).
func SinceArg(timeNano int64) string {
	return fmt.Sprintf("%d.%09d", timeNano/int64(time.Second), timeNano%int64(time.Second))
}

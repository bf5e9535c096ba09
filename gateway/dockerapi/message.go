package dockerapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/event"
)

// Message converts a dockcast event back into the engine's own event, as
// Docker Engine 20.10 (API 1.41) sends it on /events:
//
//   - Type, Action (Docker's full action, "health_status: unhealthy"),
//     Actor (id and attributes), scope, time (seconds) and timeNano;
//   - the legacy fields Docker still fills: status (the action) and id (the
//     actor's id) on container and image events, and from (the image) on
//     container events;
//   - without the attributes dockcast adds (event.OwnAttributes). A
//     container's own labels stay, whatever their names.
func Message(e *event.Event) events.Message {
	attrs := make(map[string]string, len(e.Actor.Attributes))
	for k, v := range e.Actor.Attributes {
		if !slices.Contains(event.OwnAttributes, k) {
			attrs[k] = v
		}
	}
	m := events.Message{
		Type:     events.Type(e.Type),
		Action:   events.Action(e.DockerAction()),
		Actor:    events.Actor{ID: e.Actor.ID, Attributes: attrs},
		Scope:    e.Scope,
		Time:     time.Unix(0, e.TimeNano).Unix(),
		TimeNano: e.TimeNano,
	}
	// As the engine's events.Log does (daemon/events/events.go).
	switch m.Type {
	case events.ContainerEventType:
		m.Status, m.ID, m.From = string(m.Action), m.Actor.ID, attrs["image"]
	case events.ImageEventType:
		m.Status, m.ID = string(m.Action), m.Actor.ID
	}
	return m
}

// AppendLine appends the event's line of Docker's /events stream to dst:
// the JSON of Message(e), encoded as the engine's json.Encoder does (HTML
// characters escaped), and a newline.
func AppendLine(dst []byte, e *event.Event) ([]byte, error) {
	b, err := json.Marshal(Message(e))
	if err != nil {
		return dst, fmt.Errorf("encode event %s for the Docker API: %w", e.ID, err)
	}
	dst = append(dst, b...)
	return append(dst, '\n'), nil
}

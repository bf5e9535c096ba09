package testkit

import (
	"encoding/json"
	"strconv"

	"github.com/docker/docker/api/types/events"

	"github.com/dockcast/dockcast/shared/event"
)

// appendMessage appends m as the engine writes it on /events: the bytes of
// json.Encoder's Encode (encoding/json's, field order and omitempty of
// events.Message, attribute keys sorted, HTML characters escaped, a
// newline), without reflection, so that the stand-in engine costs little
// of the CPU it shares with the publisher it feeds.
func appendMessage(dst []byte, m *events.Message) []byte {
	dst = append(dst, '{')
	field := func(key string) {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, '"', ':')
	}
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		field(key)
		dst = event.AppendString(dst, v)
	}
	str("status", m.Status, true)
	str("id", m.ID, true)
	str("from", m.From, true)
	str("Type", string(m.Type), false)
	str("Action", string(m.Action), false)
	field("Actor")
	dst = append(dst, `{"ID":`...)
	dst = event.AppendString(dst, m.Actor.ID)
	dst = append(dst, `,"Attributes":`...)
	dst = event.AppendAttributes(dst, m.Actor.Attributes)
	dst = append(dst, '}')
	str("scope", m.Scope, true)
	for _, f := range []struct {
		key string
		v   int64
	}{{"time", m.Time}, {"timeNano", m.TimeNano}} {
		if f.v != 0 {
			field(f.key)
			dst = strconv.AppendInt(dst, f.v, 10)
		}
	}
	return append(dst, '}', '\n')
}

// marshalMessage is json.Encoder's encoding of m, for the tests of
// appendMessage.
func marshalMessage(m *events.Message) ([]byte, error) {
	b, err := json.Marshal(m)
	return append(b, '\n'), err
}

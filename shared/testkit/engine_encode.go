package testkit

import (
	"encoding/json"
	"slices"
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
	if m.Actor.Attributes == nil {
		dst = append(dst, "null"...)
	} else {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = event.AppendString(dst, k)
			dst = append(dst, ':')
			dst = event.AppendString(dst, m.Actor.Attributes[k])
		}
		dst = append(dst, '}')
	}
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

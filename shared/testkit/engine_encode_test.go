package testkit

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/docker/docker/api/types/events"
)

func TestFakeEngineEncodesEventsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	msgs := []events.Message{
		{},
		Container("start", "abc", "web-1", map[string]string{"com.docker.compose.project": "shop", "weird": "<a&b> \"q\" \\ é ☃ 😀 \u2028 \x01 \xff"}),
		{Type: "network", Action: "connect", Actor: events.Actor{ID: "n", Attributes: map[string]string{}}, Scope: "local", Time: 1, TimeNano: -5},
		{Status: "x", Action: "health_status: healthy", Actor: events.Actor{Attributes: map[string]string{"": ""}}},
		{ID: "only-id", From: "img"},
	}
	for _, m := range msgs {
		want, err := marshalMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(&m); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, buf.Bytes()) {
			t.Fatalf("json.Marshal and the Encoder differ: %s / %s", want, buf.Bytes())
		}
		if got := appendMessage(nil, &m); !bytes.Equal(got, want) {
			t.Errorf("appendMessage\n got %s\nwant %s", got, want)
		}
	}
}

package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// engineOutput is /events as a real engine (20.10.24, API 1.41) wrote it:
// a container with a label that needs escapes (<, &, >, quotes, a
// backslash) and non-ASCII text, created, started, dead and removed.
func engineOutput(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/engine-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tricky objects: each must decode as encoding/json decodes it, whichever
// path takes it.
var tricky = []string{
	`{}`,
	` { "Type" : "container" , "Action":"start" } `,
	`{"Type":"container","type":"image"}`,                                          // case-insensitive names: json's call
	`{"TYPE":"x","ACTION":"y","actor":{"id":"z"}}`,                                 // likewise
	`{"status":"a","status":"b","time":1,"time":2}`,                                // the last wins
	`{"Actor":{"ID":"a","Attributes":{"k":"1"}},"Actor":{"Attributes":{"j":"2"}}}`, // merged
	`{"Actor":{"Attributes":{"k":"1"}},"Actor":{"Attributes":null}}`,
	`{"Actor":null,"Type":null,"time":null,"Action":"x"}`,
	`{"Actor":{"Attributes":{}}}`,
	`{"Actor":{"Attributes":{"k":null}}}`,
	`{"Actor":{"Attributes":{"k":1}}}`,
	`{"time":1.5}`, `{"time":1e3}`, `{"time":-0}`, `{"time":01}`, `{"time":-}`,
	`{"time":9223372036854775807}`, `{"time":9223372036854775808}`, `{"timeNano":-123456789012345678}`,
	`{"time":"1"}`, `{"status":1}`, `{"Actor":"x"}`, `{"Actor":{"Attributes":[]}}`,
	`{"id":"\u00e9\ud83d\ude00\ud800 \/ \b\f\n\r\t"}`,
	"{\"id\":\"\xff\xfe raw invalid UTF-8\"}",
	"{\"id\":\"é ☃ 😀 raw UTF-8\"}",
	"{\"id\":\"a\x01b\"}",
	`{"id":"\x"}`, `{"id":"unterminated}`, `{"id":"a",}`, `{,"id":"a"}`, `{"id" "a"}`, `{"id":"a"}x`,
	`{"extra":{"nested":[1,2,{"a":"}"}]},"Type":"container"}`,
	`{"Action":"health_status: healthy","Actor":{"ID":"c","Attributes":{"a\"b":"c\\d"}}}`,
	`null`, `[]`, `"x"`, ``, `{`, `}`,
}

// viaJSON is what encoding/json makes of one object.
func viaJSON(data []byte) (events.Message, error) {
	var m events.Message
	err := json.Unmarshal(data, &m)
	return m, err
}

// checkFast fails if decodeFast takes data and makes anything else of it
// than encoding/json does.
func checkFast(t *testing.T, data []byte) bool {
	t.Helper()
	var m events.Message
	if !decodeFast(data, &m) {
		return false
	}
	want, err := viaJSON(data)
	if err != nil {
		t.Fatalf("decodeFast took %q, which encoding/json refuses: %v", data, err)
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decodeFast(%q)\n got %#v\nwant %#v", data, m, want)
	}
	return true
}

func TestDecodeFastTakesEngineOutputAsEncodingJSON(t *testing.T) {
	t.Parallel()
	lines := bytes.Split(bytes.TrimSpace(engineOutput(t)), []byte("\n"))
	if len(lines) < 4 {
		t.Fatalf("testdata has %d events", len(lines))
	}
	for _, line := range lines {
		if !checkFast(t, line) {
			t.Errorf("the engine's own output is not taken by the fast path: %s", line)
		}
	}
}

func TestDecodeFastTrickyObjects(t *testing.T) {
	t.Parallel()
	taken := 0
	for _, s := range tricky {
		if checkFast(t, []byte(s)) {
			taken++
		}
	}
	if taken < 10 {
		t.Fatalf("only %d of the tricky objects taken by the fast path", taken)
	}
}

// decodeAll reads a whole stream with d, as the watcher does.
func decodeAll(next func(*events.Message) error) ([]events.Message, error) {
	var out []events.Message
	for {
		var m events.Message
		if err := next(&m); err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// viaJSONDecoder reads a whole stream as the Docker client does.
func viaJSONDecoder(r io.Reader) ([]events.Message, error) {
	dec := json.NewDecoder(r)
	return decodeAll(func(m *events.Message) error { return dec.Decode(m) })
}

// sameStream checks that messageDecoder reads stream as json.Decoder does,
// whole and in reads of one byte, and that the stream ends as it does.
func sameStream(t *testing.T, stream []byte) {
	t.Helper()
	want, wantErr := viaJSONDecoder(bytes.NewReader(stream))
	for _, r := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream)), iotest.HalfReader(bytes.NewReader(stream))} {
		got, err := decodeAll(newMessageDecoder(r).Decode)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %q:\n got %#v\nwant %#v", stream, got, want)
		}
		if (err == io.EOF) != (wantErr == io.EOF) || (err == io.ErrUnexpectedEOF) != (wantErr == io.ErrUnexpectedEOF) {
			t.Fatalf("stream %q ends with %v, encoding/json with %v", stream, err, wantErr)
		}
	}
}

func TestMessageDecoderReadsStreamsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	engine := engineOutput(t)
	sameStream(t, engine)
	// The same events, pretty-printed (objects over many lines), with
	// several on one line, with \r\n, and cut in the middle of one.
	var pretty bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimSpace(engine), []byte("\n")) {
		if err := json.Indent(&pretty, line, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteString("\n")
	}
	sameStream(t, pretty.Bytes())
	sameStream(t, bytes.ReplaceAll(engine, []byte("\n"), []byte(" ")))
	sameStream(t, bytes.ReplaceAll(engine, []byte("\n"), []byte("\r\n")))
	sameStream(t, engine[:len(engine)/2])
	sameStream(t, nil)
	sameStream(t, []byte(" \n\t"))
	var objects []string
	for _, s := range tricky {
		if _, err := viaJSON([]byte(s)); err == nil && strings.HasPrefix(strings.TrimSpace(s), "{") {
			objects = append(objects, s)
		}
	}
	sameStream(t, []byte(strings.Join(objects, "\n")+"\n"))
	// An event larger than the first buffer.
	big := map[string]string{}
	for i := range 3000 {
		big[fmt.Sprintf("com.example.label-%05d", i)] = strings.Repeat("v", 40)
	}
	large, err := json.Marshal(events.Message{Type: "container", Action: "start", Actor: events.Actor{ID: "x", Attributes: big}})
	if err != nil {
		t.Fatal(err)
	}
	if len(large) <= 64<<10 {
		t.Fatalf("the large event has only %d bytes", len(large))
	}
	sameStream(t, append(append(append([]byte{}, engine...), large...), engine...))
}

func TestMessageDecoderRefusesANonObject(t *testing.T) {
	t.Parallel()
	_, err := decodeAll(newMessageDecoder(strings.NewReader(`{"Type":"container"}` + "\n[1]\n")).Decode)
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("a stream with a non-object ends with %v", err)
	}
	_, err = decodeAll(newMessageDecoder(strings.NewReader(`{"time":"x"}` + "\n")).Decode)
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Fatalf("a badly typed field ends the stream with %v, not encoding/json's error", err)
	}
}

// FuzzDecodeFast: whatever the fast path takes, it decodes as
// encoding/json does; a stream of the input is read without panics.
// Seeds: the engine's own output and the tricky objects.
func FuzzDecodeFast(f *testing.F) {
	for _, line := range bytes.Split(bytes.TrimSpace(engineOutput(f)), []byte("\n")) {
		f.Add(line)
	}
	for _, s := range tricky {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data)
		if len(data) > 0 && data[0] == '{' {
			want, wantErr := viaJSONDecoder(bytes.NewReader(data))
			got, _ := decodeAll(newMessageDecoder(iotest.HalfReader(bytes.NewReader(data))).Decode)
			if wantErr == io.EOF && !reflect.DeepEqual(got, want) {
				t.Fatalf("stream %q:\n got %#v\nwant %#v", data, got, want)
			}
		}
	})
}

// TestEventsFromTheRealEngine reads a real engine's /events both ways: the
// Docker client's Events (encoding/json) and openEvents (this package's
// decoder) give the same messages.
func TestEventsFromTheRealEngine(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	label := testkit.Unique("decode")
	from := time.Now().Add(-time.Second)
	id := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-decode"), Start: true, Args: []string{"sleep", "10ms"},
		Labels: map[string]string{"dockcast.test": label, "weird": `<a&b> "q" \ é ☃ 😀`, "com.docker.compose.project": "shop"}})
	testkit.WaitExited(t, cli, id)
	opts := events.ListOptions{Since: event.SinceArg(from.UnixNano()), Until: event.SinceArg(time.Now().UnixNano()),
		Filters: filters.NewArgs(filters.Arg("label", "dockcast.test="+label))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []events.Message
	msgs, errs := cli.Events(ctx, opts)
	for done := false; !done; {
		select {
		case m := <-msgs:
			want = append(want, m)
		case err := <-errs:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			done = true
		}
	}
	s, err := openEvents(ctx, cli, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := decodeAll(s.Next)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("the stream ended with %v", err)
	}
	if len(want) < 2 || !reflect.DeepEqual(got, want) {
		t.Fatalf("openEvents:\n got %#v\nwant %#v", got, want)
	}
	if got[0].Actor.Attributes["weird"] != `<a&b> "q" \ é ☃ 😀` {
		t.Fatalf("the label came back as %q", got[0].Actor.Attributes["weird"])
	}
}

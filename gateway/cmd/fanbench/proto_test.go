package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestScanEventReadsIndexAndTimeInEveryEnvelope(t *testing.T) {
	t.Parallel()
	at := time.Unix(1764097465, 217300886)
	m, err := benchEvent(4711, at)
	if err != nil {
		t.Fatal(err)
	}
	payload := m.Data
	if len(payload) != 781 {
		t.Errorf("payload is %d bytes; the docs say 781 (update them with the attributes)", len(payload))
	}
	envelopes := map[string][]byte{
		"payload (NATS)":  payload,
		"dockcast frame":  append(append([]byte(`{"type":"event","seq":9,"subject":"docker.events.bench.container.start","event":`), payload...), '}'),
		"centrifugo push": append(append([]byte(`{"push":{"channel":"docker_events","pub":{"data":`), payload...), []byte(`}}}`)...),
	}
	for name, b := range envelopes {
		n, sent, ok := scanEvent(b)
		if !ok || n != 4711 || sent != at.UnixNano() {
			t.Errorf("%s: scanEvent = %d, %d, %v; want 4711, %d, true", name, n, sent, ok, at.UnixNano())
		}
	}
	for _, bad := range []string{``, `{"actor":{"id":"x12"}}`, `{"actor":{"id":"12"}}`, `{"actor":{"id":"12"},"time_nano":}`,
		`{"actor":{"id":"99999999999999999999"},"time_nano":1}`} {
		if _, _, ok := scanEvent([]byte(bad)); ok {
			t.Errorf("scanEvent(%q) accepted", bad)
		}
	}
}

func TestDockcastLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line string
		kind frameKind
		text string
	}{
		{`{"type":"event","seq":1,"subject":"s","event":{}}`, kindEvent, ""},
		{`{"type":"live","seq":5,"epoch":"1"}`, kindReady, ""},
		{`{"type":"status","status":{}}`, kindOther, ""},
		{`{"type":"bookmark","seq":3}`, kindOther, ""},
		{`{"type":"error","code":"slow_consumer","message":"m","resume_from_seq":4}`, kindError, "slow_consumer"},
		{`{"type":"error",`, kindError, "undecodable error frame"},
	}
	for _, c := range cases {
		if k, text := dockcastLine([]byte(c.line)); k != c.kind || text != c.text {
			t.Errorf("dockcastLine(%s) = %v %q, want %v %q", c.line, k, text, c.kind, c.text)
		}
	}
}

func TestEachLineSplitsBatchedFrames(t *testing.T) {
	t.Parallel()
	var got []string
	eachLine([]byte("a\nbb\n\nccc\n"), func(l []byte) { got = append(got, string(l)) })
	if strings.Join(got, "|") != "a|bb|ccc" {
		t.Fatalf("lines %q", got)
	}
	got = nil
	eachLine([]byte("single"), func(l []byte) { got = append(got, string(l)) })
	if len(got) != 1 || got[0] != "single" {
		t.Fatalf("lines %q", got)
	}
}

func TestCentrifugoLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line string
		kind frameKind
		err  bool
	}{
		{`{}`, kindPing, false},
		{`{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`, kindOther, false},
		{`{"id":2,"subscribe":{}}`, kindReady, false},
		{`{"push":{"channel":"docker_events","pub":{"data":{"v":1}}}}`, kindEvent, false},
		{`{"push":{"channel":"docker_events","join":{}}}`, kindOther, false},
		{`{"push":{"disconnect":{"code":3008,"reason":"slow"}}}`, kindError, true},
		{`{"id":2,"error":{"code":103,"message":"permission denied"}}`, kindError, true},
		{`not json`, kindError, true},
	}
	for _, c := range cases {
		k, text := centrifugoLine([]byte(c.line))
		if k != c.kind || (text != "") != c.err {
			t.Errorf("centrifugoLine(%s) = %v %q, want %v (error text %v)", c.line, k, text, c.kind, c.err)
		}
	}
	if got := string(centrifugoCommands("docker_events")); got != "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"docker_events\"}}" {
		t.Errorf("commands %q", got)
	}
}

type natsEvent struct {
	kind    frameKind
	payload string
}

func feedAll(t *testing.T, chunks [][]byte) ([]natsEvent, error) {
	t.Helper()
	var p natsParser
	var got []natsEvent
	for _, c := range chunks {
		if err := p.feed(c, func(k frameKind, payload []byte) {
			got = append(got, natsEvent{k, string(payload)})
		}); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestNATSParserAcrossFrameBoundaries(t *testing.T) {
	t.Parallel()
	stream := []byte("INFO {\"server_id\":\"x\"}\r\n+OK\r\nPONG\r\nMSG docker.events.a.container.start 1 5\r\nhello\r\n" +
		"PING\r\nMSG s 1 reply.to 3\r\nabc\r\nHMSG s 1 12 15\r\nNATS/1.0\r\n\r\nxyz\r\nMSG s 1 0\r\n\r\n-ERR 'Slow Consumer'\r\n")
	want := []natsEvent{{kindOther, ""}, {kindOther, ""}, {kindReady, ""}, {kindEvent, "hello"}, {kindPing, ""},
		{kindEvent, "abc"}, {kindEvent, "xyz"}, {kindEvent, ""}, {kindError, "'Slow Consumer'"}}
	// Every way of cutting the stream in two, and byte by byte.
	for cut := 0; cut <= len(stream); cut++ {
		got, err := feedAll(t, [][]byte{stream[:cut], stream[cut:]})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cut at %d: %v %v, want %v", cut, got, err, want)
		}
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	if got, err := feedAll(t, bytewise); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("byte by byte: %v %v", got, err)
	}
}

func TestNATSParserRejectsMalformedStreams(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"BOGUS\r\n",
		"MSG s 1\r\n",
		"MSG s 1 x\r\n",
		"MSG s 1 3\r\nabcd\r\n",
		"HMSG s 1 20 10\r\n",
		"MSG a b c d e\r\n",
		strings.Repeat("x", 5000),
	} {
		if _, err := feedAll(t, [][]byte{[]byte(bad)}); err == nil {
			t.Errorf("%q accepted", truncate(bad, 40))
		}
	}
	if got := string(natsCommands("docker.events.>")); !strings.Contains(got, "\r\nSUB docker.events.> 1\r\nPING\r\n") || !strings.Contains(got, `"headers":false`) {
		t.Errorf("commands %q", got)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	v := make([]int64, 100)
	for i := range v {
		v[i] = int64(i + 1)
	}
	for _, c := range []struct{ p, want int }{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(v, c.p); got != int64(c.want) {
			t.Errorf("p%d = %d, want %d", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 || percentile([]int64{7}, 99) != 7 {
		t.Error("edge cases")
	}
}

func TestComponentAttributesThroughHelpers(t *testing.T) {
	t.Parallel()
	if c, _ := componentOf([]string{"runtime.makeslice", "bufio.NewReaderSize", "github.com/gorilla/websocket.newConn", "github.com/olahol/melody.(*Melody).HandleRequestWithKeys"}); c != "gorilla/websocket: Conn, read/write buffers" {
		t.Errorf("gorilla buffer attributed to %q", c)
	}
	if c, _ := componentOf([]string{"runtime.malg", "runtime.newproc1"}); c != "runtime: goroutine descriptors" {
		t.Errorf("goroutine attributed to %q", c)
	}
	if c, site := componentOf([]string{"runtime.newobject", "example.com/x.f"}); c != "other" || site != "example.com/x.f" {
		t.Errorf("unknown attributed to %q %q", c, site)
	}
}

func FuzzNATSParser(f *testing.F) {
	f.Add([]byte("MSG s 1 5\r\nhello\r\nPING\r\n"), 3)
	f.Add([]byte("HMSG s 1 12 15\r\nNATS/1.0\r\n\r\nxyz\r\n"), 7)
	f.Add([]byte("INFO {}\r\n-ERR 'x'\r\n"), 0)
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		if cut < 0 || cut > len(stream) {
			cut = len(stream) / 2
		}
		whole, errWhole := feedAll(t, [][]byte{stream})
		split, errSplit := feedAll(t, [][]byte{stream[:cut], stream[cut:]})
		// Where the whole stream parses, any cut gives the same messages.
		if errWhole == nil && (errSplit != nil || fmt.Sprint(whole) != fmt.Sprint(split)) {
			t.Fatalf("cut %d: %v %v vs whole %v", cut, split, errSplit, whole)
		}
	})
}

func FuzzScanners(f *testing.F) {
	m, _ := benchEvent(1, time.Unix(0, 5))
	f.Add(m.Data)
	f.Add([]byte(`{"type":"error","code":"x"}`))
	f.Add([]byte(`{"push":{"pub":{}}}` + "\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = scanEvent(b)
		eachLine(b, func(line []byte) {
			if bytes.IndexByte(line, '\n') >= 0 || len(line) == 0 {
				t.Fatalf("line %q", line)
			}
			_, _ = dockcastLine(line)
			_, _ = centrifugoLine(line)
		})
	})
}

func TestDockcastErrorAndResumeURL(t *testing.T) {
	t.Parallel()
	code, resume := dockcastError([]byte(`{"type":"error","code":"slow_consumer","message":"m","resume_from_seq":42,"epoch":"1"}`))
	if code != "slow_consumer" || resume != 42 {
		t.Fatalf("dockcastError = %q %d", code, resume)
	}
	if code, resume := dockcastError([]byte(`{"type":"error","code":"stream_reset"}`)); code != "stream_reset" || resume != 0 {
		t.Fatalf("dockcastError = %q %d", code, resume)
	}
	u, err := withFromSeq("ws://127.0.0.1:1/ws?filter=type%3Dcontainer&from_seq=3", 42)
	if err != nil || u != "ws://127.0.0.1:1/ws?filter=type%3Dcontainer&from_seq=42" {
		t.Fatalf("withFromSeq = %q %v", u, err)
	}
}

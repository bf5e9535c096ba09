package sse

import (
	"bufio"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	t.Parallel()
	good := map[string]Cursor{
		"1796121000123456789:42": {"1796121000123456789", 42},
		"1796121000123456789:0":  {"1796121000123456789", 0},
		"1:18446744073709551614": {"1", math.MaxUint64 - 1},
		"9223372036854775807:1":  {"9223372036854775807", 1},
	}
	for in, want := range good {
		got, err := ParseCursor(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseCursor(%q) = %+v, %v", in, got, err)
		}
	}
	bad := map[string]string{
		"":                          "empty event id",
		"42":                        "no ':'",
		":42":                       "epoch \"\" is not a stream epoch",
		"abc:42":                    "epoch \"abc\" is not a stream epoch",
		"0:42":                      "epoch \"0\" is not a stream epoch",
		"0179:42":                   "epoch \"0179\" is not a stream epoch",
		"-5:42":                     "epoch \"-5\"",
		"9223372036854775808:1":     "epoch \"9223372036854775808\"",
		"1796121000123456789:":      "seq \"\" is not a stream sequence",
		"1796121000123456789:-1":    "seq \"-1\"",
		"1796121000123456789:+1":    "seq \"+1\"",
		"1796121000123456789:007":   "seq \"007\"",
		"1796121000123456789:1:2":   "seq \"1:2\"",
		"1796121000123456789: 1":    "seq \" 1\"",
		"1:18446744073709551615":    "below 2^64-1",
		"1:18446744073709551616":    "seq \"18446744073709551616\"",
		"1796121000123456789:4\x00": `seq "4\x00"`,
		strings.Repeat("1", 70):     "longer than 64 bytes",
	}
	for in, want := range bad {
		if _, err := ParseCursor(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCursor(%q): %v, want %q", in, err, want)
		}
	}
	if c, _ := ParseCursor("1796121000123456789:41"); c.FromSeq() != 42 {
		t.Errorf("FromSeq %d", c.FromSeq())
	}
}

func TestResumeFrom(t *testing.T) {
	t.Parallel()
	hdr := func(v ...string) http.Header { return http.Header{"Last-Event-Id": v} }
	cases := []struct {
		name   string
		h      http.Header
		q      url.Values
		want   *Resume
		errHas string
	}{
		{"neither", nil, nil, nil, ""},
		{"header", hdr("17:5"), nil, &Resume{Cursor{"17", 5}, true}, ""},
		{"header wins", hdr("17:5"), url.Values{"last_event_id": {"17:2"}}, &Resume{Cursor{"17", 5}, true}, ""},
		{"header wins even over a bad query", hdr("17:5"), url.Values{"last_event_id": {"x"}}, &Resume{Cursor{"17", 5}, true}, ""},
		{"empty header is none", hdr(""), url.Values{"last_event_id": {"17:2"}}, &Resume{Cursor{"17", 2}, false}, ""},
		{"query", nil, url.Values{"last_event_id": {"17:2"}}, &Resume{Cursor{"17", 2}, false}, ""},
		{"bad header", hdr("17"), nil, nil, "Last-Event-ID: event id \"17\": no ':'"},
		{"two headers", hdr("17:1", "17:2"), nil, nil, "Last-Event-ID: given 2 times"},
		{"bad query", nil, url.Values{"last_event_id": {"x:1"}}, nil, "last_event_id: event id \"x:1\": epoch"},
		{"empty query", nil, url.Values{"last_event_id": {""}}, nil, "last_event_id: empty event id"},
		{"two queries", nil, url.Values{"last_event_id": {"17:1", "17:2"}}, nil, "last_event_id: given 2 times"},
	}
	for _, c := range cases {
		got, err := ResumeFrom(c.h, c.q)
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%s: %v, want %q", c.name, err, c.errHas)
			}
			continue
		}
		if err != nil || (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestFrameID(t *testing.T) {
	t.Parallel()
	const epoch = "1796121000123456789"
	cases := []struct {
		typ, code string
		want      string
	}{
		{"event", "", epoch + ":42"},
		{"live", "", epoch + ":42"},
		{"bookmark", "", epoch + ":42"},
		{"error", "stream_reset", epoch + ":0"},
		{"error", "slow_consumer", ""},
		{"status", "", ""},
		{"gap", "", ""},
		{"state", "", ""},
		{"snapshot_end", "", ""},
	}
	for _, c := range cases {
		if got := FrameID(c.typ, c.code, epoch, 42); got != c.want {
			t.Errorf("FrameID(%s, %s) = %q, want %q", c.typ, c.code, got, c.want)
		}
	}
}

// sseEvent is one message as a browser's EventSource dispatches it
// (the parsing rules of the HTML standard, for the fields used here).
type sseEvent struct{ event, data, id string }

func readEvents(t *testing.T, r *bufio.Reader, n int) (evs []sseEvent, comments []string) {
	t.Helper()
	var cur sseEvent
	for len(evs) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (after %d events)", err, len(evs))
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur.data != "" || cur.event != "" {
				evs = append(evs, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
			comments = append(comments, strings.TrimPrefix(strings.TrimPrefix(line, ":"), " "))
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				cur.event = value
			case "data":
				cur.data = value
			case "id":
				cur.id = value
			case "retry":
			default:
				t.Fatalf("unknown field in %q", line)
			}
		}
	}
	return evs, comments
}

func TestWriterOverHTTP(t *testing.T) {
	t.Parallel()
	next := make(chan Message)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := NewWriter(rw)
		if err := w.Flush(); err != nil { // the headers, at once
			t.Error(err)
			return
		}
		for {
			select {
			case m, ok := <-next:
				if !ok {
					return
				}
				if err := w.Send(m); err != nil {
					t.Error(err)
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()
	defer close(next)
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("headers %v", res.Header)
	}
	r := bufio.NewReader(res.Body)
	// Each message reaches the client as soon as it is sent (flushed):
	// the handler is still running when the client reads it.
	frames := []Message{
		{Event: "status", Data: []byte(`{"type":"status","status":{"node":"web-1"}}`)},
		{Event: "event", Data: []byte(`{"type":"event","seq":41,"subject":"docker.events.web-1.container.start","event":{"v":1}}`), ID: "17:41"},
		{Event: "live", Data: []byte(`{"type":"live","seq":41,"epoch":"17"}`), ID: "17:41", Retry: 2 * time.Second},
	}
	for _, m := range frames {
		next <- m
		evs, _ := readEvents(t, r, 1)
		if got := evs[0]; got.event != m.Event || got.data != string(m.Data) || got.id != m.ID {
			t.Fatalf("got %+v, sent %+v", got, m)
		}
	}
}

func TestWriterBytes(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	w := NewWriter(rec)
	if err := w.Append(Message{Event: "event", Data: []byte(`{"a":1}`), ID: "17:1", Retry: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := w.Comment("keep-alive"); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(Message{Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	want := "event: event\nid: 17:1\nretry: 1500\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: {}\n\n"
	if w.Buffered() != len(want) || rec.Body.Len() != 0 {
		t.Fatalf("buffered %d, sent %d before Flush", w.Buffered(), rec.Body.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := rec.Body.String(); got != want || !rec.Flushed || w.Buffered() != 0 {
		t.Fatalf("got %q (flushed %v)", got, rec.Flushed)
	}
	// A line break in any field would break the framing: refused, nothing added.
	for _, m := range []Message{
		{Event: "event", Data: []byte("{\n}")},
		{Event: "event", Data: []byte("{\r}")},
		{Event: "ev\nent", Data: []byte("{}")},
		{Event: "event", Data: []byte("{}"), ID: "1\n2"},
		{Event: "event", Data: []byte("{}"), ID: "1\x002"},
	} {
		if err := w.Append(m); err == nil || w.Buffered() != 0 {
			t.Errorf("Append(%q) accepted (%d bytes buffered)", m, w.Buffered())
		}
	}
	if err := w.Comment("a\nb"); !errors.Is(err, ErrNewline) || w.Buffered() != 0 {
		t.Errorf("Comment with a newline: %v", err)
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1796121000123456789:42", "1:0", "0:1", ":", "a:b", "1:18446744073709551615",
		"9223372036854775808:1", "01:1", "1:01", "1:2:3", "1796121000123456789:4\x00", " 1:1", "１:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if err.Error() == "" || strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("%q parsed to %+v, which prints %q", s, c, c.String())
		}
		if c.FromSeq() <= c.Seq {
			t.Fatalf("FromSeq %d after %d", c.FromSeq(), c.Seq)
		}
		if n, err := strconv.ParseInt(c.Epoch, 10, 64); err != nil || n <= 0 {
			t.Fatalf("epoch %q accepted", c.Epoch)
		}
		// What a writer sends as an id is accepted back, exactly.
		w := NewWriter(httptest.NewRecorder())
		if err := w.Append(Message{Event: "event", Data: []byte("{}"), ID: c.String()}); err != nil {
			t.Fatalf("id %q refused by the writer: %v", c.String(), err)
		}
	})
}

package sse

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// KeepAlive is how often an idle stream gets a comment line, so that
// proxies do not close it.
const KeepAlive = 15 * time.Second

// Message is one SSE message.
type Message struct {
	// Event is the event type (`event:`), the frame's type; "" sends none
	// (the browser's default, "message").
	Event string
	// Data is the frame's JSON, sent as one `data:` line.
	Data []byte
	// ID, when set, is sent as `id:`; the browser's EventSource sends it
	// back as Last-Event-ID when it reconnects.
	ID string
	// Retry, when > 0, tells the browser how long to wait before it
	// reconnects (`retry:`, in milliseconds).
	Retry time.Duration
}

// Writer writes SSE messages to one response. It is not safe for
// concurrent use: one goroutine (the client's transport sink) owns it.
type Writer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
	// WriteTimeout bounds each write and flush (default 10 s).
	WriteTimeout time.Duration
}

// NewWriter sets the response's headers for an event stream
// (Content-Type: text/event-stream, no caching, no proxy buffering) and
// returns its writer. Nothing is sent before the first Flush.
func NewWriter(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	return &Writer{w: w, rc: http.NewResponseController(w), WriteTimeout: 10 * time.Second}
}

// ErrNewline is returned for a field that holds a line break, which would
// end it early and break the stream's framing.
var ErrNewline = errors.New("sse: line break in a field")

// Append adds m to the writer's buffer without sending it; Flush sends
// everything appended. A field holding a line break (or, for the id, a NUL,
// which browsers ignore the id for) is refused and nothing is added.
func (w *Writer) Append(m Message) error {
	if err := check("event", m.Event); err != nil {
		return err
	}
	if err := check("data", string(m.Data)); err != nil {
		return err
	}
	if err := check("id", m.ID); err != nil {
		return err
	}
	if strings.IndexByte(m.ID, 0) >= 0 {
		return errors.New("sse: NUL in the id field")
	}
	if m.Event != "" {
		w.buf = append(append(append(w.buf, "event: "...), m.Event...), '\n')
	}
	if m.ID != "" {
		w.buf = append(append(append(w.buf, "id: "...), m.ID...), '\n')
	}
	if m.Retry > 0 {
		w.buf = append(strconv.AppendInt(append(w.buf, "retry: "...), m.Retry.Milliseconds(), 10), '\n')
	}
	w.buf = append(append(append(w.buf, "data: "...), m.Data...), '\n', '\n')
	return nil
}

// Comment adds a comment line (": text"), which clients ignore: the
// keep-alive of an idle stream.
func (w *Writer) Comment(text string) error {
	if err := check("comment", text); err != nil {
		return err
	}
	w.buf = append(append(append(w.buf, ": "...), text...), '\n', '\n')
	return nil
}

// Buffered is how many bytes Append and Comment have added since the last Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush sends what was appended and flushes the response, within
// WriteTimeout. Flushing an empty buffer still sends the headers.
func (w *Writer) Flush() error {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("sse: set write deadline: %w", err)
	}
	if len(w.buf) > 0 {
		if _, err := w.w.Write(w.buf); err != nil {
			return fmt.Errorf("sse: write: %w", err)
		}
		w.buf = w.buf[:0]
	}
	if err := w.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("sse: flush: %w", err)
	}
	return nil
}

// Send appends m and flushes.
func (w *Writer) Send(m Message) error {
	if err := w.Append(m); err != nil {
		return err
	}
	return w.Flush()
}

func check(field, s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%w: %s", ErrNewline, field)
	}
	return nil
}

// FrameID is the id an SSE message of a server frame carries: <epoch>:<seq>
// on event, live and bookmark frames, <new epoch>:0 on a stream_reset error
// (so that a reconnect starts over in the new epoch), none on the others.
func FrameID(frameType, errorCode, epoch string, seq uint64) string {
	switch {
	case frameType == "event" || frameType == "live" || frameType == "bookmark":
		return Cursor{Epoch: epoch, Seq: seq}.String()
	case frameType == "error" && errorCode == "stream_reset":
		return Cursor{Epoch: epoch}.String()
	}
	return ""
}

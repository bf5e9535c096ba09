package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dockcast/dockcast/shared/event"
)

// Frame is any server frame as a client decodes it; fields that a frame's
// type does not carry stay zero. Event and Status hold the raw payloads
// (decode an event with shared/event.Decode). Every gateway test decodes
// frames with it.
type Frame struct {
	Type          string          `json:"type"`
	Seq           uint64          `json:"seq"`
	Epoch         string          `json:"epoch"`
	Subject       string          `json:"subject"`
	Event         json.RawMessage `json:"event"`
	RequestedSeq  uint64          `json:"requested_seq"`
	RequestedTime string          `json:"requested_time"`
	FirstSeq      uint64          `json:"first_seq"`
	Status        json.RawMessage `json:"status"`
	Stale         bool            `json:"stale"`
	Code          string          `json:"code"`
	Message       string          `json:"message"`
	ResumeFromSeq uint64          `json:"resume_from_seq"`
}

// ErrInvalid marks a stream message that is not a valid event.
var ErrInvalid = errors.New("not a valid event")

// Decode checks that a stream message's payload is a valid event that a
// frame may embed as is: UTF-8 (a WebSocket text frame must be, and
// browsers drop the connection otherwise), JSON, payload version 1. The
// error wraps ErrInvalid.
func Decode(payload []byte) (event.Event, error) {
	if !utf8.Valid(payload) {
		return event.Event{}, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	ev, err := event.Decode(payload)
	if err != nil {
		return event.Event{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return ev, nil
}

// EventFrame builds {"type":"event","seq":N,"subject":"…","event":payload}.
// payload must have passed Decode; it is embedded as is, except that
// whitespace holding a line break is removed (compact JSON), so that no
// frame holds a newline and batch=1 frames split into lines.
func EventFrame(seq uint64, subject string, payload []byte) []byte {
	payload = oneLine(payload)
	subj, _ := json.Marshal(subject) // a string: cannot fail
	b := make([]byte, 0, len(payload)+len(subj)+48)
	b = append(b, `{"type":"event","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"subject":`...)
	b = append(b, subj...)
	b = append(b, `,"event":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// LiveFrame builds {"type":"live","seq":N,"epoch":"…"}.
func LiveFrame(seq uint64, epoch string) []byte {
	b := strconv.AppendUint([]byte(`{"type":"live","seq":`), seq, 10)
	b = append(b, `,"epoch":"`...)
	b = append(b, epoch...) // digits only (EpochOf)
	return append(b, `"}`...)
}

// BookmarkFrame builds {"type":"bookmark","seq":N}.
func BookmarkFrame(seq uint64) []byte {
	return append(strconv.AppendUint([]byte(`{"type":"bookmark","seq":`), seq, 10), '}')
}

// GapSeqFrame builds {"type":"gap","requested_seq":N,"first_seq":M}.
func GapSeqFrame(requested, first uint64) []byte {
	return mustJSON(struct {
		Type         string `json:"type"`
		RequestedSeq uint64 `json:"requested_seq"`
		FirstSeq     uint64 `json:"first_seq"`
	}{"gap", requested, first})
}

// GapTimeFrame builds {"type":"gap","requested_time":"…","first_seq":M}.
func GapTimeFrame(requested time.Time, first uint64) []byte {
	return mustJSON(struct {
		Type          string `json:"type"`
		RequestedTime string `json:"requested_time"`
		FirstSeq      uint64 `json:"first_seq"`
	}{"gap", requested.UTC().Format(time.RFC3339Nano), first})
}

// StatusFrame builds {"type":"status","status":value}, with "stale":true
// when the node's publisher stopped rewriting it (see package hub); value
// must be valid UTF-8 JSON.
func StatusFrame(value []byte, stale bool) []byte {
	b := append([]byte(`{"type":"status","status":`), oneLine(value)...)
	if stale {
		b = append(b, `,"stale":true`...)
	}
	return append(b, '}')
}

// MarkStale returns a status frame built by StatusFrame as a stale one.
func MarkStale(frame []byte) []byte {
	if bytes.HasSuffix(frame, []byte(`,"stale":true}`)) {
		return frame
	}
	b := append(bytes.Clone(frame[:len(frame)-1]), `,"stale":true`...)
	return append(b, '}')
}

// ErrorFrame builds {"type":"error","code":…,"message":…} with
// "resume_from_seq" when resume > 0 and "epoch" when epoch is not empty.
func ErrorFrame(code Code, message string, resume uint64, epoch string) []byte {
	return mustJSON(struct {
		Type    string `json:"type"`
		Code    Code   `json:"code"`
		Message string `json:"message"`
		Resume  uint64 `json:"resume_from_seq,omitempty"`
		Epoch   string `json:"epoch,omitempty"`
	}{"error", code, message, resume, epoch})
}

// oneLine returns valid JSON without line breaks: as is when it has
// none, else compacted (a line break in JSON is whitespace between
// tokens: inside strings it is escaped).
func oneLine(js []byte) []byte {
	if bytes.IndexByte(js, '\n') < 0 && bytes.IndexByte(js, '\r') < 0 {
		return js
	}
	var b bytes.Buffer
	if err := json.Compact(&b, js); err != nil {
		return js // not JSON: callers pass valid JSON only
	}
	return b.Bytes()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // fixed shapes of strings and numbers
	}
	return b
}

package ws

import (
	"encoding/json"
	"strconv"
	"time"
)

// Frame is any server frame as a client decodes it; fields that a frame's
// type does not carry stay zero. Event and Status hold the raw payloads
// (decode an event with shared/event.Decode).
type Frame struct {
	Type          string          `json:"type"`
	Seq           uint64          `json:"seq"`
	Subject       string          `json:"subject"`
	Event         json.RawMessage `json:"event"`
	RequestedSeq  uint64          `json:"requested_seq"`
	RequestedTime string          `json:"requested_time"`
	FirstSeq      uint64          `json:"first_seq"`
	Status        json.RawMessage `json:"status"`
	Code          string          `json:"code"`
	Message       string          `json:"message"`
	ResumeFromSeq uint64          `json:"resume_from_seq"`
}

// EventFrame builds {"type":"event","seq":N,"subject":"…","event":payload}.
// payload must be valid JSON (a decoded event); it is embedded as is.
func EventFrame(seq uint64, subject string, payload []byte) []byte {
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

// LiveFrame builds {"type":"live","seq":N}.
func LiveFrame(seq uint64) []byte {
	return append(strconv.AppendUint([]byte(`{"type":"live","seq":`), seq, 10), '}')
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

// StatusFrame builds {"type":"status","status":value}; value must be valid JSON.
func StatusFrame(value []byte) []byte {
	b := append([]byte(`{"type":"status","status":`), value...)
	return append(b, '}')
}

// Error codes sent in error frames.
const (
	CodeSlowConsumer = "slow_consumer"
	CodeStreamReset  = "stream_reset"
	CodeShutdown     = "shutdown"
	// CodeReplayLost: events the replay still had to send were removed
	// from the stream after others were sent; reconnect with
	// resume_from_seq to get a gap frame.
	CodeReplayLost = "replay_lost"
)

// ErrorFrame builds {"type":"error","code":…,"message":…} and, when
// resume > 0, "resume_from_seq".
func ErrorFrame(code, message string, resume uint64) []byte {
	return mustJSON(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Resume  uint64 `json:"resume_from_seq,omitempty"`
	}{"error", code, message, resume})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // fixed shapes of strings and numbers
	}
	return b
}

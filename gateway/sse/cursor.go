package sse

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Cursor is an SSE event id, <epoch>:<seq>: the stream's epoch (its
// creation time in decimal Unix nanoseconds) and the sequence of the last
// frame the client got. Seq 0 (after stream_reset: "<new epoch>:0") means
// nothing of that epoch yet.
type Cursor struct {
	Epoch string
	Seq   uint64
}

// String is the id as sent: "<epoch>:<seq>".
func (c Cursor) String() string { return c.Epoch + ":" + strconv.FormatUint(c.Seq, 10) }

// FromSeq is the stream sequence to continue from: the one after Seq.
func (c Cursor) FromSeq() uint64 { return c.Seq + 1 }

// Limits of a cursor: an epoch is a positive int64 of nanoseconds.
const (
	maxEpochDigits = 19
	maxCursorLen   = 64
)

// ParseCursor parses "<epoch>:<seq>": both decimal digits only, the epoch a
// positive int64 (Unix nanoseconds), the seq a uint64 below its maximum
// (so that FromSeq exists). The error says what is wrong, quoting at most
// the start of the input.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, errors.New("empty event id: want <epoch>:<seq>")
	}
	if len(s) > maxCursorLen {
		return Cursor{}, fmt.Errorf("event id %s…: longer than %d bytes: want <epoch>:<seq>", quote(s[:maxCursorLen/2]), maxCursorLen)
	}
	epoch, seq, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, fmt.Errorf("event id %s: no ':' (want <epoch>:<seq>, e.g. 1796121000123456789:42)", quote(s))
	}
	if !digits(epoch) || len(epoch) > maxEpochDigits {
		return Cursor{}, fmt.Errorf("event id %s: epoch %s is not a stream epoch (decimal digits, Unix nanoseconds)", quote(s), quote(epoch))
	}
	if n, err := strconv.ParseInt(epoch, 10, 64); err != nil || n <= 0 || strconv.FormatInt(n, 10) != epoch {
		return Cursor{}, fmt.Errorf("event id %s: epoch %s is not a stream epoch (decimal digits, Unix nanoseconds)", quote(s), quote(epoch))
	}
	if !digits(seq) {
		return Cursor{}, fmt.Errorf("event id %s: seq %s is not a stream sequence (decimal digits)", quote(s), quote(seq))
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == math.MaxUint64 || strconv.FormatUint(n, 10) != seq {
		return Cursor{}, fmt.Errorf("event id %s: seq %s is not a stream sequence (decimal digits, no leading zeros, below 2^64-1)", quote(s), quote(seq))
	}
	return Cursor{Epoch: epoch, Seq: n}, nil
}

func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func quote(s string) string { return strconv.QuoteToASCII(s) }

// Resume is where a (re)connecting client asks to continue.
type Resume struct {
	Cursor
	// Header: from the Last-Event-ID header, which an EventSource sends on
	// every reconnect. It wins over since, from_seq and last_event_id in
	// the URL (an EventSource re-sends its first URL each time).
	Header bool
}

// LastEventIDParam is the query parameter that can carry a cursor on an
// EventSource's first connect.
const LastEventIDParam = "last_event_id"

// ResumeFrom reads the request's resume point: its Last-Event-ID header if
// present and not empty, else its last_event_id query parameter (at most
// once). It returns nil when there is neither.
func ResumeFrom(h http.Header, q url.Values) (*Resume, error) {
	if ids := h.Values("Last-Event-ID"); len(ids) > 0 && ids[0] != "" {
		if len(ids) > 1 {
			return nil, fmt.Errorf("Last-Event-ID: given %d times, at most once", len(ids))
		}
		c, err := ParseCursor(ids[0])
		if err != nil {
			return nil, fmt.Errorf("Last-Event-ID: %w", err)
		}
		return &Resume{Cursor: c, Header: true}, nil
	}
	vs, ok := q[LastEventIDParam]
	if !ok {
		return nil, nil
	}
	if len(vs) > 1 {
		return nil, fmt.Errorf("%s: given %d times, at most once", LastEventIDParam, len(vs))
	}
	c, err := ParseCursor(vs[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LastEventIDParam, err)
	}
	return &Resume{Cursor: c}, nil
}

package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxEpochLen bounds an epoch: the digits of an int64.
const MaxEpochLen = 19

// EpochOf is the epoch of a stream created at created: its creation time
// in decimal Unix nanoseconds, so that every gateway of the same stream
// names it alike.
func EpochOf(created time.Time) string {
	return strconv.FormatInt(created.UnixNano(), 10)
}

// CheckEpoch validates an epoch given by a client: 1 to 19 decimal digits,
// a positive int64, no sign or leading zero.
func CheckEpoch(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxEpochLen || strings.Trim(s, "0123456789") != "" || s[0] == '0' {
		return fmt.Errorf("%q is not an epoch (the decimal digits of a live frame's \"epoch\")", truncate(s, 40))
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return fmt.Errorf("%q is out of range", truncate(s, 40))
	}
	return nil
}

// Cursor names one position in one incarnation of the stream: "<epoch>:<seq>"
// (Server-Sent Events' id, a Last-Event-ID).
type Cursor struct {
	Epoch string
	Seq   uint64
}

// String formats the cursor as <epoch>:<seq>.
func (c Cursor) String() string { return c.Epoch + ":" + strconv.FormatUint(c.Seq, 10) }

// ParseCursor parses <epoch>:<seq> (seq may be 0, as after a stream reset).
func ParseCursor(s string) (Cursor, error) {
	e, q, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, fmt.Errorf("%q is not <epoch>:<seq>", truncate(s, 60))
	}
	if err := CheckEpoch(e); err != nil {
		return Cursor{}, fmt.Errorf("cursor epoch: %w", err)
	}
	if q == "" || len(q) > 20 || strings.Trim(q, "0123456789") != "" || (len(q) > 1 && q[0] == '0') {
		return Cursor{}, fmt.Errorf("%q: the sequence after ':' must be decimal digits", truncate(s, 60))
	}
	n, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%q: sequence out of range", truncate(s, 60))
	}
	return Cursor{Epoch: e, Seq: n}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

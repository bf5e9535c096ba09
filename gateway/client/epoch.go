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

// CheckEpoch validates an epoch given by a client (the epoch parameter;
// package sse parses <epoch>:<seq> cursors to the same rule): 1 to 19 decimal digits,
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

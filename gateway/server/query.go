package server

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/filter"
)

// Query is a validated query string of a client transport.
type Query struct {
	Filter   filter.Filter
	Subjects []string // Filter.Subjects(), before the token narrows them
	// Since is the start time of the replay; zero when not asked.
	Since time.Time
	// FromSeq is the stream sequence to start from; 0 when not asked.
	FromSeq uint64
	// Epoch is the stream epoch FromSeq belongs to; "" when not given.
	Epoch string
	// Token is the token parameter ("" when absent).
	Token string
	// Batch is batch=1: several frames per WebSocket text frame, one per
	// line (client.Options.Batch). /ws only.
	Batch bool
	// Snapshot: snapshot=1, the container states before the events.
	Snapshot bool
}

// Replay reports whether the client asked for history.
func (r Query) Replay() bool { return r.FromSeq > 0 || !r.Since.IsZero() }

var known = map[string]bool{"filter": true, "since": true, "from_seq": true, "epoch": true, "token": true, "batch": true, "snapshot": true}

// ParseQuery validates q; now resolves durations in since. Each error is
// one line naming the parameter.
func ParseQuery(q url.Values, now time.Time) (Query, error) {
	var unknown []string
	for k := range q {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Query{}, fmt.Errorf("unknown parameter %q (accepted: filter, since, from_seq, epoch, token, batch, snapshot)", truncate(unknown[0]))
	}
	for _, k := range []string{"since", "from_seq", "epoch", "token", "batch", "snapshot"} {
		if len(q[k]) > 1 {
			return Query{}, fmt.Errorf("%s: given %d times, at most once", k, len(q[k]))
		}
	}
	var r Query
	f, err := filter.Parse(q["filter"], filter.GatewayKeys)
	if err != nil {
		return Query{}, fmt.Errorf("filter: %w", err)
	}
	r.Filter, r.Subjects = f, f.Subjects()
	if vs, ok := q["since"]; ok {
		t, err := ParseSince(vs[0], now)
		if err != nil {
			return Query{}, fmt.Errorf("since: %w", err)
		}
		r.Since = t
	}
	if vs, ok := q["from_seq"]; ok {
		n, err := strconv.ParseUint(vs[0], 10, 64)
		if err != nil || n < 1 {
			return Query{}, fmt.Errorf("from_seq: %q is not a stream sequence (an integer >= 1)", truncate(vs[0]))
		}
		r.FromSeq = n
	}
	if r.FromSeq > 0 && !r.Since.IsZero() {
		return Query{}, errors.New("since and from_seq exclude each other: give one")
	}
	if vs, ok := q["epoch"]; ok {
		if r.FromSeq == 0 {
			return Query{}, errors.New("epoch: only with from_seq (the epoch that sequence belongs to)")
		}
		if err := client.CheckEpoch(vs[0]); err != nil {
			return Query{}, fmt.Errorf("epoch: %w", err)
		}
		r.Epoch = vs[0]
	}
	if vs, ok := q["snapshot"]; ok {
		switch vs[0] {
		case "1":
			r.Snapshot = true
		case "0":
		default:
			return Query{}, fmt.Errorf("snapshot: %q is not 1 or 0", truncate(vs[0]))
		}
		if r.Snapshot && r.Replay() {
			return Query{}, errors.New("snapshot: not with since or from_seq (the snapshot is the start: the events after it follow)")
		}
	}
	if vs, ok := q["token"]; ok {
		if vs[0] == "" {
			return Query{}, errors.New("token: empty")
		}
		r.Token = vs[0]
	}
	if vs, ok := q["batch"]; ok {
		switch vs[0] {
		case "1":
			r.Batch = true
		case "0":
		default:
			return Query{}, fmt.Errorf("batch: %q is not 1 or 0", truncate(vs[0]))
		}
	}
	return r, nil
}

// ParseSince parses an RFC 3339 time, Unix seconds (optionally with a
// fraction, as Docker's --since), or a positive duration meaning that long
// before now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	bad := fmt.Errorf("%q is not an RFC 3339 time, Unix seconds or a duration like 15m", truncate(s))
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	if s[0] >= '0' && s[0] <= '9' && strings.Trim(s, "0123456789.") == "" {
		secs, frac, _ := strings.Cut(s, ".")
		if strings.Contains(frac, ".") || len(frac) > 9 || len(secs) > 11 {
			return time.Time{}, bad
		}
		n, err := strconv.ParseInt(secs, 10, 64)
		if err != nil {
			return time.Time{}, bad
		}
		var ns int64
		if frac != "" {
			ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		}
		return time.Unix(n, ns).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1970 || t.Year() > 9999 {
			return time.Time{}, fmt.Errorf("%q is out of range", truncate(s))
		}
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration must be positive (how long ago)", truncate(s))
		}
		if d > time.Duration(math.MaxInt64/2) {
			return time.Time{}, fmt.Errorf("%q is out of range", truncate(s))
		}
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, bad
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

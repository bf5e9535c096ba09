package dockerapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	timetypes "github.com/docker/docker/api/types/time"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
)

// EngineMemory is how many events an engine keeps in memory: what
// `docker events --until T` without --since answers from, per node.
const EngineMemory = 256

// Keys are the filter keys /events accepts: the gateway's (node is
// dockcast's node; healthcheck is dockcast's own) and the engine's other
// name filters (daemon, plugin, service, secret, config), which match the
// same way. Docker ignores keys it does not know; dockcast refuses them, so
// that a mistyped key never silently widens what is printed.
var Keys = func() filter.Keys {
	k := filter.Keys{}
	for _, set := range []filter.Keys{filter.GatewayKeys, filter.EngineKeys} {
		for key := range set {
			k[key] = true
		}
	}
	return k
}()

// Query is a validated GET /events request.
type Query struct {
	// Filter is the filters argument. Admission may narrow it to what the
	// caller may read.
	Filter filter.Filter
	// Since and Until bound the events' own times (Docker's semantics, both
	// inclusive); zero when not given.
	Since, Until time.Time
	// Follow: after the history, keep sending new events until the request
	// ends (the handler ends it at Until when Until is in the future).
	// False when Until is in the past: the history alone.
	Follow bool
	// Tail, when > 0 (Until without Since), limits the history to the last
	// Tail engine events of each node at or before Until, as an engine's
	// memory would hold them (dockcast's synthetic events do not count: no
	// engine held them); the filter applies to those.
	Tail int
	// Caller is what Config.Admit decided about the caller, for the
	// Source (nil without Admit).
	Caller any
}

// ParseQuery validates /events' query arguments as the engine does: since
// and until are Unix seconds with an optional fraction (what the CLI sends
// for --since 1h or --since 2026-11-30T10:00:00), filters is Docker's JSON
// filter argument. Other arguments are ignored, as by the engine. now
// decides whether Until is in the past. The error is an *Error with status
// 400 and, where Docker has one, Docker's own message.
func ParseQuery(q url.Values, now time.Time) (Query, error) {
	var r Query
	var err error
	if r.Since, err = ParseTimestamp(q.Get("since")); err != nil {
		return Query{}, badRequest(err.Error())
	}
	if r.Until, err = ParseTimestamp(q.Get("until")); err != nil {
		return Query{}, badRequest(err.Error())
	}
	if !r.Until.IsZero() && r.Until.Before(r.Since) {
		return Query{}, badRequest(fmt.Sprintf("`since` time (%s) cannot be after `until` time (%s)", q.Get("since"), q.Get("until")))
	}
	if r.Filter, err = ParseFilters(q.Get("filters")); err != nil {
		return Query{}, badRequest(err.Error())
	}
	r.Follow = r.Until.IsZero() || !r.Until.Before(now)
	if r.Since.IsZero() && !r.Until.IsZero() {
		r.Tail = EngineMemory
	}
	return r, nil
}

// ParseTimestamp parses Docker's since/until argument: Unix seconds with
// an optional fraction ("1764097465", "1764097465.217300886"), with the
// engine's own parser and error messages. "" is the zero time (not given).
// A time whose nanoseconds do not fit an int64 (outside the years 1678 to
// 2262) is refused: the engine compares nanoseconds.
func ParseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	sec, nsec, err := timetypes.ParseTimestamps(s, 0)
	if err != nil {
		return time.Time{}, err
	}
	t := time.Unix(sec, nsec)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("timestamp %q is out of range", truncate(s))
	}
	return t.UTC(), nil
}

var (
	minTime = time.Unix(0, -1<<63+1)
	maxTime = time.Unix(0, 1<<63-1)
)

// ParseFilters parses Docker's filters argument, in the map form the CLI
// and SDKs send ({"type":{"container":true},"label":{"env=prod":true}}) or
// the legacy list form ({"type":["container"]}), into dockcast's filter.
// A value of the map form must be true: Docker's own matching treats a
// false one inconsistently (some keys ignore it, others match nothing), and
// no client sends it, so it is refused. "" is the empty filter.
func ParseFilters(s string) (filter.Filter, error) {
	args, err := filters.FromJSON(s)
	if err != nil {
		return filter.Filter{}, err // Docker's own "invalid filter"
	}
	keys := args.Keys()
	sort.Strings(keys)
	var terms []string
	for _, k := range keys {
		if !Keys[k] {
			return filter.Filter{}, fmt.Errorf("invalid filter '%s' (accepted: %s)", truncate(k), Keys)
		}
		values := args.Get(k)
		sort.Strings(values)
		for _, v := range values {
			if !args.ExactMatch(k, v) { // the map form's boolean is false
				return filter.Filter{}, fmt.Errorf("invalid filter '%s=%s': a value must be true", truncate(k), truncate(v))
			}
			terms = append(terms, k+"="+v)
		}
	}
	f, err := filter.Parse(terms, Keys)
	if err != nil {
		return filter.Filter{}, fmt.Errorf("invalid filter: %w", err)
	}
	return f, nil
}

// Match reports whether e belongs in the answer to q: within [Since, Until]
// by its own time, matching the filter, and, for dockcast's synthetic
// events, asked for by name, so that by default the output is what the
// engines printed: a gap or loss (type dockcast) only with type=dockcast, a
// container's state only with event=state (or event=state: <state>).
func (q *Query) Match(e *event.Event) bool {
	if !q.Since.IsZero() && e.TimeNano < q.Since.UnixNano() {
		return false
	}
	if !q.Until.IsZero() && e.TimeNano > q.Until.UnixNano() {
		return false
	}
	switch {
	case e.Type == event.TypeDockcast:
		if !slices.Contains(q.Filter.Values("type"), event.TypeDockcast) {
			return false
		}
	case e.Action == event.ActionState:
		if !slices.ContainsFunc(q.Filter.Values("event"), func(v string) bool {
			action, _, _ := strings.Cut(v, ":")
			return strings.TrimSpace(action) == event.ActionState
		}) {
			return false
		}
	}
	return q.Filter.Match(e)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func badRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// Package filter implements Docker's --filter vocabulary for events, with
// Docker's semantics: terms with different keys must all match (AND), terms
// with the same key are alternatives (OR), except label, where every label
// term must match.
//
// dockcast adds one key of its own, healthcheck (true or false: is the event
// one of a container's own health-check execs, tagged by the publisher with
// the attribute dockcast.healthcheck=true). The engine cannot apply it, so it
// is a gateway key only and never part of Args.
//
// Entry points: Parse (a list of key=value terms), ParseList (one
// comma-separated string, as PUBLISHER_FILTERS), Filter.Match (does an event
// match), Filter.Subjects (the NATS subject filters that cover every match)
// and Filter.Args (the same filter for the Docker Engine API).
package filter

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/docker/docker/api/types/filters"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// Keys is a set of accepted filter keys.
type Keys map[string]bool

// GatewayKeys are the keys a WebSocket client may use (node is dockcast's
// node, the <node> subject token; healthcheck is dockcast's own).
var GatewayKeys = Keys{
	"type": true, "event": true, "node": true, "container": true, "image": true,
	"label": true, "network": true, "volume": true, "scope": true, KeyHealthcheck: true,
}

// KeyHealthcheck is dockcast's filter key for health-check exec events:
// healthcheck=true keeps only them, healthcheck=false hides them.
const KeyHealthcheck = "healthcheck"

// EngineKeys are the keys the Docker Engine's /events endpoint accepts
// (node there is a swarm node).
var EngineKeys = Keys{
	"type": true, "event": true, "container": true, "image": true, "label": true,
	"network": true, "volume": true, "scope": true, "daemon": true, "plugin": true,
	"node": true, "service": true, "secret": true, "config": true,
}

// Limits on what a filter may hold, so that a client cannot make the
// gateway do unbounded work.
const (
	MaxTerms      = 64  // terms in one filter
	MaxValueLen   = 512 // bytes in one value
	MaxSubjects   = 128 // subject filters Subjects returns at most
	fuzzyEventKey = "event"
)

// Filter is a parsed set of filter terms. The zero value matches everything.
type Filter struct {
	terms map[string][]string // key -> sorted, distinct values
}

// Parse parses terms of the form key=value (label=key or label=key=value)
// and rejects keys outside allowed, empty values and oversized input.
func Parse(terms []string, allowed Keys) (Filter, error) {
	if len(terms) > MaxTerms {
		return Filter{}, fmt.Errorf("too many filter terms: %d (at most %d)", len(terms), MaxTerms)
	}
	f := Filter{terms: map[string][]string{}}
	for _, term := range terms {
		key, value, ok := strings.Cut(term, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return Filter{}, fmt.Errorf("bad filter %q: expected key=value", term)
		}
		if !allowed[key] {
			return Filter{}, fmt.Errorf("bad filter %q: unknown key %q (accepted: %s)", term, key, allowed)
		}
		if value == "" {
			return Filter{}, fmt.Errorf("bad filter %q: empty value", term)
		}
		if len(value) > MaxValueLen {
			return Filter{}, fmt.Errorf("bad filter %q: value longer than %d bytes", truncate(term), MaxValueLen)
		}
		if strings.IndexFunc(value, unicode.IsControl) >= 0 {
			return Filter{}, fmt.Errorf("bad filter %q: control character in value", term)
		}
		if key == "label" && strings.HasPrefix(value, "=") {
			return Filter{}, fmt.Errorf("bad filter %q: empty label key", term)
		}
		if key == KeyHealthcheck && value != "true" && value != "false" {
			return Filter{}, fmt.Errorf("bad filter %q: healthcheck is true or false", truncate(term))
		}
		if !slices.Contains(f.terms[key], value) {
			f.terms[key] = append(f.terms[key], value)
		}
	}
	for _, vs := range f.terms {
		sort.Strings(vs)
	}
	return f, nil
}

// ParseList parses a comma-separated list of terms ("type=container,label=env=prod").
// An empty or blank string is the empty filter.
func ParseList(s string, allowed Keys) (Filter, error) {
	if strings.TrimSpace(s) == "" {
		return Filter{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return Parse(parts, allowed)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// String lists the accepted keys, sorted.
func (k Keys) String() string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Empty reports whether the filter has no terms (and so matches everything).
func (f Filter) Empty() bool { return len(f.terms) == 0 }

// Values returns the values given for key, sorted.
func (f Filter) Values(key string) []string { return slices.Clone(f.terms[key]) }

// Terms returns the filter as sorted key=value terms; Parse(f.Terms()) == f.
func (f Filter) Terms() []string {
	var out []string
	for k, vs := range f.terms {
		for _, v := range vs {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// String is the filter's terms joined by commas.
func (f Filter) String() string { return strings.Join(f.Terms(), ",") }

// Args converts the filter into the Docker Engine API's filter arguments.
// The healthcheck key, which the engine does not know, is left out.
func (f Filter) Args() filters.Args {
	args := filters.NewArgs()
	for k, vs := range f.terms {
		if k == KeyHealthcheck {
			continue
		}
		for _, v := range vs {
			args.Add(k, v)
		}
	}
	return args
}

// fuzzyEvents are the event names for which Docker switches every event
// term to prefix matching (moby #25798).
var fuzzyEvents = []string{"health_status", "exec_create", "exec_start"}

func (f Filter) fuzzy() bool {
	for _, v := range f.terms[fuzzyEventKey] {
		if slices.Contains(fuzzyEvents, v) {
			return true
		}
	}
	return false
}

// Match reports whether e passes the filter, as the Docker Engine decides
// for `docker events --filter`. node matches dockcast's node name.
//
// One refinement over Docker: event=health_status (and exec_create,
// exec_start) matches events whose action is exactly that name (every
// health status), where Docker matches any action with that prefix; for
// Docker's own actions the two are the same.
func (f Filter) Match(e *event.Event) bool {
	if len(f.terms) == 0 {
		return true
	}
	return f.exact("type", e.Type) &&
		f.matchEvent(e) &&
		f.matchNode(e.Node) &&
		f.exact("scope", e.Scope) &&
		f.prefixName("container", e) &&
		f.prefixName("network", e) &&
		f.prefixName("volume", e) &&
		f.prefixName("daemon", e) &&
		f.prefixName("plugin", e) &&
		f.prefixName("service", e) &&
		f.prefixName("secret", e) &&
		f.prefixName("config", e) &&
		f.matchImage(e) &&
		f.matchLabels(e.Actor.Attributes) &&
		f.matchHealthcheck(e.Actor.Attributes)
}

// matchHealthcheck: the event is a health-check exec when the publisher
// tagged it dockcast.healthcheck=true; any other value, or none, is false.
func (f Filter) matchHealthcheck(attrs map[string]string) bool {
	vs, ok := f.terms[KeyHealthcheck]
	if !ok {
		return true
	}
	want := "false"
	if attrs[event.AttrHealthcheck] == "true" {
		want = "true"
	}
	return slices.Contains(vs, want)
}

func (f Filter) exact(key, s string) bool {
	vs, ok := f.terms[key]
	return !ok || slices.Contains(vs, s)
}

func (f Filter) matchNode(node string) bool {
	vs, ok := f.terms["node"]
	return !ok || slices.Contains(vs, node) || slices.Contains(vs, subject.Token(node))
}

func (f Filter) matchEvent(e *event.Event) bool {
	vs, ok := f.terms[fuzzyEventKey]
	if !ok {
		return true
	}
	full := e.DockerAction()
	// dockcast's container.state events ("state: running") are selected by
	// event=state, as every health status is by event=health_status, but
	// without Docker's prefix quirk.
	if e.Action == event.ActionState && slices.Contains(vs, event.ActionState) {
		return true
	}
	if !f.fuzzy() {
		return slices.Contains(vs, full)
	}
	for _, v := range vs {
		if slices.Contains(fuzzyEvents, v) {
			if e.Action == v {
				return true
			}
			continue
		}
		if strings.HasPrefix(full, v) {
			return true
		}
	}
	return false
}

// prefixName is Docker's fuzzyMatchName: a value matches when it is a prefix
// of the actor's id or of its name attribute.
func (f Filter) prefixName(key string, e *event.Event) bool {
	vs, ok := f.terms[key]
	if !ok {
		return true
	}
	name := e.Actor.Attributes["name"]
	for _, v := range vs {
		if strings.HasPrefix(e.Actor.ID, v) || strings.HasPrefix(name, v) {
			return true
		}
	}
	return false
}

func (f Filter) matchImage(e *event.Event) bool {
	vs, ok := f.terms["image"]
	if !ok {
		return true
	}
	attr := "image"
	if e.Type == "image" {
		attr = "name"
	}
	name := e.Actor.Attributes[attr]
	for _, v := range vs {
		if v == e.Actor.ID || v == name || v == familiarName(e.Actor.ID) || v == familiarName(name) {
			return true
		}
	}
	return false
}

// familiarName strips the tag and digest from an image reference and the
// default registry prefixes, as Docker's stripTag does: "docker.io/library/alpine:3"
// gives "alpine".
func familiarName(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndexByte(ref, '/')
	if i := strings.LastIndexByte(ref, ':'); i > slash {
		ref = ref[:i]
	}
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "index.docker.io/")
	if rest, ok := strings.CutPrefix(ref, "library/"); ok && !strings.Contains(rest, "/") {
		ref = rest
	}
	return ref
}

func (f Filter) matchLabels(attrs map[string]string) bool {
	for _, v := range f.terms["label"] {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := attrs[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}

// Subjects returns NATS subject filters that together cover every event the
// filter can match (and usually little more), built from the node, type and
// event terms. They never overlap, so they can be a JetStream consumer's
// FilterSubjects. Without such terms it returns docker.events.>.
func (f Filter) Subjects() []string {
	nodes := tokens(f.terms["node"], func(v string) string { return subject.Token(v) })
	types := tokens(f.terms["type"], func(v string) string { return subject.Token(v) })
	fuzzy := f.fuzzy()
	actions := tokens(f.terms[fuzzyEventKey], func(v string) string {
		before, _, hasColon := strings.Cut(v, ":")
		switch {
		case hasColon:
			return subject.Token(strings.TrimSpace(before))
		case !fuzzy, slices.Contains(fuzzyEvents, v):
			return subject.Token(strings.TrimSpace(v))
		default:
			return "*" // a prefix of some action: no single token covers it
		}
	})
	dims := [][]string{nodes, types, actions}
	for len(nodes)*len(types)*len(actions) > MaxSubjects {
		widest := 0
		for i := range dims {
			if len(dims[i]) > len(dims[widest]) {
				widest = i
			}
		}
		dims[widest] = []string{"*"}
		nodes, types, actions = dims[0], dims[1], dims[2]
	}
	if len(nodes) == 1 && nodes[0] == "*" && len(types) == 1 && types[0] == "*" && len(actions) == 1 && actions[0] == "*" {
		return []string{subject.All}
	}
	var out []string
	for _, n := range nodes {
		for _, t := range types {
			for _, a := range actions {
				out = append(out, subject.Prefix+"."+n+"."+t+"."+a)
			}
		}
	}
	return out
}

// tokens maps values to distinct subject tokens; a "*" among them (or no
// values at all) makes the whole dimension "*", so that subjects never overlap.
func tokens(values []string, tok func(string) string) []string {
	if len(values) == 0 {
		return []string{"*"}
	}
	var out []string
	for _, v := range values {
		t := tok(v)
		if t == "*" {
			return []string{"*"}
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

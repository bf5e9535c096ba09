package server

import (
	"slices"
	"strings"
	"sync"

	"github.com/dockcast/dockcast/shared/filter"
)

// maxSharedFilters bounds the filters a Server shares between clients:
// past it, the table starts again (clients keep what they were given).
const maxSharedFilters = 1024

// sharedFilters lets the clients with the same filter share one parsed
// filter and its subjects. Each client keeps its Spec for its whole life,
// and a parsed filter is a map of its own (about 0.4 KiB with its
// subjects): many clients, idle most of the time, ask for the same few
// filters. A filter is never modified once parsed.
type sharedFilters struct {
	mu sync.Mutex
	m  map[string]sharedFilter
}

type sharedFilter struct {
	f        filter.Filter
	subjects []string // f.Subjects()
}

// share returns the shared filter equal to f and its subjects. The shared
// copy is parsed again from f's terms, so that it does not keep the
// request f was parsed from (its values are slices of the URL).
func (sf *sharedFilters) share(f filter.Filter) (filter.Filter, []string) {
	terms := f.Terms()
	// Terms hold no control characters (Parse refuses them): NUL
	// separates them unambiguously (a comma may be part of a value).
	key := strings.Join(terms, "\x00")
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if e, ok := sf.m[key]; ok {
		return e.f, e.subjects
	}
	keys := filter.Keys{}
	for _, t := range terms {
		k, _, _ := strings.Cut(t, "=")
		keys[k] = true
	}
	own, err := filter.Parse(terms, keys)
	if err != nil { // cannot be: the terms were parsed once already
		return f, f.Subjects()
	}
	if sf.m == nil || len(sf.m) >= maxSharedFilters {
		sf.m = map[string]sharedFilter{}
	}
	e := sharedFilter{f: own, subjects: own.Subjects()}
	sf.m[key] = e
	return e.f, e.subjects
}

// shareSpecFilter makes spec's filter (and its subjects, unless a token
// narrowed them) the shared ones.
func (s *Server) shareSpecFilter(f filter.Filter, subjects []string) (filter.Filter, []string) {
	shared, subs := s.filters.share(f)
	if slices.Equal(subjects, subs) {
		subjects = subs
	}
	return shared, subjects
}

package server

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/dockcast/dockcast/shared/filter"
)

func mustParse(t *testing.T, terms ...string) filter.Filter {
	t.Helper()
	f, err := filter.Parse(terms, filter.GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// terms is the address of a filter's map: equal for filters that share it.
func terms(f filter.Filter) uintptr { return reflect.ValueOf(f).Field(0).Pointer() }

// TestSharedFilters: clients with the same filter (terms in any order)
// get one parsed filter and one subjects slice, not a copy each; filters
// that differ only in where a comma falls are not confused; the table
// stays bounded.
func TestSharedFilters(t *testing.T) {
	t.Parallel()
	var sf sharedFilters
	a, subsA := sf.share(mustParse(t, "type=container", "label=env=prod"))
	b, subsB := sf.share(mustParse(t, "label=env=prod", "type=container", "type=container"))
	if terms(a) != terms(b) || &subsA[0] != &subsB[0] {
		t.Errorf("the same filter twice was not shared")
	}
	if !slices.Equal(a.Terms(), []string{"label=env=prod", "type=container"}) || !slices.Equal(subsA, a.Subjects()) {
		t.Errorf("shared filter %v, subjects %v", a.Terms(), subsA)
	}

	one, _ := sf.share(mustParse(t, "label=x,type=container"))
	two, _ := sf.share(mustParse(t, "label=x", "type=container"))
	if terms(one) == terms(two) || len(one.Terms()) != 1 || len(two.Terms()) != 2 {
		t.Errorf("a comma in a value was taken for two terms: %q and %q", one.Terms(), two.Terms())
	}

	for i := range maxSharedFilters + 10 {
		sf.share(mustParse(t, fmt.Sprintf("container=c%d", i)))
	}
	if n := len(sf.m); n > maxSharedFilters {
		t.Errorf("%d filters kept, at most %d", n, maxSharedFilters)
	}
}

// TestShareSpecFilterKeepsNarrowedSubjects: a token's narrowed subjects
// are the client's own; only the filter's own subjects are shared.
func TestShareSpecFilterKeepsNarrowedSubjects(t *testing.T) {
	t.Parallel()
	s := &Server{}
	f := mustParse(t, "type=container")
	narrowed := []string{"docker.events.web-1.container.>"}
	_, subs := s.shareSpecFilter(f, narrowed)
	if &subs[0] != &narrowed[0] {
		t.Errorf("narrowed subjects replaced by %v", subs)
	}
	own := f.Subjects()
	_, subs = s.shareSpecFilter(f, own)
	_, again := s.shareSpecFilter(mustParse(t, "type=container"), mustParse(t, "type=container").Subjects())
	if !slices.Equal(subs, own) || &subs[0] != &again[0] {
		t.Errorf("the filter's own subjects were not shared: %v %v", subs, again)
	}
}

package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestNarrow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		patterns []string
		subjects []string
		want     []string
		exact    bool
		err      string
	}{
		{"everything", []string{"docker.events.>"}, []string{"docker.events.>"}, []string{"docker.events.>"}, true, ""},
		{"no filter, one node", []string{"docker.events.web-1.>"}, []string{"docker.events.>"}, []string{"docker.events.web-1.>"}, true, ""},
		{"type filter, one node", []string{"docker.events.web-1.>"}, []string{"docker.events.*.container.>"}, []string{"docker.events.web-1.container.>"}, true, ""},
		{"two nodes", []string{"docker.events.a.>", "docker.events.b.>"}, []string{"docker.events.*.*.start"}, []string{"docker.events.a.*.start", "docker.events.b.*.start"}, true, ""},
		{"node outside", []string{"docker.events.web-1.>"}, []string{"docker.events.web-2.>"}, nil, false, "may not read docker.events.web-2.>"},
		{"one of two nodes outside", []string{"docker.events.web-1.>"}, []string{"docker.events.web-1.>", "docker.events.web-2.>"}, nil, false, "docker.events.web-2.>"},
		{"type outside", []string{"docker.events.*.container.>"}, []string{"docker.events.*.image.>"}, nil, false, "docker.events.*.image.>"},
		{"covered pattern dropped", []string{"docker.events.>", "docker.events.a.>"}, []string{"docker.events.*.container.>"}, []string{"docker.events.*.container.>"}, true, ""},
		{"overlapping patterns", []string{"docker.events.*.container.>", "docker.events.web-1.>"}, []string{"docker.events.*.*.start"}, []string{"docker.events.*.*.start"}, false, ""},
	}
	for _, c := range cases {
		n, err := Narrow(c.patterns, c.subjects)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error naming %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(n.Subjects, c.want) || n.Exact != c.exact {
			t.Errorf("%s: %+v %v, want %v exact=%v", c.name, n, err, c.want, c.exact)
		}
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pat, subj string
		want      bool
	}{
		{"docker.events.>", "docker.events.a.container.start", true},
		{"docker.events.a.>", "docker.events.a", false},
		{"docker.events.*.container.*", "docker.events.a.container.start", true},
		{"docker.events.*.container.*", "docker.events.a.image.start", false},
		{"docker.events.*.container", "docker.events.a.container.start", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{">", "a", true},
	} {
		if got := Matches([]string{c.pat}, c.subj); got != c.want {
			t.Errorf("Matches(%q, %q) = %v", c.pat, c.subj, got)
		}
		if got := matches(c.pat, c.subj); got != c.want {
			t.Errorf("reference matches(%q, %q) = %v", c.pat, c.subj, got)
		}
	}
}

// literal fills a subject filter's wildcards with fill ('>' with one or
// two tokens).
func literal(sub, fill string, long bool) string {
	toks := strings.Split(sub, ".")
	for i := range toks {
		switch toks[i] {
		case "*":
			toks[i] = fill
		case ">":
			toks[i] = fill
			if long {
				toks[i] = fill + "." + fill
			}
		}
	}
	return strings.Join(toks, ".")
}

// FuzzIntersect: a literal subject matches Intersect(a, b) exactly when it
// matches both a and b.
func FuzzIntersect(f *testing.F) {
	f.Add("docker.events.*.container.>", "docker.events.web-1.>", "docker.events.web-1.container.start", "x")
	f.Add("a.>", "a.*", "a.b.c", "b")
	f.Add("a.*.c", "a.b.*", "a.b.c", "c")
	f.Add(">", "a.b", "a.b", "q")
	f.Fuzz(func(t *testing.T, a, b, subj, fill string) {
		if CheckPattern(a) != nil || CheckPattern(b) != nil || CheckPattern(subj) != nil || strings.ContainsAny(subj, "*>") ||
			fill == "" || strings.ContainsAny(fill, ".*> \t\r\n") {
			return
		}
		x, ok := Intersect(a, b)
		if ok && CheckPattern(x) != nil {
			t.Fatalf("Intersect(%q, %q) = %q, not a valid pattern", a, b, x)
		}
		for _, lit := range []string{subj, literal(a, fill, false), literal(a, fill, true), literal(b, fill, false), literal(b, fill, true)} {
			both := matches(a, lit) && matches(b, lit)
			if got := ok && matches(x, lit); got != both {
				t.Fatalf("Intersect(%q, %q) = %q, %v: %q matches it %v, matches both %v", a, b, x, ok, lit, got, both)
			}
			if Matches([]string{a}, lit) != matches(a, lit) {
				t.Fatalf("Matches(%q, %q) disagrees with NATS matching", a, lit)
			}
		}
	})
}

// FuzzNarrow: narrowed subjects are valid and disjoint; with Exact each
// lies within the patterns; a literal subject in the token's reach and in
// the filter's is matched by the narrowed subjects; one outside the reach
// never is when Exact.
func FuzzNarrow(f *testing.F) {
	f.Add("docker.events.web-1.>", "docker.events.>", "docker.events.web-1.container.start", "x")
	f.Add("docker.events.*.container.>,docker.events.web-1.>", "docker.events.*.*.start", "docker.events.web-1.image.start", "y")
	f.Add("docker.events.a.>,docker.events.b.>", "docker.events.*.container.>", "docker.events.b.container.die", "z")
	f.Fuzz(func(t *testing.T, pats, subs, lit, fill string) {
		patterns, subjects := strings.Split(pats, ","), strings.Split(subs, ",")
		for _, p := range append(append([]string{}, patterns...), subjects...) {
			if CheckPattern(p) != nil {
				return
			}
		}
		if !disjoint(subjects) || CheckPattern(lit) != nil || strings.ContainsAny(lit, "*>") || fill == "" || strings.ContainsAny(fill, ".*> \t\r\n") {
			return
		}
		n, err := Narrow(patterns, subjects)
		if err != nil {
			return
		}
		if !disjoint(n.Subjects) {
			t.Fatalf("Narrow(%v, %v) = %v overlap", patterns, subjects, n.Subjects)
		}
		lits := []string{lit}
		for _, s := range n.Subjects {
			if CheckPattern(s) != nil {
				t.Fatalf("Narrow gave invalid %q", s)
			}
			if n.Exact && Allowed(patterns, []string{s}) != nil {
				t.Fatalf("Narrow(%v, %v): exact, but %q is not within the patterns", patterns, subjects, s)
			}
			lits = append(lits, literal(s, fill, false), literal(s, fill, true))
		}
		for _, l := range lits {
			inFilter := Matches(subjects, l)
			inReach := Matches(patterns, l)
			got := Matches(n.Subjects, l) && (n.Exact || inReach)
			if got != (inFilter && inReach) {
				t.Fatalf("Narrow(%v, %v) = %+v: %q selected %v, in filter %v, in reach %v", patterns, subjects, n, l, got, inFilter, inReach)
			}
		}
	})
}

package auth

import (
	"fmt"
	"strings"
)

// MaxNarrowed bounds the subjects Narrow returns; past it the filter's own
// subjects are kept and each event is checked against the patterns.
const MaxNarrowed = 256

// Narrowed is a filter's subjects cut down to what a token may read.
type Narrowed struct {
	// Subjects never overlap one another (JetStream refuses overlapping
	// consumer filters, and the hub's index would match a client twice).
	Subjects []string
	// Exact reports that every subject lies within the token's patterns;
	// when false, some subject was kept as the filter had it and each
	// event's subject must be checked with Matches.
	Exact bool
}

// Narrow intersects a filter's subjects (disjoint, as filter.Subjects
// makes them) with a token's patterns. A subject that meets none of the
// patterns names something the token may not read: the error names it
// (403). Otherwise each subject is replaced by its intersections with the
// patterns, unless those overlap one another (patterns that overlap), in
// which case the subject is kept whole and Exact is false.
func Narrow(patterns, subjects []string) (Narrowed, error) {
	out := Narrowed{Exact: true}
	for _, sub := range subjects {
		var parts []string
		for _, p := range patterns {
			if x, ok := Intersect(sub, p); ok {
				parts = append(parts, x)
			}
		}
		if len(parts) == 0 {
			return Narrowed{}, fmt.Errorf("token may not read %s (allowed: %s); narrow the filter with node, type or event", sub, strings.Join(patterns, ","))
		}
		parts = dropCovered(parts)
		if !disjoint(parts) {
			out.Subjects = append(out.Subjects, sub)
			out.Exact = false
			continue
		}
		out.Subjects = append(out.Subjects, parts...)
	}
	if len(out.Subjects) > MaxNarrowed {
		return Narrowed{Subjects: subjects, Exact: false}, nil
	}
	return out, nil
}

// dropCovered removes every subject that another one covers (keeping one
// of equal ones).
func dropCovered(subs []string) []string {
	var out []string
	for i, s := range subs {
		covered := false
		for j, o := range subs {
			if i != j && Covers(o, s) && (!Covers(s, o) || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	return out
}

func disjoint(subs []string) bool {
	for i := range subs {
		for j := i + 1; j < len(subs); j++ {
			if _, ok := Intersect(subs[i], subs[j]); ok {
				return false
			}
		}
	}
	return true
}

// Intersect returns the subject filter matching exactly the subjects that
// both a and b match (NATS wildcards: '*' one token, '>' one or more), and
// false when there is none.
func Intersect(a, b string) (string, bool) {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	out := make([]string, 0, max(len(at), len(bt)))
	for i := 0; ; i++ {
		if i == len(at) || i == len(bt) {
			if len(at) != len(bt) {
				return "", false // '>' needs at least one more token; a literal or '*' exactly one
			}
			return strings.Join(out, "."), true
		}
		x, y := at[i], bt[i]
		switch {
		case x == ">":
			return strings.Join(append(out, bt[i:]...), "."), true
		case y == ">":
			return strings.Join(append(out, at[i:]...), "."), true
		case x == "*":
			out = append(out, y)
		case y == "*" || x == y:
			out = append(out, x)
		default:
			return "", false
		}
	}
}

// Matches reports whether the literal subject subj matches one of patterns.
func Matches(patterns []string, subj string) bool {
	for _, p := range patterns {
		if match(p, subj) {
			return true
		}
	}
	return false
}

func match(pat, subj string) bool {
	for {
		pt, prest, pmore := strings.Cut(pat, ".")
		st, srest, smore := strings.Cut(subj, ".")
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != st:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pat, subj = prest, srest
	}
}

// Package subject builds and parses the NATS subjects dockcast publishes on:
//
//	docker.events.<node>.<type>.<action>
//
// Every token is sanitised with Token so that it is a valid, literal NATS
// subject token. Entry points: For, Token, Action, Parse.
package subject

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Prefix is the first two tokens of every event subject.
const Prefix = "docker.events"

// All is the subject filter that covers every event of every node.
const All = Prefix + ".>"

// Token sanitises s into one literal NATS subject token: '.', '*', '>',
// whitespace, control characters and invalid UTF-8 become '_'; an empty
// token becomes "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if badRune(r, size) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if badRune(r, size) {
			b.WriteByte('_')
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func badRune(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return true
	}
	return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
}

// Action splits Docker's Action into the subject action and its detail:
// "exec_start: sh -c ls" gives ("exec_start", "sh -c ls"),
// "health_status: unhealthy" gives ("health_status", "unhealthy"),
// "start" gives ("start", ""). Both parts are trimmed of surrounding space.
func Action(dockerAction string) (action, detail string) {
	a, d, found := strings.Cut(dockerAction, ":")
	if !found {
		return strings.TrimSpace(dockerAction), ""
	}
	return strings.TrimSpace(a), strings.TrimSpace(d)
}

// For returns the subject of an event: docker.events.<node>.<type>.<action>,
// each token sanitised. action is the part before ':' (see Action).
func For(node, typ, action string) string {
	return Prefix + "." + Token(node) + "." + Token(typ) + "." + Token(action)
}

// Node returns the filter subject covering every event of one node:
// docker.events.<node>.>
func Node(node string) string {
	return Prefix + "." + Token(node) + ".>"
}

// Parts is a parsed event subject.
type Parts struct {
	Node, Type, Action string
}

// Parse splits an event subject into its node, type and action tokens.
// It reports false when s is not of the form docker.events.<node>.<type>.<action>.
func Parse(s string) (Parts, bool) {
	rest, ok := strings.CutPrefix(s, Prefix+".")
	if !ok {
		return Parts{}, false
	}
	toks := strings.Split(rest, ".")
	if len(toks) != 3 {
		return Parts{}, false
	}
	for _, t := range toks {
		if t == "" {
			return Parts{}, false
		}
	}
	return Parts{Node: toks[0], Type: toks[1], Action: toks[2]}, true
}

package subject

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestToken(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":              "_",
		"web-1":         "web-1",
		"a.b":           "a_b",
		"*":             "_",
		">":             "_",
		"a b\tc\n":      "a_b_c_",
		"x\x00y\x7f":    "x_y_",
		"caf\xe9":       "caf_",
		"héllo":         "héllo",
		"node.1.*.>":    "node_1____",
		"\u00a0nbsp":    "_nbsp",
		"health_status": "health_status",
	}
	for in, want := range cases {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAction(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, action, detail string }{
		{"start", "start", ""},
		{"exec_start: sh -c ls", "exec_start", "sh -c ls"},
		{"health_status: unhealthy", "health_status", "unhealthy"},
		{"exec_create: /probe a:b", "exec_create", "/probe a:b"},
		{"  die ", "die", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		a, d := Action(c.in)
		if a != c.action || d != c.detail {
			t.Errorf("Action(%q) = %q, %q; want %q, %q", c.in, a, d, c.action, c.detail)
		}
	}
}

func TestForAndParse(t *testing.T) {
	t.Parallel()
	s := For("web.1", "container", "exec start")
	if s != "docker.events.web_1.container.exec_start" {
		t.Fatalf("For = %q", s)
	}
	p, ok := Parse(s)
	if !ok || p != (Parts{"web_1", "container", "exec_start"}) {
		t.Fatalf("Parse(%q) = %+v, %v", s, p, ok)
	}
	for _, bad := range []string{"docker.events.a.b", "docker.events.a.b.c.d", "foo.events.a.b.c", "docker.events..b.c"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if Node("a*b") != "docker.events.a_b.>" {
		t.Errorf("Node = %q", Node("a*b"))
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "web-1", "a.b", "*", ">", "a b", "\x00", "caf\xe9", "héllo", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		if tok == "" {
			t.Fatal("empty token")
		}
		if !utf8.ValidString(tok) {
			t.Fatalf("Token(%q) = %q is not UTF-8", s, tok)
		}
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("Token(%q) = %q keeps a forbidden character", s, tok)
		}
		if Token(tok) != tok {
			t.Fatalf("Token not idempotent on %q", s)
		}
		subj := For(s, s, s)
		p, ok := Parse(subj)
		if !ok || p.Node != tok || p.Type != tok || p.Action != tok {
			t.Fatalf("Parse(For(%q)) = %+v, %v", s, p, ok)
		}
	})
}

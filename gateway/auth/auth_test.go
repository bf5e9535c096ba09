package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAndLookup(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("hashed-secret"))
	file := "# tokens\n\nplain-secret-0123456 docker.events.>\nsha256:" + hex.EncodeToString(sum[:]) + " docker.events.web-1.>,docker.events.*.container.start\n"
	tk, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Len() != 2 {
		t.Fatalf("len %d", tk.Len())
	}
	if g, ok := tk.Lookup("plain-secret-0123456"); !ok || len(g.Patterns) != 1 || g.Patterns[0] != "docker.events.>" || g.ID != sha256.Sum256([]byte("plain-secret-0123456")) {
		t.Fatalf("plain: %v %v", g, ok)
	}
	if g, ok := tk.Lookup("hashed-secret"); !ok || len(g.Patterns) != 2 {
		t.Fatalf("hashed: %v %v", g, ok)
	}
	if g, ok := tk.ByID(ID(sum)); !ok || len(g.Patterns) != 2 {
		t.Fatalf("by id: %v %v", g, ok)
	}
	if _, ok := tk.Lookup("other"); ok {
		t.Fatal("unknown token accepted")
	}
	for _, bad := range []string{
		"", "# only comments\n", "tok-0123456789abcdef\n", "tok-0123456789abcdef a.b c.d\n", "sha256:abcd docker.>\n",
		"tok-0123456789abcdef docker..x\n", "tok-0123456789abcdef docker.>.x\n", "tok-0123456789abcdef do*cker.x\n",
		"tok-0123456789abcdef x\ntok-0123456789abcdef y\n", "tok-0123456789abcdef docker.events.>,\n",
		"short-token docker.events.>\n", "# ok\nlong-enough-token-1 docker.events.>\n0123456789abcde docker.events.>\n",
	} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "tok-0123") || strings.Contains(err.Error(), "short-token") || strings.Contains(err.Error(), "0123456789abcde") {
			t.Errorf("error %q shows the token", err)
		}
	}
	// A short token is refused with the line and the rule, never the token.
	_, err = Parse(strings.NewReader("# tokens\nlong-enough-token-1 docker.events.>\nshort-token docker.events.>\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "line 3: ") || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short token: %v, want line 3 and the minimum length", err)
	}
	// 16 characters (not bytes) are enough.
	if _, err := Parse(strings.NewReader("ääääääääääääääää docker.events.>\n")); err != nil {
		t.Errorf("16 non-ASCII characters: %v", err)
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pat, sub string
		want     bool
	}{
		{"docker.events.>", "docker.events.>", true},
		{"docker.events.>", "docker.events.a.container.start", true},
		{"docker.events.>", "docker.events.*.*.*", true},
		{">", "docker.events.>", true},
		{"docker.events.a.>", "docker.events.>", false},
		{"docker.events.a.>", "docker.events.*.container.start", false},
		{"docker.events.a.>", "docker.events.a.container.*", true},
		{"docker.events.*.container.*", "docker.events.a.container.start", true},
		{"docker.events.*.container.*", "docker.events.*.container.*", true},
		{"docker.events.*.container.*", "docker.events.*.*.*", false},
		{"docker.events.*.container.*", "docker.events.a.container.>", false},
		{"docker.events.*.container", "docker.events.a.container.start", false},
		{"docker.events.a.container.start", "docker.events.a.container.start", true},
		{"docker.events.a.container.start", "docker.events.a.container.stop", false},
		{"docker.events.a.container.start.>", "docker.events.a.container.start", false},
	}
	for _, c := range cases {
		if got := Covers(c.pat, c.sub); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.pat, c.sub, got, c.want)
		}
	}
	if err := Allowed([]string{"docker.events.a.>"}, []string{"docker.events.a.container.start", "docker.events.b.container.start"}); err == nil || !strings.Contains(err.Error(), "docker.events.b.") {
		t.Errorf("Allowed: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"tok docker.events.>\n", "# c\nsha256:" + strings.Repeat("ab", 32) + " a.*.>\n", "a b\nc d,e.>\n", "x\x00 y\n",
		"tok-0123456789abcdef docker.events.>\n", "0123456789abcde docker.events.>\n", "ääääääääääääääää a.>\n",
		"good-token-0123456 a.>\n\n# x\nother-token-0123456 b.*,c.>\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := Parse(strings.NewReader(s))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, e := range tk.entries {
			for _, p := range e.patterns {
				if CheckPattern(p) != nil {
					t.Fatalf("invalid pattern %q accepted", p)
				}
			}
		}
		// Every plain token accepted is at least MinTokenLen characters.
		for _, line := range strings.Split(s, "\n") {
			fields := strings.Fields(line)
			if len(fields) != 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], "sha256:") {
				continue
			}
			if utf8.RuneCountInString(fields[0]) < MinTokenLen {
				t.Fatalf("token %q of %d characters accepted", fields[0], utf8.RuneCountInString(fields[0]))
			}
			if _, ok := tk.Lookup(fields[0]); !ok {
				t.Fatalf("token %q accepted but not found", fields[0])
			}
		}
	})
}

// matches is plain NATS matching of a literal subject against a pattern.
func matches(pat, subj string) bool {
	p, s := strings.Split(pat, "."), strings.Split(subj, ".")
	for i := range p {
		if p[i] == ">" {
			return len(s) > i
		}
		if i >= len(s) || (p[i] != "*" && p[i] != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// FuzzCovers: when pat covers sub, every literal subject sub matches (with
// its wildcards replaced by a token) also matches pat.
func FuzzCovers(f *testing.F) {
	f.Add("docker.events.>", "docker.events.*.container.start", "x")
	f.Add("docker.events.*.container.*", "docker.events.a.container.>", "y")
	f.Add("a.*", "a.b", "c")
	f.Fuzz(func(t *testing.T, pat, sub, fill string) {
		if CheckPattern(pat) != nil || CheckPattern(sub) != nil || fill == "" || strings.ContainsAny(fill, ".*> ") {
			return
		}
		if !Covers(pat, sub) {
			return
		}
		toks := strings.Split(sub, ".")
		for i := range toks {
			if toks[i] == "*" || toks[i] == ">" {
				toks[i] = fill
			}
		}
		lit := strings.Join(toks, ".")
		for _, extra := range []string{"", "." + fill + "." + fill} {
			l := lit
			if strings.HasSuffix(sub, ">") {
				l += extra
			}
			if matches(sub, l) && !matches(pat, l) {
				t.Fatalf("Covers(%q, %q) but %q matches the subject and not the pattern", pat, sub, l)
			}
		}
	})
}

// Package auth reads the gateway's tokens file and decides what a token may
// read.
//
// Tokens file format (GATEWAY_TOKENS_FILE), UTF-8 text, one token per line:
//
//	# comment lines and blank lines are ignored
//	<token> <subject-pattern>[,<subject-pattern>...]
//	sha256:<64 hex digits> <subject-pattern>[,...]
//
// <token> is any run of at least MinTokenLen printable, non-space
// characters; instead of the token itself the file may hold the hex
// SHA-256 of it, prefixed "sha256:" (for example
// `printf %s "$TOKEN" | sha256sum`). A subject pattern is a NATS subject
// with wildcards ('*' one token, '>' the rest), such as docker.events.>
// (everything) or docker.events.web-1.container.> .
//
// A client's filter is narrowed to what its token may read (Narrow): a
// filter that names nothing the token may not read is cut down to the
// token's patterns; one that names something it may not read is refused.
//
// Only SHA-256 hashes are kept in memory; lookups compare hashes in constant
// time. Entry points: Parse, LoadFile, Tokens.Lookup, Tokens.ByID, Narrow,
// Intersect, Matches, Covers, Allowed.
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLineLen bounds one line of the tokens file.
const MaxLineLen = 64 << 10

// MinTokenLen is the shortest token the file may hold (in characters).
const MinTokenLen = 16

// ID identifies a token: the SHA-256 of it. The zero ID is no token.
type ID [sha256.Size]byte

// Grant is what a token may read.
type Grant struct {
	ID       ID
	Patterns []string
}

type entry struct {
	hash     ID
	patterns []string
}

// Tokens is a parsed tokens file.
type Tokens struct {
	entries []entry
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// LoadFile reads and parses a tokens file.
func LoadFile(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads the tokens file format. Errors name the line, never the token.
func Parse(r io.Reader) (*Tokens, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxLineLen)
	t := &Tokens{}
	seen := map[ID]bool{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: expected `<token> <pattern>[,<pattern>...]`", n)
		}
		tok, pats := fields[0], fields[1]
		var e entry
		if hexHash, ok := strings.CutPrefix(tok, "sha256:"); ok {
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("line %d: sha256: must be followed by 64 hex digits", n)
			}
			copy(e.hash[:], b)
		} else {
			if strings.IndexFunc(tok, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				return nil, fmt.Errorf("line %d: token has non-printable characters", n)
			}
			if l := utf8.RuneCountInString(tok); l < MinTokenLen {
				return nil, fmt.Errorf("line %d: token is %d characters long, at least %d are needed (for example: openssl rand -base64 24)", n, l, MinTokenLen)
			}
			e.hash = sha256.Sum256([]byte(tok))
		}
		if seen[e.hash] {
			return nil, fmt.Errorf("line %d: token listed twice", n)
		}
		seen[e.hash] = true
		for _, p := range strings.Split(pats, ",") {
			if err := CheckPattern(p); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			e.patterns = append(e.patterns, p)
		}
		t.entries = append(t.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens in the file")
	}
	return t, nil
}

// CheckPattern reports whether p is a valid NATS subject pattern: non-empty
// tokens, '*' and '>' only as whole tokens, '>' only last.
func CheckPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty subject pattern")
	}
	toks := strings.Split(p, ".")
	for i, tk := range toks {
		switch {
		case tk == "":
			return fmt.Errorf("subject pattern %q has an empty token", p)
		case tk == ">" && i != len(toks)-1:
			return fmt.Errorf("subject pattern %q: '>' must be the last token", p)
		case tk != "*" && tk != ">" && strings.ContainsAny(tk, "*>"):
			return fmt.Errorf("subject pattern %q: wildcards must be whole tokens", p)
		case strings.IndexFunc(tk, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return fmt.Errorf("subject pattern %q has whitespace or control characters", p)
		}
	}
	return nil
}

// Lookup returns the grant of token, comparing SHA-256 hashes in constant
// time; ok is false for an unknown token.
func (t *Tokens) Lookup(token string) (Grant, bool) {
	return t.ByID(sha256.Sum256([]byte(token)))
}

// ByID returns the grant of the token with id (constant time, as Lookup).
func (t *Tokens) ByID(id ID) (Grant, bool) {
	found := -1
	for i := range t.entries {
		if subtle.ConstantTimeCompare(id[:], t.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Grant{}, false
	}
	return Grant{ID: id, Patterns: t.entries[found].patterns}, true
}

// Covers reports whether every subject matching the subject filter sub
// also matches the pattern pat (NATS subset check, token by token: '>' in
// pat covers the rest, '*' one token).
func Covers(pat, sub string) bool {
	p := strings.Split(pat, ".")
	s := strings.Split(sub, ".")
	for i := range p {
		if p[i] == ">" {
			return i < len(s)
		}
		if i >= len(s) {
			return false
		}
		switch {
		case s[i] == ">":
			return false
		case p[i] == "*":
		case s[i] != p[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// Allowed checks that every subject is covered by one of patterns; the
// error names the first subject that is not.
func Allowed(patterns, subjects []string) error {
	for _, sub := range subjects {
		ok := false
		for _, p := range patterns {
			if Covers(p, sub) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("token may not read %s (allowed: %s); narrow the filter with node, type or event", sub, strings.Join(patterns, ","))
		}
	}
	return nil
}

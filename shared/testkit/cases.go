package testkit

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BadValue is one case of a table of bad configuration values: Var set to
// Value (with Env, the other variables the case needs) must be refused
// with one problem naming Var.
type BadValue struct {
	Var, Value string
	Env        map[string]string
}

// Name is the case's subtest name.
func (b BadValue) Name() string { return b.Var + "=" + b.Value }

// Vars is the case's whole environment.
func (b BadValue) Vars() map[string]string {
	out := map[string]string{b.Var: b.Value}
	for k, v := range b.Env {
		out[k] = v
	}
	return out
}

// ReadBadValues reads a table of bad values: one case per line,
// VAR=VALUE then tab-separated VAR=VALUE pairs the case also needs; lines
// starting with # are comments; $NAME is replaced by files[NAME].
func ReadBadValues(t testing.TB, path string, files map[string]string) []BadValue {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	expand := func(s string) string {
		return os.Expand(s, func(name string) string {
			if v, ok := files[name]; ok {
				return v
			}
			return "$" + name
		})
	}
	var out []BadValue
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		k, v, ok := strings.Cut(fields[0], "=")
		if !ok {
			t.Fatalf("%s: %q is not VAR=VALUE", path, fields[0])
		}
		c := BadValue{Var: k, Value: expand(v), Env: map[string]string{}}
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			c.Env[k] = expand(v)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ConfigFixtures makes the files configuration tests name: EMPTY (an empty
// regular file), JUNK (a file that is neither PEM nor credentials), NOFILE
// (a path that does not exist), and the TLS files of MakeTLSFiles as CA,
// CERT and KEY (a client pair) and OTHERKEY (the key of another cert).
func ConfigFixtures(t testing.TB) map[string]string {
	t.Helper()
	dir := t.TempDir()
	empty, junk := filepath.Join(dir, "empty"), filepath.Join(dir, "junk")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a certificate, not credentials\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := MakeTLSFiles(t)
	return map[string]string{
		"EMPTY": empty, "JUNK": junk, "NOFILE": filepath.Join(dir, "missing", "file"),
		"CA": tls.CA, "CERT": tls.ClientCert, "KEY": tls.ClientKey, "OTHERKEY": tls.ServerKey,
	}
}

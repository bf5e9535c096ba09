package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockcast/dockcast/shared/testkit"
)

func TestNATSTLSProblemsNameTheRightVariable(t *testing.T) {
	t.Parallel()
	files := testkit.MakeTLSFiles(t)
	dir := t.TempDir()
	cert, key, otherKey := files.ClientCert, files.ClientKey, files.ServerKey
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tls  NATSTLS
		want string // the variable of the only problem; "" for none
	}{
		{"none", NATSTLS{}, ""},
		{"ok", NATSTLS{CA: files.CA, Cert: cert, Key: key}, ""},
		{"ca missing", NATSTLS{CA: filepath.Join(dir, "nope")}, "NATS_CA"},
		{"ca not pem", NATSTLS{CA: junk}, "NATS_CA"},
		{"cert without key", NATSTLS{Cert: cert}, "NATS_KEY"},
		{"key without cert", NATSTLS{Key: key}, "NATS_CERT"},
		{"cert missing", NATSTLS{Cert: filepath.Join(dir, "nope"), Key: key}, "NATS_CERT"},
		{"key missing", NATSTLS{Cert: cert, Key: filepath.Join(dir, "nope")}, "NATS_KEY"},
		{"cert not pem", NATSTLS{Cert: junk, Key: key}, "NATS_CERT"},
		{"key of another cert", NATSTLS{Cert: cert, Key: otherKey}, "NATS_KEY"},
		{"key not pem", NATSTLS{Cert: cert, Key: junk}, "NATS_KEY"},
	}
	for _, c := range cases {
		var p Problems
		c.tls.Validate(&p)
		switch {
		case c.want == "" && len(p) != 0:
			t.Errorf("%s: unexpected problems %q", c.name, p)
		case c.want != "" && (len(p) != 1 || !strings.HasPrefix(p[0], c.want+": ")):
			t.Errorf("%s: want one problem naming %s, got %q", c.name, c.want, p)
		}
	}
}

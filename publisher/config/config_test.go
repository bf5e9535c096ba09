package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/dockcast/dockcast/publisher/config"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded() || c.EmbeddedNATS != "127.0.0.1:4222" || c.DataDir != "./data" || c.Node != "" ||
		c.Stream != "DOCKER_EVENTS" || c.MaxAge != 168*time.Hour || c.MaxBytes != 1<<30 || c.Replicas != 1 ||
		c.DuplicateWindow != 2*time.Minute || c.QueueMaxBytes != 64<<20 || c.SyncInterval() != 0 ||
		c.Edge() || c.HubDomain != "hub" || c.Explicit() != (natsutil.Explicit{}) || c.NATSTLS.Enabled() ||
		c.HTTPAddr != ":8081" || c.Level != "info" || c.Format != "text" || !c.EngineFilter().Empty() {
		t.Fatalf("defaults: %+v", c)
	}
}

// writeCreds writes a valid NATS credentials file (a user JWT signed by a
// fresh account, and the user's seed).
func writeCreds(t *testing.T) string {
	t.Helper()
	account, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	token, err := jwt.NewUserClaims(pub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGoodValues(t *testing.T) {
	t.Parallel()
	creds := writeCreds(t)
	files := testkit.ConfigFixtures(t)
	c, err := config.Load(env(map[string]string{
		"NATS_URL": "nats://a:4222, tls://b:4443,ws://c,wss://user:pw@d:443", "NATS_CREDS": creds,
		"NATS_CA": files["CA"], "NATS_CERT": files["CERT"], "NATS_KEY": files["KEY"],
		"PUBLISHER_NODE": "web-1_a=b", "PUBLISHER_FILTERS": "type=container, label=env=prod",
		"PUBLISHER_STREAM": "EV-1_x", "PUBLISHER_STREAM_MAX_AGE": "0s", "PUBLISHER_STREAM_MAX_BYTES": "512MiB",
		"PUBLISHER_STREAM_REPLICAS": "3", "PUBLISHER_STREAM_DUPLICATE_WINDOW": "10s", "PUBLISHER_QUEUE_MAX_BYTES": "1GiB",
		"PUBLISHER_HTTP_ADDR": "[::1]:9000", "LOG_LEVEL": "debug", "LOG_FORMAT": "json",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() || c.MaxBytes != 512<<20 || c.Replicas != 3 || len(c.EngineFilter().Terms()) != 2 ||
		c.DuplicateWindow != 10*time.Second || c.QueueMaxBytes != 1<<30 || !c.NATSTLS.Enabled() ||
		c.Explicit() != (natsutil.Explicit{MaxAge: true, MaxBytes: true, Replicas: true, Duplicates: true}) {
		t.Fatalf("%+v", c)
	}
	// Edge mode's variables, and the embedded server's sync interval.
	c, err = config.Load(env(map[string]string{
		"PUBLISHER_HUB": "nats-leaf://hub-1:7422, tls://hub-2:7422", "PUBLISHER_HUB_CREDS": creds,
		"PUBLISHER_HUB_CA": files["CA"], "PUBLISHER_HUB_CERT": files["CERT"], "PUBLISHER_HUB_KEY": files["KEY"],
		"PUBLISHER_HUB_DOMAIN": "central", "PUBLISHER_EMBEDDED_SYNC": "2m", "PUBLISHER_STREAM_MAX_AGE": "1h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Edge() || c.HubDomain != "central" || c.SyncInterval() != 2*time.Minute || c.Explicit() != (natsutil.Explicit{MaxAge: true}) {
		t.Fatalf("%+v", c)
	}
}

// Every bad value gives exactly one line naming its variable (the app
// tests run the binary with the same table, testdata/bad-values.tsv).
func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, c := range testkit.ReadBadValues(t, "testdata/bad-values.tsv", testkit.ConfigFixtures(t)) {
		t.Run(c.Name(), func(t *testing.T) {
			_, err := config.Load(env(c.Vars()))
			var p shared.Problems
			if !errors.As(err, &p) || len(p) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if !strings.HasPrefix(p[0], c.Var+": ") || strings.Contains(p[0], "\n") {
				t.Fatalf("problem does not name %s on one line: %q", c.Var, p[0])
			}
			if strings.Contains(p[0], ":secret@") {
				t.Fatalf("password in the message: %q", p[0])
			}
		})
	}
}

func TestSanitizeNode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"docker-desktop": "docker-desktop", "web.1 a": "web_1_a", "": "_", "é*>": "___"} {
		if got := config.SanitizeNode(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzSanitizeNode(f *testing.F) {
	for _, s := range []string{"web-1", "a.b", "", "\x00", "é", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := config.SanitizeNode(s)
		if err := config.CheckNode(n); err != nil {
			t.Fatalf("%q -> %q: %v", s, n, err)
		}
		if config.CheckNode(s) == nil && n != s {
			t.Fatalf("valid %q changed to %q", s, n)
		}
	})
}

func FuzzCheckHostPort(f *testing.F) {
	for _, s := range []string{":8081", "127.0.0.1:4222", "[::1]:0", "host", ":99999", "a b:1", ":-1", ":+1", "[::1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := config.SplitHostPort(s)
		if err != nil {
			return
		}
		if port < 0 || port > 65535 || strings.ContainsAny(host, " \t/") {
			t.Fatalf("%q accepted as %q %d", s, host, port)
		}
	})
}

func FuzzCheckNATSURL(f *testing.F) {
	for _, s := range []string{"nats://a:4222", "tls://b", "ws://c:80", "wss://u:p@d", "http://x", "nats://", "nats://:4222", "://", "nats://a:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := config.CheckNATSURL(s); err != nil {
			if strings.Contains(s, "@") && strings.Contains(err.Error(), "secret-pw") {
				t.Fatalf("password leaked: %v", err)
			}
			return
		}
		if !strings.Contains(s, "://") {
			t.Fatalf("%q accepted without a scheme", s)
		}
	})
}

func FuzzCheckStreamName(f *testing.F) {
	for _, s := range []string{"DOCKER_EVENTS", "a.b", "a b", "a/b", `a\b`, "*", ">", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if config.CheckStreamName(s) != nil {
			return
		}
		if s == "" || strings.ContainsAny(s, ".*>/\\ \t\r\n") {
			t.Fatalf("%q accepted", s)
		}
	})
}

func FuzzLoad(f *testing.F) {
	f.Add("PUBLISHER_STREAM_REPLICAS", "3")
	f.Add("PUBLISHER_STREAM_MAX_BYTES", "1GiB")
	f.Add("PUBLISHER_STREAM_MAX_AGE", "-1h")
	f.Add("PUBLISHER_FILTERS", "label=a=b,type=container")
	f.Add("NATS_URL", "nats://x:1,ws://y")
	f.Add("PUBLISHER_EMBEDDED_SYNC", "1s")
	f.Add("PUBLISHER_STREAM_DUPLICATE_WINDOW", "1ms")
	f.Add("PUBLISHER_QUEUE_MAX_BYTES", "1KiB")
	f.Add("PUBLISHER_HUB", "nats-leaf://h:7422")
	f.Fuzz(func(t *testing.T, name, value string) {
		c, err := config.Load(env(map[string]string{name: value}))
		if err != nil {
			var p shared.Problems
			if !errors.As(err, &p) {
				t.Fatalf("not a Problems: %v", err)
			}
			return
		}
		if c.Replicas < 1 || c.Replicas > 5 || c.MaxBytes <= 0 || c.MaxAge < 0 || config.CheckStreamName(c.Stream) != nil ||
			c.MaxAge > 0 && c.MaxAge < c.DuplicateWindow || c.DuplicateWindow <= 0 || c.QueueMaxBytes < 1024 {
			t.Fatalf("invalid config accepted: %+v", c)
		}
	})
}

func FuzzCheckLeafURL(f *testing.F) {
	for _, s := range []string{"nats-leaf://hub:7422", "tls://h", "ws://h:80", "http://h", "nats-leaf://", "://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if config.CheckLeafURL(s) == nil && !strings.Contains(s, "://") {
			t.Fatalf("%q accepted without a scheme", s)
		}
	})
}

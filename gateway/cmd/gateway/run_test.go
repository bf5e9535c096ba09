package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockcast/dockcast/gateway/config"
)

// TestConfigErrors: every bad value stops the gateway with one line naming
// the variable, and exit status 2.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badTokens := filepath.Join(dir, "bad-tokens")
	if err := os.WriteFile(badTokens, []byte("onlytoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badPattern := filepath.Join(dir, "bad-pattern")
	if err := os.WriteFile(badPattern, []byte("tok docker.>.x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("# tokens\nlong-enough-token-0123 docker.events.>\nshorttoken docker.events.>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, value, named string }{
		{"NATS_URL", "http://x:4222", ""},
		{"NATS_URL", "nats://", ""},
		{"NATS_URL", "nats://h:99999", ""},
		{"NATS_URL", "nats://a:4222,,nats://b:4222", ""},
		{"NATS_CREDS", filepath.Join(dir, "missing.creds"), ""},
		{"GATEWAY_ADDR", "8080", ""},
		{"GATEWAY_ADDR", ":http-alt", ""},
		{"GATEWAY_STREAM", "a.b", ""},
		{"GATEWAY_STREAM", "has space", ""},
		{"GATEWAY_TOKENS_FILE", filepath.Join(dir, "missing"), ""},
		{"GATEWAY_TOKENS_FILE", badTokens, ""},
		{"GATEWAY_TOKENS_FILE", badPattern, ""},
		{"GATEWAY_TOKENS_FILE", empty, ""},
		{"GATEWAY_TOKENS_FILE", short, ""},
		{"GATEWAY_ALLOW_ANONYMOUS", "maybe", ""},
		{"GATEWAY_ALLOWED_ORIGINS", "app.example.com", ""},
		{"GATEWAY_ALLOWED_ORIGINS", "https://app.example.com/path", ""},
		{"GATEWAY_ALLOWED_ORIGINS", "ftp://app.example.com", ""},
		{"GATEWAY_MAX_CLIENTS", "0", ""},
		{"GATEWAY_MAX_CLIENTS", "many", ""},
		{"GATEWAY_MAX_CLIENTS_PER_IP", "0", ""},
		{"GATEWAY_MAX_CLIENTS_PER_IP", "lots", ""},
		{"GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33", ""},
		{"GATEWAY_TRUSTED_PROXIES", "proxy.example.com", ""},
		{"GATEWAY_TRUSTED_PROXIES", "10.0.0.1,,10.0.0.2", ""},
		{"GATEWAY_TRUSTED_PROXIES", "fe80::1%eth0", ""},
		{"NATS_CA", filepath.Join(dir, "missing-ca.pem"), ""},
		{"NATS_CA", badTokens, ""},
		{"NATS_CERT", filepath.Join(dir, "cert.pem"), "NATS_KEY"},
		{"NATS_KEY", filepath.Join(dir, "key.pem"), "NATS_CERT"},
		{"GATEWAY_ADMIN_ADDR", "9090", ""},
		{"GATEWAY_ADMIN_ADDR", ":8080", ""},
		{"LOG_LEVEL", "loud", ""},
		{"LOG_FORMAT", "xml", ""},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		env := map[string]string{c.name: c.value}
		err := run(context.Background(), []string{"gateway"}, func(k string) string { return env[k] }, &stdout, &stderr)
		var ce configError
		if !errors.As(err, &ce) {
			t.Errorf("%s=%q: %v, want a config error (exit 2)", c.name, c.value, err)
			continue
		}
		named := c.name
		if c.named != "" {
			named = c.named
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], named+": ") {
			t.Errorf("%s=%q: stderr %q, want one line starting with %q", c.name, c.value, stderr.String(), named+": ")
		}
		if strings.Contains(stderr.String(), "onlytoken") || strings.Contains(stderr.String(), "shorttoken") {
			t.Errorf("%s: a token reached the output", c.name)
		}
		if c.value == short && !strings.Contains(stderr.String(), "line 3: ") {
			t.Errorf("short token: %q does not name the line", stderr.String())
		}
	}
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"gateway", "extra"}, func(string) string { return "" }, &stderr, &stderr); !errors.As(err, new(configError)) {
		t.Errorf("arguments: %v, want a config error", err)
	}
}

// TestGoodConfig: the new variables' good values are accepted.
func TestGoodConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_MAX_CLIENTS_PER_IP": "5", "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32,::ffff:198.51.100.0/120",
		"GATEWAY_ADMIN_ADDR": "127.0.0.1:9090"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxClientsPerIP != 5 || len(cfg.Proxies) != 4 || cfg.Proxies[3].String() != "198.51.100.0/24" || cfg.AdminAddr != "127.0.0.1:9090" {
		t.Fatalf("%+v", cfg)
	}
	cfg, err = config.Load(func(string) string { return "" })
	if err != nil || cfg.MaxClientsPerIP != 100 || cfg.Proxies != nil || cfg.AdminAddr != "" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
}

// TestMainExitCode runs main in a child process with a bad value: exit status 2.
func TestMainExitCode(t *testing.T) {
	t.Parallel()
	if os.Getenv("GATEWAY_TEST_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		return
	}
	cmd := execSelf(t, "GATEWAY_MAX_CLIENTS=0")
	out, err := cmd.CombinedOutput()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code != 2 || !strings.Contains(string(out), "GATEWAY_MAX_CLIENTS: ") {
		t.Fatalf("exit %d (%v), output %q; want 2 and the variable named", code, err, out)
	}
}

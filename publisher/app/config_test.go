package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/config"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Every bad configuration value: Run returns the problem, and the binary
// exits with status 2 printing one line that names the variable.
func TestBadConfigExits2(t *testing.T) {
	t.Parallel()
	bin := testkit.Binary(t, "publisher")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := append(config.BadCases(file),
		config.BadCase{Var: "DOCKER_HOST", Value: "ssh://me@host"},
		config.BadCase{Var: "DOCKER_HOST", Value: "ftp://host"},
		config.BadCase{Var: "DOCKER_HOST", Value: "tcp://"},
	)
	for _, c := range cases {
		t.Run(c.Var+"="+c.Value, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"PUBLISHER_HTTP_ADDR": "127.0.0.1:0", "PUBLISHER_DATA_DIR": t.TempDir()}
			vars[c.Var] = c.Value
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := app.Run(ctx, []string{"publisher"}, env(vars), &stderr, &stderr)
			var p shared.Problems
			if !errors.As(err, &p) || len(p) != 1 || !strings.HasPrefix(p[0], c.Var+": ") {
				t.Fatalf("Run: want one problem naming %s, got %v", c.Var, err)
			}

			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; output:\n%s", err, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], c.Var+": ") {
				t.Fatalf("want one line naming %s, got:\n%s", c.Var, out.String())
			}
		})
	}
}

// Unexpected arguments are a usage error too.
func TestArgsRejected(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), []string{"publisher", "--help"}, env(nil), &bytes.Buffer{}, &bytes.Buffer{})
	var p shared.Problems
	if !errors.As(err, &p) {
		t.Fatalf("want a usage problem, got %v", err)
	}
}

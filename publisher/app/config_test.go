package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Every bad configuration value: Run returns the problem, and the binary
// exits with status 2 printing one line that names the variable.
func TestBadConfigExits2(t *testing.T) {
	t.Parallel()
	bin := testkit.Binary(t, "publisher")
	cases := testkit.ReadBadValues(t, "../config/testdata/bad-values.tsv", testkit.ConfigFixtures(t))
	for _, v := range []string{"ssh://me@host", "ftp://host", "tcp://"} {
		cases = append(cases, testkit.BadValue{Var: "DOCKER_HOST", Value: v})
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"PUBLISHER_HTTP_ADDR": "127.0.0.1:0", "PUBLISHER_DATA_DIR": t.TempDir()}
			for k, v := range c.Vars() {
				vars[k] = v
			}
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
